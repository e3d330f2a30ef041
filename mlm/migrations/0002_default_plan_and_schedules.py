"""The plan's default rows (ranks, investment tiers, settings) and the beat schedules (see mlm/defaults.py)."""

from django.db import migrations

from mlm.defaults import seed


class Migration(migrations.Migration):
    dependencies = [
        ("mlm", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
