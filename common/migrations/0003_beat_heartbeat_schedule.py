"""Seed the beat heartbeat (every minute) the health endpoint reads; only when missing, so an
operator's edits survive."""

from django.db import migrations

NAME = "common: beat heartbeat"


def seed(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    every_minute = (IntervalSchedule.objects.filter(every=1, period="minutes").first()
                    or IntervalSchedule.objects.create(every=1, period="minutes"))
    PeriodicTask.objects.create(name=NAME, task="common.beat_heartbeat", interval=every_minute, enabled=True,
                                description="Stamps the time in the cache: /health/ reports beat down when stale.")


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0002_masked_token"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
