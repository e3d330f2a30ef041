"""Writes of the tokens app: revenue, exchange rates, settings and schedule, buy-orders.

Revenue: ``revenue_track`` records it once per (source, reference); a counted purchase is
``pack_sale`` revenue (``revenue_record_pack_sale``), and its refund reverses it with a negative
record of the same amounts (``revenue_reverse_pack_sale``, exactly once; a sweeper catches lost
messages).

A buy-order (``buy_order_execute``, or ``buy_order_run_scheduled`` for the beat task):

1. refused when the kill switch is off or the given price is <= 0 (no row);
2. the price is the given one, else the pool's quote;
3. under a lock on the settings row: the amount is the given one, else the available
   revenue; below the minimum it is refused (no row), above the maximum capped; a scheduled
   run also claims its period key (unique) and is refused when the period already has one;
   the ``pending`` row is written and committed (it reserves the amount);
4. the swap, outside any transaction: ``min_tokens_out = expected x (1 - max slippage)``;
   the signed transaction's hash is stored on the row before it is sent; transport errors are
   retried (1 s, 2 s, 4 s, capped at 30 s) after looking up every hash already signed, so a
   retry never pays twice; a revert is recorded ``failed`` with its reason, not retried;
5. ``completed`` with the receipt's figures, and ``buy_order_completed`` after the commit.

When the outcome of a sent transaction cannot be known (the node stayed unreachable), the
row stays ``pending`` -- its amount reserved -- and ``buy_order_reconcile`` settles it later
from the chain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, OuterRef, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from common.errors import field_error
from common.money import MONEY_QUANTUM, ZERO, format_money, round_money, to_decimal, to_money
from purchases.models import Purchase, Refund
from tokens import schedule as sched
from tokens.chain import (
    BuyReceipt,
    ChainClient,
    ChainError,
    ChainRevertError,
    ChainTransportError,
    NodeFollowingClient,
)
from tokens.models import BuyOrder, BuyOrderConfig, BuyOrderConfigChange, ExchangeRate, Revenue
from tokens.selectors import available_revenue, buy_order_config, exchange_rate_current
from tokens.signals import buy_order_completed

logger = logging.getLogger(__name__)

BASE_CURRENCY = "ZAR"
PERIODIC_TASK_NAME = "tokens: scheduled buy-order"
PERIODIC_TASK = "tokens.buy_order_scheduled"
RETRY_DELAYS = (1, 2, 4)  # seconds before retry 1, 2, 3
RETRY_DELAY_CAP = 30

# --- The chain client: one per process -------------------------------------------------------

_clients = NodeFollowingClient()
# The embedded chain is not thread-safe: every chain call of this module goes through this lock.
chain_lock = threading.RLock()


def chain_client() -> ChainClient:
    """The process-wide chain client (the embedded chain unless ``WEB3_PROVIDER_URI`` is set).

    Follows a restarted local node: when its info file changes, the next call builds a
    client for the new chain and treasury key (no restart of the web or worker needed).
    """
    return _clients.get()


def chain_client_set(client: ChainClient | None) -> None:
    """Replace the process-wide client (tests, or an override) -- kept as is; None resets."""
    _clients.set(client)


# The pause between retries; tests replace it (``tokens.services.retry_sleep = ...``).
retry_sleep: Callable[[float], None] = time.sleep


# --- Revenue and exchange rates ----------------------------------------------------------------


def _clean_currency(currency) -> str:
    if not isinstance(currency, str) or len(currency.strip()) != 3 or not currency.strip().isalpha() \
            or not currency.strip().isascii():
        raise field_error("currency", "The currency must be an ISO 4217 code of 3 letters (e.g. ZAR, USD).",
                          code="invalid_currency")
    return currency.strip().upper()


def revenue_track(*, source: str, amount, currency: str = BASE_CURRENCY, external_ref: str | None = None,
                  recorded_at: datetime | None = None) -> Revenue:
    """Record revenue; the same (source, external_ref) is recorded once and returned again."""
    return revenue_track_with_status(source=source, amount=amount, currency=currency,
                                     external_ref=external_ref, recorded_at=recorded_at)[0]


def revenue_track_with_status(*, source: str, amount, currency: str = BASE_CURRENCY,
                              external_ref: str | None = None,
                              recorded_at: datetime | None = None) -> tuple[Revenue, bool]:
    """`revenue_track`, and whether the record was created (False: an earlier one returned)."""
    if source not in Revenue.Source.values:
        raise field_error("source", f"Unknown source {source!r}: use one of "
                                    f"{', '.join(Revenue.Source.values)}.", code="unknown_source")
    amount = to_money(amount)
    currency = _clean_currency(currency)
    if external_ref is not None:
        external_ref = str(external_ref).strip() or None
        if external_ref and len(external_ref) > 200:
            raise field_error("external_ref", "The external reference is too long (200 at most).",
                              code="max_length")
    if external_ref:
        existing = Revenue.objects.filter(source=source, external_ref=external_ref).first()
        if existing is not None:
            return _same_revenue(existing, amount=amount, currency=currency), False
    rate = _rate_to_zar(currency)
    amount_zar = _amount_zar(amount, rate)
    try:
        with transaction.atomic():
            record = Revenue.objects.create(source=source, amount=amount, currency=currency, rate_to_zar=rate,
                                            amount_zar=amount_zar, external_ref=external_ref,
                                            recorded_at=recorded_at or timezone.now())
    except IntegrityError:
        # A concurrent retry recorded the same reference first.
        existing = Revenue.objects.filter(source=source, external_ref=external_ref).first()
        if external_ref and existing is not None:
            return _same_revenue(existing, amount=amount, currency=currency), False
        raise
    logger.info("revenue %s recorded: %s %s = %s ZAR (ref %s)", record.pk, amount, currency, amount_zar,
                external_ref)
    return record, True


def _rate_to_zar(currency: str) -> Decimal:
    """The rate a record in `currency` is converted with now (1 for ZAR)."""
    if currency == BASE_CURRENCY:
        return Decimal(1)
    row = exchange_rate_current(currency=currency)
    if row is None:
        raise field_error("currency", f"No exchange rate for {currency}: add a {currency}→ZAR rate "
                                      "in the admin first.", code="no_exchange_rate")
    return row.rate_to_zar


def _amount_zar(amount: Decimal, rate: Decimal) -> Decimal:
    amount_zar = round_money(amount * rate, places=MONEY_QUANTUM)
    if amount_zar <= 0:
        raise field_error("amount", "The amount is too small to convert to ZAR.", code="amount_too_small")
    to_money(amount_zar, field="amount_zar")  # fits the column
    return amount_zar


def _same_revenue(existing: Revenue, *, amount: Decimal, currency: str) -> Revenue:
    if existing.amount != amount or existing.currency != currency:
        raise field_error("external_ref", f"The reference {existing.external_ref!r} was already recorded "
                                          f"with {format_money(existing.amount)} {existing.currency}; a retry "
                                          "must send the same amount and currency.", code="reference_conflict")
    return existing


def exchange_rate_set(*, currency: str, rate_to_zar, valid_from: datetime | None = None, note: str = "",
                      created_by=None) -> ExchangeRate:
    """Add a rate row for ``currency`` (1 unit = ``rate_to_zar`` ZAR); the newest row wins."""
    currency = _clean_currency(currency)
    if currency == BASE_CURRENCY:
        raise field_error("currency", "ZAR is the base currency: its rate is always 1.", code="base_currency")
    rate = to_money(rate_to_zar, field="rate_to_zar")
    row = ExchangeRate.objects.create(currency=currency, rate_to_zar=rate, valid_from=valid_from or timezone.now(),
                                      note=note[:200], created_by=created_by)
    logger.info("exchange rate %s: 1 %s = %s ZAR from %s", row.pk, currency, rate, row.valid_from)
    return row


def revenue_record_pack_sale(*, purchase) -> Revenue | None:
    """`pack_sale` revenue for a counted purchase (its price is USD); idempotent per purchase.

    Without a USD rate nothing is recorded and an error is logged: the purchase is not
    affected, and ``manage.py tokens_record_pack_sales`` records the missing ones later.
    """
    if not purchase.is_counted:
        return None
    if purchase.kind == "legacy" and not getattr(settings, "TOKENS_LEGACY_PURCHASES_ARE_REVENUE", True):
        return None
    try:
        return revenue_track(source=Revenue.Source.PACK_SALE, amount=purchase.price, currency="USD",
                             external_ref=_pack_sale_ref(purchase.pk), recorded_at=purchase.created_at)
    except ValidationError as exc:
        logger.error("pack-sale revenue of purchase %s (%s USD) NOT recorded: %s -- fix it, then run "
                     "`manage.py tokens_record_pack_sales`", purchase.pk, purchase.price, exc.messages)
        return None


def revenue_record_pack_sales(*, purchases) -> int:
    """`revenue_record_pack_sale` for a batch of purchases (the legacy import): the USD rate
    read once, the references already recorded skipped in one look-up, the rest in one INSERT
    (ON CONFLICT DO NOTHING: a concurrent single record of the same purchase wins, once).
    Returns how many were still missing at the look-up. Without a USD rate nothing is recorded and an
    error is logged, as for a single purchase (``tokens_record_pack_sales`` catches up).
    """
    legacy_counts = getattr(settings, "TOKENS_LEGACY_PURCHASES_ARE_REVENUE", True)
    todo = [p for p in purchases if p.is_counted and (legacy_counts or p.kind != "legacy")]
    if not todo:
        return 0
    try:
        rate = _rate_to_zar("USD")
    except ValidationError as exc:
        logger.error("pack-sale revenue of %d purchases (%s…%s) NOT recorded: %s -- fix it, then run "
                     "`manage.py tokens_record_pack_sales`", len(todo), todo[0].pk, todo[-1].pk, exc.messages)
        return 0
    refs = {_pack_sale_ref(p.pk): p for p in todo}
    done = set(Revenue.objects.filter(source=Revenue.Source.PACK_SALE, external_ref__in=list(refs))
               .values_list("external_ref", flat=True))
    rows = []
    for ref, purchase in refs.items():
        if ref in done:
            continue
        try:
            amount = to_money(purchase.price)
            rows.append(Revenue(source=Revenue.Source.PACK_SALE, amount=amount, currency="USD", rate_to_zar=rate,
                                amount_zar=_amount_zar(amount, rate), external_ref=ref,
                                recorded_at=purchase.created_at))
        except ValidationError as exc:
            logger.error("pack-sale revenue of purchase %s (%s USD) NOT recorded: %s", purchase.pk,
                         purchase.price, exc.messages)
    if not rows:
        return 0
    Revenue.objects.bulk_create(rows, ignore_conflicts=True)
    logger.info("pack-sale revenue of %d purchases recorded (%s…%s)", len(rows), rows[0].external_ref,
                rows[-1].external_ref)
    return len(rows)


def _pack_sale_ref(purchase_id) -> str:
    return f"purchase:{purchase_id}"


def _refund_ref(refund_id) -> str:
    return f"refund:{refund_id}"


def revenue_reverse_pack_sale(*, refund_id: int) -> Revenue | None:
    """Reverse the `pack_sale` revenue of a refunded purchase (money-lifecycle §2): a negative
    record of the same amounts (same currency, rate and ZAR amount as recorded), source
    `pack_sale`, `external_ref` = `refund:<refund id>`, pointing at the record it reverses.

    Exactly once: the reversal is unique per record (`reverses`) and per reference; a retry
    returns the first one. None when the purchase's sale was never recorded (nothing to take
    back). The available revenue never goes below zero (`available_revenue` clamps it): when
    the revenue was already spent on buys, the deficit is made up by the next revenue first.
    """
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise ValidationError({"refund_id": ValidationError(f"Unknown refund {refund_id}.", code="unknown_refund")})
    original = Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                      external_ref=_pack_sale_ref(refund.purchase_id)).first()
    if original is None:
        return None
    existing = Revenue.objects.filter(reverses=original).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            record = Revenue.objects.create(
                source=Revenue.Source.PACK_SALE, amount=-original.amount, currency=original.currency,
                rate_to_zar=original.rate_to_zar, amount_zar=-original.amount_zar,
                external_ref=_refund_ref(refund.pk), reverses=original)
    except IntegrityError:  # a concurrent retry reversed it first
        return Revenue.objects.get(reverses=original)
    logger.info("revenue %s reversed by %s (refund %s): %s ZAR", original.pk, record.pk, refund.pk,
                record.amount_zar)
    return record


def pack_sale_reversals_sweep(*, older_than_minutes: int = 5, limit: int = 500) -> int:
    """Reverse the recorded pack-sale revenue of refunds that have no reversal after some
    minutes (a lost message). One query finds them (an anti-join on the references)."""
    def ref(prefix, field_name):
        return Concat(Value(prefix), Cast(OuterRef(field_name), CharField()), output_field=CharField())

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(Refund.objects.filter(created_at__lt=cutoff, purchase__kind__in=Purchase.COUNTED_KINDS)
               .filter(Exists(Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                                     external_ref=ref("purchase:", "purchase_id"))))
               .exclude(Exists(Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                                      external_ref=ref("refund:", "pk"))))
               .order_by("id").values_list("id", flat=True)[:limit])
    done = 0
    for refund_id in ids:
        try:
            done += revenue_reverse_pack_sale(refund_id=refund_id) is not None
        except Exception:  # one bad row must not stop the sweep; logged, retried next time
            logger.exception("tokens: reversing the pack-sale revenue of refund %s failed", refund_id)
    return done


# --- Settings and schedule ---------------------------------------------------------------------

CONFIG_FIELDS = ("revenue_percentage", "execution_schedule", "timezone", "min_buy_amount", "max_buy_amount",
                 "max_slippage", "disposition", "enabled")


def _clean_config_value(field: str, value):
    if field == "revenue_percentage":
        value = to_decimal(value, field=field)
        if not (ZERO < value <= 1):
            raise field_error(field, "The revenue percentage is a fraction: more than 0, at most 1 (100%).",
                              code="out_of_range")
        if value != value.quantize(Decimal("0.0001"), rounding=ROUND_DOWN):
            raise field_error(field, "The revenue percentage has at most 4 decimal places (0.0001 = 0.01%).",
                              code="max_decimal_places")
        return value.quantize(Decimal("0.0001"))
    if field == "max_slippage":
        value = to_decimal(value, field=field)
        if not (ZERO <= value < 1):
            raise field_error(field, "The maximum slippage is a fraction: at least 0, less than 1.",
                              code="out_of_range")
        if value != value.quantize(Decimal("0.0001"), rounding=ROUND_DOWN):
            raise field_error(field, "The maximum slippage has at most 4 decimal places.",
                              code="max_decimal_places")
        return value.quantize(Decimal("0.0001"))
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
    raise field_error(field, f"Unknown setting {field!r}.", code="unknown_setting")


def _locked_config() -> BuyOrderConfig:
    """The settings row under ``SELECT ... FOR UPDATE`` (created with the defaults if missing)."""
    BuyOrderConfig.objects.get_or_create(pk=BuyOrderConfig.SINGLETON_PK)
    return BuyOrderConfig.objects.select_for_update().get(pk=BuyOrderConfig.SINGLETON_PK)


def buy_order_config_update(*, changed_by=None, **changes) -> BuyOrderConfig:
    """Validate and apply ``changes`` to the settings; keep an audit row; follow with the schedule."""
    unknown = sorted(set(changes) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationError({name: ValidationError(f"Unknown setting {name!r}.", code="unknown_setting")
                               for name in unknown}, code="unknown_setting")
    cleaned = {field: _clean_config_value(field, value) for field, value in changes.items()}
    with transaction.atomic():
        config = _locked_config()
        diff = {}
        for field, value in cleaned.items():
            old = getattr(config, field)
            if old != value:
                diff[field] = {"old": str(old), "new": str(value)}
                setattr(config, field, value)
        if config.min_buy_amount > config.max_buy_amount:
            raise field_error("min_buy_amount", "The minimum must not exceed the maximum.", code="min_above_max")
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


# --- Buy-orders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuyOrderResult:
    success: bool
    tokens_acquired: Decimal = ZERO
    rand_spent: Decimal = ZERO
    price_per_token: Decimal | None = None
    transaction_hash: str | None = None
    error: str | None = None
    code: str = "ok"
    order_id: int | None = None

    def as_dict(self) -> dict:
        return {"success": self.success, "tokens_acquired": self.tokens_acquired, "rand_spent": self.rand_spent,
                "price_per_token": self.price_per_token, "transaction_hash": self.transaction_hash,
                "error": self.error, "code": self.code, "order_id": self.order_id}


def _refused(code: str, error: str) -> BuyOrderResult:
    logger.info("buy-order refused (%s): %s", code, error)
    return BuyOrderResult(success=False, error=error, code=code)


def _retry_delay(attempt: int) -> float:
    return min(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)], RETRY_DELAY_CAP)


def _with_retries(operation: Callable, *, what: str, sleep: Callable[[float], None], on_attempt=None):
    """Run ``operation``; after a transport error wait 1 s, 2 s, 4 s and retry (3 retries)."""
    for attempt in range(len(RETRY_DELAYS) + 1):
        if on_attempt is not None:
            on_attempt(attempt + 1)
        try:
            with chain_lock:
                return operation()
        except ChainTransportError as exc:
            if attempt == len(RETRY_DELAYS):
                raise
            delay = _retry_delay(attempt)
            logger.warning("%s: transport error (%s); retry %s in %ss", what, exc, attempt + 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _quote_price(sleep) -> Decimal:
    price = _with_retries(lambda: chain_client().quote_price(), what="price quote", sleep=sleep)
    return round_money(price, places=MONEY_QUANTUM)


def buy_order_execute(*, price_per_token=None, amount=None) -> BuyOrderResult:
    """A manual buy-order (see the module docstring)."""
    return buy_order_run(price_per_token=price_per_token, amount=amount, trigger=BuyOrder.Trigger.MANUAL)


def buy_order_run_scheduled(*, now: datetime | None = None, executed_by=None, sleep=None) -> BuyOrderResult:
    """This schedule period's buy-order: at most one per period, whoever calls it and how often."""
    buy_order_reconcile_stale(sleep=sleep)
    return buy_order_run(trigger=BuyOrder.Trigger.SCHEDULED, now=now, executed_by=executed_by, sleep=sleep)


