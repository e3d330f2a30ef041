"""The buy-order settings row, a default USD→ZAR rate and the beat task (see tokens/defaults.py)."""

from django.db import migrations

from tokens.defaults import seed


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
