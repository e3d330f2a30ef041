"""`celery beat` that stops between ticks.

Celery's own beat answers SIGTERM/SIGINT by saving the schedule and raising SystemExit from the
signal handler, i.e. wherever the process happens to be, often in the middle of the database
scheduler's query. The query then fails on a half-closed connection and the stop is logged as a
crash, with tracebacks. This beat only asks the service to stop: the current tick finishes, the
loop ends after its sleep (at most the scheduler's max interval, 5 s), and the schedule is saved
by the service itself.
"""

from __future__ import annotations

from celery import platforms
from celery.apps.beat import Beat as CeleryBeat


class Beat(CeleryBeat):
    def install_sync_handler(self, service) -> None:
        def stop(signum, frame) -> None:
            service.stop()  # sets the shutdown flag; Service.start() syncs on its way out

        platforms.signals.update(SIGTERM=stop, SIGINT=stop)
