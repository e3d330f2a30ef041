"""Record `pack_sale` revenue for counted purchases that have none (e.g. no USD rate then),
and reverse the recorded revenue of refunded purchases that has no reversal yet. The same
functions as the beat sweepers, over every purchase however recent."""

from django.core.management.base import BaseCommand

from tokens.revenue import pack_sale_reversals_sweep, pack_sales_missing, pack_sales_record

BATCH = 500


class Command(BaseCommand):
    help = ("Record the missing pack-sale revenue of counted purchases and the missing reversals of "
            "refunded ones (idempotent).")

    def handle(self, *args, **options):
        missing = 0
        after = 0
        while ids := pack_sales_missing(older_than_minutes=0, limit=BATCH, after_id=after):
            missing += len(ids)
            pack_sales_record(purchase_ids=ids)
            after = ids[-1]
        still = len(pack_sales_missing(older_than_minutes=0, limit=BATCH))
        self.stdout.write(f"{missing} purchase(s) without pack-sale revenue; {missing - still} recorded now.")
        reversed_now = 0
        while True:
            n = pack_sale_reversals_sweep(older_than_minutes=0)
            reversed_now += n
            if not n:
                break
        self.stdout.write(f"{reversed_now} refunded purchase(s) had their pack-sale revenue reversed now.")
        if still:
            self.stderr.write("Some are still missing: see the errors above (an exchange rate for USD?).")
