"""The buy-order schedule: parsing, crontab fields for django-celery-beat, and periods.

Pure functions, no database. A schedule is ``daily`` (00:00), ``weekly`` (Monday 00:00),
``monthly`` (the 1st, 00:00) or a 5-field cron expression (minute hour day-of-month month
day-of-week), all in the settings' timezone. A *period* runs from one firing of the schedule
to the next; its start, in the schedule's timezone, names it (the period key), so one
scheduled buy per period is enforced by a unique column.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab
from django.core.exceptions import ValidationError

from common.errors import field_error

NAMED_SCHEDULES = {
    "daily": ("0", "0", "*", "*", "*"),
    "weekly": ("0", "0", "*", "*", "1"),
    "monthly": ("0", "0", "1", "*", "*"),
}
# A schedule that does not fire within this many days is refused (e.g. "0 0 30 2 *").
_MAX_LOOKBACK_DAYS = 4 * 366 + 1


def normalize_schedule(schedule: str) -> str:
    if not isinstance(schedule, str):
        raise field_error("execution_schedule", "The schedule must be a string.", code="invalid_schedule")
    text = " ".join(schedule.split())
    return text.lower() if text.lower() in NAMED_SCHEDULES else text


def cron_fields(schedule: str) -> tuple[str, str, str, str, str]:
    """(minute, hour, day_of_month, month_of_year, day_of_week) of a valid schedule."""
    text = normalize_schedule(schedule)
    if text in NAMED_SCHEDULES:
        return NAMED_SCHEDULES[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise field_error("execution_schedule", "Use daily, weekly, monthly or a cron expression of "
                                                "5 fields (minute hour day-of-month month day-of-week).",
                          code="invalid_schedule")
    return tuple(fields)  # type: ignore[return-value]


def celery_crontab(schedule: str, tz: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = cron_fields(schedule)
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except Exception as exc:  # celery raises ParseException / ValueError on bad fields
        raise field_error("execution_schedule", f"Invalid cron expression {schedule!r}: {exc}",
                          code="invalid_schedule") from None


def validate_timezone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise field_error("timezone", "The timezone is required (e.g. UTC, Africa/Johannesburg).", code="required")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise field_error("timezone", f"Unknown timezone {name!r}.", code="unknown_timezone") from None


def validate_schedule(schedule: str, tz: str) -> str:
    """The normalized schedule, or a ``ValidationError``; also checks that it ever fires."""
    text = normalize_schedule(schedule)
    from django_celery_beat.validators import crontab_validator

    try:
        crontab_validator(" ".join(cron_fields(text)))
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):  # ours, from cron_fields
            raise
        raise field_error("execution_schedule", f"Invalid cron expression {schedule!r}: {'; '.join(exc.messages)}",
                          code="invalid_schedule") from None
    celery_crontab(text, tz)
    period_start(text, tz, datetime.now(tz=ZoneInfo("UTC")))
    return text


def period_start(schedule: str, tz: str, now: datetime) -> datetime:
    """The latest firing of ``schedule`` at or before ``now``, in the timezone ``tz``."""
    zone = validate_timezone(tz)
    cron = celery_crontab(schedule, tz)
    local = now.astimezone(zone)
    hours = sorted(cron.hour, reverse=True)
    minutes = sorted(cron.minute, reverse=True)
    day = local.date()
    for _ in range(_MAX_LOOKBACK_DAYS):
        celery_dow = (day.weekday() + 1) % 7  # celery: 0 is Sunday
        if day.month in cron.month_of_year and day.day in cron.day_of_month and celery_dow in cron.day_of_week:
            for hour in hours:
                for minute in minutes:
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if candidate <= local:
                        return candidate
        day -= timedelta(days=1)
    raise field_error("execution_schedule", f"The schedule {schedule!r} never fires.", code="invalid_schedule")


def period_key(schedule: str, tz: str, now: datetime) -> str:
    """Names the schedule period containing ``now``: ``<schedule>@<period start, local ISO>``."""
    start = period_start(schedule, tz, now)
    return f"{normalize_schedule(schedule)}@{start.isoformat(timespec='minutes')}"[:100]
