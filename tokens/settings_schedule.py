"""The buy-order settings and the beat schedule that follows them.

``buy_order_config_update`` validates every change (``clean_config_value``), applies it under
a lock on the settings row, keeps an audit row of the difference, and brings the periodic task
in line (``buy_order_schedule_sync``).
"""

from __future__ import annotations

import logging
from decimal import ROUND_DOWN, Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from common.errors import field_error
from common.money import MONEY_QUANTUM, ZERO, to_decimal, to_money
from tokens import schedule as sched
from tokens.models import BuyOrderConfig, BuyOrderConfigChange
from tokens.selectors import buy_order_config

logger = logging.getLogger(__name__)

PERIODIC_TASK_NAME = "tokens: scheduled buy-order"
PERIODIC_TASK = "tokens.buy_order_scheduled"

# The transaction layer's settings (see tokens.chain.txmanager): fees in gwei, times in seconds.
TX_CONFIG_FIELDS = ("max_fee_per_gas", "priority_fee_per_gas", "tx_deadline_seconds", "replace_after_seconds")
GWEI_LIMIT = Decimal(1_000_000)  # 1M gwei per gas: far above any fee a chain has asked for
SECONDS_LIMITS = {"tx_deadline_seconds": (30, 86_400), "replace_after_seconds": (15, 86_400)}

CONFIG_FIELDS = ("revenue_percentage", "execution_schedule", "timezone", "min_buy_amount", "max_buy_amount",
                 "max_slippage", "disposition", "enabled", "max_price_deviation", "twap_window_seconds",
                 "max_price_impact") + TX_CONFIG_FIELDS
TWAP_WINDOW_RANGE = (60, 86400)  # one minute (the observation tick) .. one day
RATE_QUANTUM = Decimal("0.0001")  # the rate settings' 4 decimal places


def _fraction(field: str, value, *, label: str, in_range, range_text: str, places_hint: str = "") -> Decimal:
    """A rate setting: a decimal fraction ``in_range``, at most 4 decimal places."""
    value = to_decimal(value, field=field)
    if not in_range(value):
        raise field_error(field, f"The {label} is a fraction: {range_text}.", code="out_of_range")
    if value != value.quantize(RATE_QUANTUM, rounding=ROUND_DOWN):
        raise field_error(field, f"The {label} has at most 4 decimal places{places_hint}.", code="max_decimal_places")
    return value.quantize(RATE_QUANTUM)


