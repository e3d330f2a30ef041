"""Payouts of held bonuses: the `payout` notification kind, payout_day's 1–28 validators, and the daily beat row of the
payout run (seeded only when missing; no other schedule is touched — see mlm/defaults.py)."""

import django.core.validators
from django.db import migrations, models

from mlm.defaults import PAYOUT_SCHEDULE, schedules_seed


def seed_payout_schedule(apps, schema_editor):
    schedules_seed(apps, schema_editor, names={PAYOUT_SCHEDULE})


class Migration(migrations.Migration):

    dependencies = [
        ('mlm', '0004_money_lifecycle'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.AlterField(
            model_name='notification',
            name='kind',
            field=models.CharField(choices=[('differential', 'Differential'), ('pioneer', 'Pioneer'), ('system_compression', 'System compression (root)'), ('investment', 'Investment (options)'), ('referral', 'Referral (options)'), ('global_pool', 'Global pool'), ('rank_change', 'Rank change'), ('payout', 'Payout of held bonuses')], max_length=20),
        ),
        migrations.AlterField(
            model_name='plansettings',
            name='payout_day',
            field=models.PositiveSmallIntegerField(default=5, help_text="Monthly mode: day of the next month on which a month's held bonuses are paid (1–28).", validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(28)]),
        ),
        migrations.RunPython(seed_payout_schedule, migrations.RunPython.noop),
    ]
