from django.db import migrations

from tokens.defaults import seed_pack_sales_sweep


class Migration(migrations.Migration):

    dependencies = [
        ('tokens', '0007_buy_order_totals_history_index'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.RunPython(seed_pack_sales_sweep, migrations.RunPython.noop),
    ]
