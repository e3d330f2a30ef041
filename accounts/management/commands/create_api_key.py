"""`manage.py create_api_key NAME [--expires-in-days N]`: an API key for a service (the payment
service's deposits, the revenue feed). The key is printed once; only its hash is stored."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create an API key for a service (Authorization: Api-Key <key>). The key is shown once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who uses it, e.g. 'payments' (shown in the admin).")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Expire after N days (default never).")

    def handle(self, *args, name, expires_in_days, **options):
        name = name.strip()
        if not name or len(name) > 50:
            raise CommandError("Give the key a name of 1 to 50 characters.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        api_key, key = APIKey.objects.create_key(name=name, expiry_date=expiry)
        self.stdout.write(f"API key for {name!r} (prefix {api_key.prefix}; store it now, it is not shown again):")
        self.stdout.write(key)
