"""Recompute every member's PV, monthly PV, FV and TV from the purchases (`mlm.rebuild`).

Prints each phase as it ends, then the total time and the peak memory of this process.
Pause the workers (and let the purchase backlog drain) first on live data; processing that
starts meanwhile waits for the rebuild to commit.
"""

import resource
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from mlm.services import volumes_rebuild


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Command(BaseCommand):
    help = "Recompute every member's PV, monthly PV, FV and TV from the purchases (set-based)."

    def add_arguments(self, parser):
        parser.add_argument("--no-wait", action="store_true",
                            help="Refuse to start while another rebuild runs, instead of waiting for it.")
        parser.add_argument("--method", choices=["sql", "python"], default=None,
                            help="sql (PostgreSQL, the default there) or python (the default elsewhere).")

    def handle(self, *args, no_wait=False, method=None, **options):
        def progress(phase: str, seconds: float) -> None:
            self.stdout.write(f"  {phase}: {seconds:.2f} s")

        try:
            result = volumes_rebuild(progress=progress, wait=not no_wait, method=method)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Rebuilt the volumes of {result['members']} members ({result['purchases']} counted "
                          f"purchases, {result['monthly_rows']} monthly rows, {result['levels']} levels) "
                          f"in {result['seconds']:.2f} s total; peak memory {peak_rss_mb():.0f} MB.")
