"""Demo revenue for the buy-back (idempotent by external reference)."""

from django.core.management.base import BaseCommand

from tokens.selectors import available_revenue
from tokens.services import buy_order_schedule_sync, revenue_track

DEMO_REVENUE = [("course_sale", "5000", "demo:course-sales"), ("subscription", "2000", "demo:subscriptions")]


class Command(BaseCommand):
    help = "Record the demo revenue (5,000 course sales + 2,000 subscriptions) and sync the beat task."

    def handle(self, *args, **options):
        for source, amount, ref in DEMO_REVENUE:
            revenue_track(source=source, amount=amount, external_ref=ref)
        buy_order_schedule_sync()
        self.stdout.write(f"Demo revenue recorded; available for the next buy-order: {available_revenue()} ZAR.")
