"""Celery tasks of the plumbing: the beat heartbeat the health endpoint reads."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "health:beat-heartbeat"


@shared_task(name="common.beat_heartbeat", ignore_result=True)
def beat_heartbeat_task() -> str:
    """Beat sends this every minute; it stamps the time in the shared cache."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    return now