def buy_order_run(*, price_per_token=None, amount=None, trigger: str = BuyOrder.Trigger.MANUAL,
                  now: datetime | None = None, executed_by=None, sleep=None) -> BuyOrderResult:
    sleep = sleep or retry_sleep
    config = buy_order_config()
    if not config.enabled:
        return _refused("disabled", "Buy-orders are disabled (the kill switch is off).")
    # Bad input is a ValidationError (python-api.md), raised before anything is written.
    if price_per_token is not None:
        price = to_decimal(price_per_token, field="price_per_token")
        if price <= 0:
            raise field_error("price_per_token", "The price per token must be greater than zero.",
                              code="min_value")
        price = round_money(price, places=MONEY_QUANTUM)
        if price <= 0:
            raise field_error("price_per_token", "The price per token is too small (8 decimal places at most).",
                              code="min_value")
    if amount is not None:
        amount = to_money(amount)
    if price_per_token is None:
        try:
            price = _quote_price(sleep)
        except ChainError as exc:
            return _refused("chain_unavailable", f"No price quote from the chain: {exc}")
        if price <= 0:
            return _refused("invalid_price", "The chain quoted no usable price.")

    with transaction.atomic():
        config = _locked_config()
        if not config.enabled:
            return _refused("disabled", "Buy-orders are disabled (the kill switch is off).")
        period_key = None
        if trigger == BuyOrder.Trigger.SCHEDULED:
            period_key = sched.period_key(config.execution_schedule, config.timezone, now or timezone.now())
            earlier = BuyOrder.objects.filter(period_key=period_key).first()
            if earlier is not None:
                return _refused("already_ran", f"This period ({period_key}) already has buy-order #{earlier.pk} "
                                               f"({earlier.status}).")
        available = available_revenue(config=config)
        # An explicit amount is the caller's decision (spec §3.3); it is still capped below.
        requested = available if amount is None else amount
        if requested < config.min_buy_amount:
            return _refused("below_minimum", f"The amount {requested} ZAR (available: {available} ZAR) is below "
                                             f"the minimum buy of {config.min_buy_amount} ZAR.")
        spend = min(requested, config.max_buy_amount)
        expected = (spend / price).quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
        minimum = (expected * (1 - config.max_slippage)).quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
        try:
            with transaction.atomic():
                order = BuyOrder.objects.create(
                    trigger=trigger, period_key=period_key, amount=spend, quoted_price=price,
                    expected_tokens=expected, min_tokens=minimum, max_slippage=config.max_slippage,
                    disposition=config.disposition, executed_by=executed_by)
        except IntegrityError:
            return _refused("already_ran", f"This period ({period_key}) already has a buy-order.")
    logger.info("buy-order %s pending: %s ZAR at %s ZAR/AZR, min %s AZR (%s%s)", order.pk, spend, price, minimum,
                trigger, f", {period_key}" if period_key else "")
    return _swap(order, sleep=sleep)


