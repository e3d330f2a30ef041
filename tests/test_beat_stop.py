"""`celery beat` (config.beat) stops between ticks on SIGTERM and SIGINT: exit 0, no traceback.

Celery's own beat raised SystemExit from the signal handler in the middle of the database
scheduler's query, and the stop was logged as a crash (seen in `make run`'s test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql://{quote(db['USER'] or '')}{password}@{host}/{db['NAME']}"


@pytest.mark.parametrize("how, after", [(signal.SIGTERM, 1.0), (signal.SIGINT, 2.5), (signal.SIGTERM, 4.0)])
def test_beat_stops_between_ticks_without_a_traceback(tmp_path, how, after):
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and ":memory:" in str(
            settings.DATABASES["default"]["NAME"]) or "mode=memory" in str(settings.DATABASES["default"]["NAME"]):
        pytest.skip("an in-memory SQLite test database cannot be shared with a subprocess")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_ALLOW_INSECURE_KEY": "1",
           "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": "memory://"}
    log = tmp_path / "beat.log"
    with open(log, "w") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO", "--pidfile=",
             "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "beat: Starting" not in log.read_text():
                assert beat.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            time.sleep(after)  # a stop at different points of the tick
            beat.send_signal(how)
            status = beat.wait(timeout=30)
        finally:
            if beat.poll() is None:
                beat.kill()
                beat.wait()
    text = log.read_text()
    assert status == 0, text
    assert "Traceback" not in text and "beat raised exception" not in text, text
    assert "Shutting down" in text
