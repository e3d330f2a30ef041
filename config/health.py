"""`GET /health/`: is each dependency up? The database, the Celery broker, the chain node and
the beat heartbeat, each checked with a short timeout. 200 when all are up, 503 otherwise; the
body names each check with `ok` and, when down, the reason. No authentication, no secrets.

The beat writes a heartbeat to the shared cache every minute (`common.beat_heartbeat`); beat is
reported down when the last one is older than HEALTH_BEAT_MAX_AGE_SECONDS (default 180).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from common.tasks import HEARTBEAT_KEY

TIMEOUT_SECONDS = 2


def database_check() -> str | None:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return None


def broker_check() -> str | None:
    from kombu import Connection

    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT_SECONDS, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
    return None


def chain_check() -> str | None:
    from tokens.chain.runtime import chain_client

    chain_client().balances()  # the node answers and the treasury's contracts respond
    return None


def beat_check() -> str | None:
    stamp = cache.get(HEARTBEAT_KEY)
    if not stamp:
        return "no heartbeat from beat yet"
    age = (timezone.now() - datetime.fromisoformat(stamp)).total_seconds()
    limit = getattr(settings, "HEALTH_BEAT_MAX_AGE_SECONDS", 180)
    return None if age <= limit else f"last heartbeat {age:.0f} s ago (more than {limit} s)"


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": database_check, "broker": broker_check, "chain": chain_check, "beat": beat_check}


def health_report() -> dict:
    checks = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            problem = check()
        except Exception as exc:  # a dependency that is down raises: report it, never 500
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        checks[name] = {"ok": problem is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
        if problem:
            checks[name]["error"] = problem
    return {"status": "ok" if all(c["ok"] for c in checks.values()) else "down", "checks": checks}


@require_GET
def health(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