def _swap(order: BuyOrder, *, sleep) -> BuyOrderResult:
    signed: list[str] = []

    def on_signed(tx_hash: str) -> None:
        # Stored (committed) before the transaction is sent: a retry or a reconciliation finds it.
        if tx_hash not in signed:
            signed.append(tx_hash)
        BuyOrder.objects.filter(pk=order.pk).update(tx_hash=tx_hash)

    def count_attempt(n: int) -> None:
        BuyOrder.objects.filter(pk=order.pk).update(attempts=n)

    def attempt() -> BuyReceipt:
        client = chain_client()
        for tx_hash in reversed(signed):
            receipt = client.receipt_for(tx_hash)  # raises ChainRevertError when it reverted
            if receipt is not None:
                logger.info("buy-order %s: %s was mined after all", order.pk, tx_hash)
                return _finish_burn(client, receipt, order)
        return client.buy(amount=order.amount, min_tokens_out=order.min_tokens, disposition=order.disposition,
                          on_signed=on_signed)

    try:
        receipt = _with_retries(attempt, what=f"buy-order {order.pk}", sleep=sleep, on_attempt=count_attempt)
    except ChainRevertError as exc:
        return _fail(order, f"Reverted: {exc.reason}", tx_hash=exc.tx_hash or (signed[-1] if signed else None))
    except ChainTransportError as exc:
        if signed:
            message = (f"Outcome unknown after {len(RETRY_DELAYS)} retries ({exc}); the order stays pending, its "
                       f"amount reserved, until reconciled from the chain (transaction {signed[-1]}).")
            BuyOrder.objects.filter(pk=order.pk).update(error=message)
            logger.error("buy-order %s: %s", order.pk, message)
            return BuyOrderResult(success=False, error=message, code="unknown_outcome", order_id=order.pk,
                                  transaction_hash=signed[-1], rand_spent=ZERO)
        return _fail(order, f"The chain could not be reached: {exc}")
    except ChainError as exc:
        return _fail(order, f"Chain error: {exc}", tx_hash=signed[-1] if signed else None)
    except Exception as exc:
        logger.exception("buy-order %s: unexpected error", order.pk)
        if signed:
            BuyOrder.objects.filter(pk=order.pk).update(error=f"Unexpected error: {exc!r}; reconcile it.")
            return BuyOrderResult(success=False, error=f"Unexpected error: {exc!r}", code="unknown_outcome",
                                  order_id=order.pk, transaction_hash=signed[-1])
        return _fail(order, f"Unexpected error: {exc!r}")
    return _complete(order, receipt)


