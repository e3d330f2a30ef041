"""The daily beat row of the loyalty streaks (§8a; seeded only when missing, no other schedule is
touched — see mlm/defaults.py) and the admin's "Preview a purchase" page (a proxy model)."""

from django.db import migrations

from mlm.defaults import LOYALTY_SCHEDULE, schedules_seed


def seed_loyalty_schedule(apps, schema_editor):
    schedules_seed(apps, schema_editor, names={LOYALTY_SCHEDULE})


class Migration(migrations.Migration):

    dependencies = [
        ('mlm', '0007_grace_day_plan_version'),
        ('purchases', '0002_money_lifecycle'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.CreateModel(
            name='PurchasePreview',
            fields=[
            ],
            options={
                'verbose_name': 'purchase preview',
                'verbose_name_plural': 'preview a purchase',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('purchases.purchase',),
        ),
        migrations.RunPython(seed_loyalty_schedule, migrations.RunPython.noop),
    ]
