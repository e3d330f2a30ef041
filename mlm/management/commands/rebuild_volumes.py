import time

from django.core.management.base import BaseCommand

from mlm.services import volumes_rebuild


class Command(BaseCommand):
    help = "Recompute every member's PV, monthly PV, FV and TV from the purchases (set-based)."

    def handle(self, *args, **options):
        started = time.perf_counter()
        result = volumes_rebuild()
        self.stdout.write(f"Rebuilt the volumes of {result['members']} members "
                          f"in {time.perf_counter() - started:.2f} s.")