def _finish_burn(client: ChainClient, receipt: BuyReceipt, order: BuyOrder) -> BuyReceipt:
    """A swap found mined on a retry: burn its tokens if asked (the first attempt never got there)."""
    if order.disposition != BuyOrderConfig.Disposition.BURN:
        return receipt
    try:
        return replace(receipt, burn_tx_hash=client.burn(receipt.tokens_received))
    except ChainError as exc:
        return replace(receipt, burn_error=str(exc))


def _complete(order: BuyOrder, receipt: BuyReceipt) -> BuyOrderResult:
    tokens = receipt.tokens_received
    stored_tokens = tokens.quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
    price = round_money(order.amount / tokens, places=MONEY_QUANTUM)
    error = f"Bought, but the burn failed; the treasury holds the tokens: {receipt.burn_error}" \
        if receipt.burn_error else ""
    with transaction.atomic():
        updated = BuyOrder.objects.filter(pk=order.pk, status=BuyOrder.Status.PENDING).update(
            status=BuyOrder.Status.COMPLETED, tx_hash=receipt.tx_hash, block_number=receipt.block_number,
            gas_used=receipt.gas_used, tokens_received=stored_tokens, tokens_received_exact=str(tokens),
            price_per_token=price, burn_tx_hash=receipt.burn_tx_hash or "", error=error,
            completed_at=timezone.now())
        order.refresh_from_db()
        if updated:
            _send_completed_after_commit(order)
    logger.info("buy-order %s completed: %s AZR for %s ZAR (%s ZAR/AZR) in %s", order.pk, tokens, order.amount,
                price, receipt.tx_hash)
    return BuyOrderResult(success=True, tokens_acquired=tokens, rand_spent=order.amount, price_per_token=price,
                          transaction_hash=receipt.tx_hash, error=error or None, order_id=order.pk)