def _whole_number(value, *, max_digits: int) -> int | None:
    """``value`` as a whole number of ASCII digits (an int or such a text; never a bool), or
    ``None``: the caller says what it should have been."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)


def clean_config_value(field: str, value):
    if field == "revenue_percentage":
        return _fraction(field, value, label="revenue percentage", in_range=lambda v: ZERO < v <= 1,
                         range_text="more than 0, at most 1 (100%)", places_hint=" (0.0001 = 0.01%)")
    if field == "max_slippage":
        return _fraction(field, value, label="maximum slippage", in_range=lambda v: ZERO <= v < 1,
                         range_text="at least 0, less than 1")
    if field in ("max_price_deviation", "max_price_impact"):
        label = "maximum price deviation" if field == "max_price_deviation" else "maximum price impact"
        return _fraction(field, value, label=label, in_range=lambda v: ZERO < v < 1,
                         range_text="more than 0, less than 1")
    if field == "twap_window_seconds":
        value = _whole_number(value, max_digits=6)
        if value is None:
            raise field_error(field, "The TWAP window is a whole number of seconds.", code="invalid_integer")
        low, high = TWAP_WINDOW_RANGE
        if not (low <= value <= high):
            raise field_error(field, f"The TWAP window is {low} to {high} seconds.", code="out_of_range")
        return value
    if field in ("min_buy_amount", "max_buy_amount"):
        return to_money(value, field=field).quantize(MONEY_QUANTUM)
    if field == "timezone":
        sched.validate_timezone(value)
        return value.strip()
    if field == "execution_schedule":
        return sched.normalize_schedule(value)  # fully validated with the timezone below
    if field == "disposition":
        if value not in BuyOrderConfig.Disposition.values:
            raise field_error(field, "The disposition is hold or burn.", code="invalid_choice")
        return value
    if field == "enabled":
        if not isinstance(value, bool):
            raise field_error(field, "enabled is true or false.", code="invalid_boolean")
        return value
    if field in ("max_fee_per_gas", "priority_fee_per_gas"):
        return clean_gwei(field, value)
    if field in SECONDS_LIMITS:
        low, high = SECONDS_LIMITS[field]
        seconds = _whole_number(value, max_digits=9)
        if seconds is None:
            raise field_error(field, f"{field} is a whole number of seconds.", code="invalid")
        if not low <= seconds <= high:
            raise field_error(field, f"{field} is between {low} and {high} seconds.", code="out_of_range")
        return seconds
    raise field_error(field, f"Unknown setting {field!r}.", code="unknown_setting")


def clean_gwei(field: str, value) -> Decimal:
    value = to_decimal(value, field=field)
    low = ZERO if field == "priority_fee_per_gas" else Decimal("0.001")
    if not low <= value <= GWEI_LIMIT:
        raise field_error(field, f"{field} is in gwei, from {low} to {GWEI_LIMIT}.", code="out_of_range")
    if value != value.quantize(Decimal("0.001"), rounding=ROUND_DOWN):
        raise field_error(field, f"{field} has at most 3 decimal places (gwei).", code="max_decimal_places")
    return value.quantize(Decimal("0.001"))


def locked_config() -> BuyOrderConfig:
    """The settings row under ``SELECT ... FOR UPDATE`` (created with the defaults if missing)."""
    BuyOrderConfig.objects.get_or_create(pk=BuyOrderConfig.SINGLETON_PK)
    return BuyOrderConfig.objects.select_for_update().get(pk=BuyOrderConfig.SINGLETON_PK)


def buy_order_config_update(*, changed_by=None, **changes) -> BuyOrderConfig:
    """Validate and apply ``changes`` to the settings; keep an audit row; follow with the schedule."""
    unknown = sorted(set(changes) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationError({name: ValidationError(f"Unknown setting {name!r}.", code="unknown_setting")
                               for name in unknown}, code="unknown_setting")
    cleaned = {field: clean_config_value(field, value) for field, value in changes.items()}
    with transaction.atomic():
        config = locked_config()
        diff = {}
        for field, value in cleaned.items():
            old = getattr(config, field)
            if old != value:
                diff[field] = {"old": str(old), "new": str(value)}
                setattr(config, field, value)
        if config.min_buy_amount > config.max_buy_amount:
            raise field_error("min_buy_amount", "The minimum must not exceed the maximum.", code="min_above_max")
        if config.priority_fee_per_gas > config.max_fee_per_gas:
            raise field_error("priority_fee_per_gas", "The priority fee must not exceed max_fee_per_gas.",
                              code="priority_above_max_fee")
        config.execution_schedule = sched.validate_schedule(config.execution_schedule, config.timezone)
        if not diff:
            return config
        if changed_by is not None:
            config._history_user = changed_by  # the history row names the operator (simple-history)
        config.save()
        BuyOrderConfigChange.objects.create(config=config, changed_by=changed_by, changes=diff)
        buy_order_schedule_sync(config=config)
    logger.info("buy-order settings changed by %s: %s", changed_by, diff)
    return config


def buy_order_schedule_sync(*, config: BuyOrderConfig | None = None):
    """Create or update (never delete) the periodic task so that it follows the settings."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    config = config or buy_order_config()
    minute, hour, day_of_month, month_of_year, day_of_week = sched.cron_fields(config.execution_schedule)
    fields = {"minute": minute, "hour": hour, "day_of_month": day_of_month, "month_of_year": month_of_year,
              "day_of_week": day_of_week, "timezone": config.timezone}
    crontab = CrontabSchedule.objects.filter(**fields).order_by("id").first() \
        or CrontabSchedule.objects.create(**fields)
    task = PeriodicTask.objects.filter(name=PERIODIC_TASK_NAME).first()
    if task is None:
        task = PeriodicTask(name=PERIODIC_TASK_NAME, description="Buys AZR with the available revenue, at most "
                                                                 "once per period. Follows the buy-order settings.")
    changed = (task.pk is None or task.crontab_id != crontab.pk or task.task != PERIODIC_TASK
               or task.enabled != config.enabled or task.interval_id or task.solar_id or task.clocked_id)
    if changed:
        task.task = PERIODIC_TASK
        task.crontab = crontab
        task.interval = task.solar = task.clocked = None
        task.enabled = config.enabled
        task.save()
    return task

