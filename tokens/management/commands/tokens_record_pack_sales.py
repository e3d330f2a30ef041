"""Record `pack_sale` revenue for counted purchases that have none (e.g. no USD rate then),
and reverse the recorded revenue of refunded purchases that has no reversal yet."""

from django.core.management.base import BaseCommand

from purchases.models import Purchase
from tokens.models import Revenue
from tokens.services import pack_sale_reversals_sweep, revenue_record_pack_sale


class Command(BaseCommand):
    help = ("Record the missing pack-sale revenue of counted purchases and the missing reversals of "
            "refunded ones (idempotent).")

    def handle(self, *args, **options):
        recorded = set(Revenue.objects.filter(source=Revenue.Source.PACK_SALE, external_ref__startswith="purchase:")
                       .values_list("external_ref", flat=True))
        done = missing = 0
        for purchase in (Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS, refunded_at__isnull=True)
                         .order_by("id").iterator()):
            if f"purchase:{purchase.pk}" in recorded:
                continue
            missing += 1
            if revenue_record_pack_sale(purchase=purchase) is not None:
                done += 1
        self.stdout.write(f"{missing} purchase(s) without pack-sale revenue; {done} recorded now.")
        reversed_now = 0
        while True:
            n = pack_sale_reversals_sweep(older_than_minutes=0)
            reversed_now += n
            if not n:
                break
        self.stdout.write(f"{reversed_now} refunded purchase(s) had their pack-sale revenue reversed now.")
        if done < missing:
            self.stderr.write("Some are still missing: see the errors above (an exchange rate for USD?).")
