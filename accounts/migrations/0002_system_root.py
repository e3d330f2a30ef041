"""Create the system root: the company's own member account at the top of the tree."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations

from accounts.models import path_encode


def create_root(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    if User.objects.filter(is_system_root=True).exists():
        return
    root = User.objects.create(email=settings.SYSTEM_ROOT_EMAIL, is_system_root=True,
                               first_name="System", last_name="Root", is_active=True,
                               password=make_password(None), referral_code="ROOT0000")
    User.objects.filter(pk=root.pk).update(path=path_encode(root.pk), depth=0)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(create_root, migrations.RunPython.noop)]
