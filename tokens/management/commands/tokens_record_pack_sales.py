"""Record `pack_sale` revenue for counted purchases that have none (e.g. no USD rate then)."""

from django.core.management.base import BaseCommand

from purchases.models import Purchase
from tokens.models import Revenue
from tokens.services import revenue_record_pack_sale


class Command(BaseCommand):
    help = "Record the missing pack-sale revenue of counted purchases (idempotent)."

    def handle(self, *args, **options):
        recorded = set(Revenue.objects.filter(source=Revenue.Source.PACK_SALE, external_ref__startswith="purchase:")
                       .values_list("external_ref", flat=True))
        done = missing = 0
        for purchase in Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS).order_by("id").iterator():
            if f"purchase:{purchase.pk}" in recorded:
                continue
            missing += 1
            if revenue_record_pack_sale(purchase=purchase) is not None:
                done += 1
        self.stdout.write(f"{missing} purchase(s) without pack-sale revenue; {done} recorded now.")
        if done < missing:
            self.stderr.write("Some are still missing: see the errors above (an exchange rate for USD?).")
