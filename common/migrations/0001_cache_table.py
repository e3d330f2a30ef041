"""Creates the database cache table (`django_cache`) when the database cache is configured.

The API's throttle counters live in Django's default cache; without Redis that is the
database cache, whose table `migrate` would not create. `manage.py createcachetable`
(run by scripts/run.sh) does the same after a change of CACHES; both are idempotent.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