def _fail(order: BuyOrder, error: str, *, tx_hash: str | None = None) -> BuyOrderResult:
    fields = {"status": BuyOrder.Status.FAILED, "error": error, "completed_at": timezone.now()}
    if tx_hash:
        fields["tx_hash"] = tx_hash
    BuyOrder.objects.filter(pk=order.pk, status=BuyOrder.Status.PENDING).update(**fields)
    logger.warning("buy-order %s failed: %s", order.pk, error)
    return BuyOrderResult(success=False, error=error, code="failed", order_id=order.pk, transaction_hash=tx_hash)


def _send_completed_after_commit(order: BuyOrder) -> None:
    def send():
        for receiver, result in buy_order_completed.send_robust(sender=BuyOrder, buy_order=order):
            if isinstance(result, Exception):
                logger.error("buy_order_completed receiver %r failed for buy-order %s", receiver, order.pk,
                             exc_info=result)

    transaction.on_commit(send)


def buy_order_reconcile(*, order: BuyOrder, stale_after: timedelta | None = None, sleep=None) -> BuyOrder:
    """Settle a ``pending`` order from the chain: completed or failed when the chain says so.

    An order with a transaction hash takes the outcome of that transaction; a pending order
    whose transaction the node never got, or with none, fails once older than ``stale_after``
    (so a buy still in flight is left alone).
    """
    sleep = sleep or retry_sleep
    stale_after = stale_after if stale_after is not None else timedelta(
        minutes=getattr(settings, "TOKENS_PENDING_STALE_MINUTES", 15))
    order.refresh_from_db()
    if order.status != BuyOrder.Status.PENDING:
        return order
    is_stale = order.created_at <= timezone.now() - stale_after
    if order.tx_hash:
        try:
            receipt = _with_retries(lambda: chain_client().receipt_for(order.tx_hash), what="reconcile", sleep=sleep)
        except ChainRevertError as exc:
            _fail(order, f"Reverted: {exc.reason}", tx_hash=order.tx_hash)
            return _refreshed(order)
        except ChainTransportError:
            return order
        if receipt is not None:
            _complete(order, receipt)
            return _refreshed(order)
        if is_stale:
            _fail(order, "Abandoned: its transaction never reached the chain.")
    elif is_stale:
        _fail(order, "Abandoned: no transaction was signed (the run stopped before the swap).")
    return _refreshed(order)


def _refreshed(order: BuyOrder) -> BuyOrder:
    order.refresh_from_db()
    return order


def buy_order_reconcile_stale(*, sleep=None) -> int:
    """Reconcile every stale pending order; returns how many were settled."""
    stale_after = timedelta(minutes=getattr(settings, "TOKENS_PENDING_STALE_MINUTES", 15))
    settled = 0
    for order in BuyOrder.objects.filter(status=BuyOrder.Status.PENDING,
                                         created_at__lte=timezone.now() - stale_after).order_by("id"):
        if buy_order_reconcile(order=order, stale_after=stale_after, sleep=sleep).status != BuyOrder.Status.PENDING:
            settled += 1
    return settled


def buy_order_preview() -> dict:
    """What a buy-order would do now: amount, price, expected and minimum tokens. Writes nothing."""
    config = buy_order_config()
    available = available_revenue(config=config)
    amount = min(available, config.max_buy_amount)
    preview = {
        "enabled": config.enabled, "available_revenue": available, "amount": amount,
        "min_buy_amount": config.min_buy_amount, "max_buy_amount": config.max_buy_amount,
        "price_per_token": None, "expected_tokens": None, "min_tokens_out": None,
        "max_slippage": config.max_slippage, "disposition": config.disposition,
        "would_execute": False, "reason": "",
    }
    try:
        with chain_lock:
            price = round_money(chain_client().quote_price(), places=MONEY_QUANTUM)
    except ChainError as exc:
        preview["reason"] = f"No price quote from the chain: {exc}"
        return preview
    expected = (amount / price).quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
    preview.update(price_per_token=price, expected_tokens=expected,
                   min_tokens_out=(expected * (1 - config.max_slippage)).quantize(MONEY_QUANTUM,
                                                                                  rounding=ROUND_DOWN))
    if not config.enabled:
        preview["reason"] = "Buy-orders are disabled (the kill switch is off)."
    elif available < config.min_buy_amount:
        preview["reason"] = f"The available revenue {available} ZAR is below the minimum {config.min_buy_amount} ZAR."
    else:
        preview["would_execute"] = True
        preview["reason"] = "Capped at the maximum." if available > config.max_buy_amount else ""
    return preview
