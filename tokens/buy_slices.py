"""Split orders: a buy too large for the pool's depth runs as slices, each exactly once.

The plan: the largest input whose price impact stays within ``max_price_impact`` (from the
reserves, :func:`tokens.price_guard.max_input_for_impact`), and the period's amount split into
equal slices no larger than that. The order's row reserves the whole amount; its slices are
rows with ``parent``, ``slice_index`` (unique together) and ``due_at`` (one every
``TOKENS_SLICE_INTERVAL_SECONDS``, 5 minutes by default, so that the pool recovers between them).

Each tick (:func:`buy_order_tick`, the beat task every minute) runs the next due slice of each
open order: the price guard first (a deviation defers the slice and records why), then the
slice is claimed by a conditional update ``planned -> pending`` under a lock on the order's row
-- two beats or a retried task cannot both claim it, and a slice is claimed only when no other
slice of the order is in flight. When no slice is left to run, the order is settled: its
figures are the sum of its completed slices and the unspent rest is released.

An order's slices run within its schedule period (a scheduled order's ``period_key``, a manual
order's the period it was created in): when the period is over, the tick cancels the slices
still planned (the guard kept deferring them, the kill switch was off, the chain was down) and
settles the order with what it got -- the rest is released for the next period's buy.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from common.errors import field_error
from common.money import MONEY_QUANTUM, round_money
from tokens import price_guard as pg
from tokens import schedule as sched
from tokens.buy_orders import BuyOrderResult, _q18, _send_completed_after_commit, sizing, swap_checked
from tokens.chain import ChainError
from tokens.chain.units import from_base_units
from tokens.models import BuyOrder, BuyOrderConfig, BuyOrderDeferral
from tokens.observations import GuardReading, deferral_record, price_guard_read
from tokens.selectors import buy_order_config
from tokens.totals import buy_order_totals_apply

logger = logging.getLogger(__name__)

OPEN = (BuyOrder.Status.PLANNED, BuyOrder.Status.PENDING)


def slice_interval() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "TOKENS_SLICE_INTERVAL_SECONDS", 300)))


def plan(amount: Decimal, *, reading: GuardReading, max_price_impact: Decimal) -> list[Decimal]:
    """The slices of ``amount`` (ZAR) each within ``max_price_impact`` of the pool now."""
    state = reading.state
    largest = from_base_units(pg.max_input_for_impact(state.reserve_base, max_price_impact), state.base_decimals)
    return pg.split(amount, largest.quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def operator_price_check(given_price: Decimal, amount: Decimal, *, reading: GuardReading,
                         config: BuyOrderConfig) -> None:
    """An operator's ``price_per_token`` must be within ``max_price_deviation`` of what the
    TWAP prices this amount at (fee and impact included): a higher price would widen the
    minimum output beyond what the guard allows (a sandwich could take the difference), a lower
    one cannot fill. Raises a ``ValidationError`` (``price_off_twap``); writes nothing."""
    reference = sizing(amount, reading=reading, max_slippage=config.max_slippage).quoted_price
    off = pg.deviation(given_price, reference)
    if off > config.max_price_deviation:
        side = "above" if given_price > reference else "below"
        raise field_error("price_per_token", f"The price {given_price} ZAR/AZR is {off:.2%} {side} the TWAP's price "
                                             f"{reference} ZAR/AZR for this amount (at most "
                                             f"{config.max_price_deviation:.2%} either way).", code="price_off_twap")


def preview_plan(amount: Decimal, *, reading: GuardReading, config: BuyOrderConfig) -> list[dict]:
    """The plan as the preview shows it: each slice's amount, expected price and tokens, impact."""
    rows = []
    for index, part in enumerate(plan(amount, reading=reading, max_price_impact=config.max_price_impact)):
        size = sizing(part, reading=reading, max_slippage=config.max_slippage)
        rows.append({"index": index, "amount": part, "expected_price": size.quoted_price,
                     "expected_tokens": size.expected_tokens, "min_tokens_out": size.min_tokens,
                     "price_impact": size.price_impact})
    return rows


def create(fields: dict, parts: list[Decimal], *, now: datetime, reading: GuardReading, config: BuyOrderConfig,
           given_price: Decimal | None) -> BuyOrder:
    """The order's row and its planned slices (the caller holds the settings lock)."""
    sizes = [sizing(part, reading=reading, max_slippage=config.max_slippage, given_price=given_price)
             for part in parts]
    expected = sum(s.expected_tokens for s in sizes)
    order = BuyOrder.objects.create(**{**fields, "quoted_price": round_money(fields["amount"] / expected,
                                                                             places=MONEY_QUANTUM)},
                                    expected_tokens=expected, min_tokens=sum(s.min_tokens for s in sizes),
                                    slice_count=len(parts), price_impact=max(s.price_impact for s in sizes))
    interval = slice_interval()
    BuyOrder.objects.bulk_create([
        BuyOrder(parent=order, slice_index=index, status=BuyOrder.Status.PLANNED, trigger=order.trigger,
                 amount=part, quoted_price=size.quoted_price, expected_tokens=size.expected_tokens,
                 min_tokens=size.min_tokens, max_slippage=order.max_slippage, disposition=order.disposition,
                 price_impact=size.price_impact, executed_by=order.executed_by, created_at=order.created_at,
                 due_at=now + interval * index)
        for index, (part, size) in enumerate(zip(parts, sizes, strict=True))])
    return order


def run_next(order: BuyOrder, *, now: datetime | None = None, sleep=None,
             reading: GuardReading | None = None) -> BuyOrderResult:
    """Run the order's next due slice, if it may run now (exactly once, whoever calls)."""
    now = now or timezone.now()
    candidate = (order.slices.filter(status=BuyOrder.Status.PLANNED, due_at__lte=now)
                 .order_by("slice_index").first())
    if candidate is None:
        settle(order.pk)
        return BuyOrderResult(success=False, code="nothing_due", error="No slice is due.", order_id=order.pk)
    config = buy_order_config()
    if not config.enabled:
        return BuyOrderResult(success=False, code="disabled", error="Buy-orders are disabled (the kill switch "
                                                                      "is off).", order_id=order.pk)
    if reading is None:
        try:
            reading = price_guard_read(config=config, sleep=sleep)
        except ChainError as exc:
            return BuyOrderResult(success=False, code="chain_unavailable", error=f"No price from the chain: {exc}",
                                  order_id=order.pk)
    if not reading.ok:
        deferral_record(reading, trigger=order.trigger, period_key=order.period_key, slice_of=candidate)
        return BuyOrderResult(success=False, code=reading.refusal_code, error=reading.refusal, order_id=order.pk)
    size = sizing(candidate.amount, reading=reading, max_slippage=order.max_slippage,
                  given_price=None if order.twap_price is not None else candidate.quoted_price)
    with transaction.atomic():
        parent = BuyOrder.objects.select_for_update().get(pk=order.pk)
        in_flight = parent.slices.filter(status=BuyOrder.Status.PENDING).exists()
        claimed = not in_flight and parent.status == BuyOrder.Status.PENDING and BuyOrder.objects.filter(
            pk=candidate.pk, status=BuyOrder.Status.PLANNED).update(
            status=BuyOrder.Status.PENDING, quoted_price=size.quoted_price, expected_tokens=size.expected_tokens,
            min_tokens=size.min_tokens, price_impact=size.price_impact, spot_price=_q18(reading.spot),
            twap_price=_q18(reading.twap), created_at=timezone.now())
    if not claimed:
        return BuyOrderResult(success=False, code="already_claimed", order_id=order.pk,
                              error=f"Slice {candidate.slice_index + 1} is taken, or another slice is in flight.")
    candidate.refresh_from_db()
    logger.info("buy-order %s: slice %s/%s of %s ZAR at %s ZAR/AZR (impact %s)", order.pk,
                candidate.slice_index + 1, order.slice_count, candidate.amount, size.quoted_price, size.price_impact)
    result = swap_checked(candidate, reading=reading, config=config, sleep=sleep)
    candidate.refresh_from_db()
    if candidate.warning or candidate.status == BuyOrder.Status.FAILED:
        _cancel_rest(order.pk, reason=candidate.warning or f"Slice {candidate.slice_index + 1} failed.")
    settle(order.pk)
    return result


def _cancel_rest(order_id: int, *, reason: str) -> None:
    count = BuyOrder.objects.filter(parent_id=order_id, status=BuyOrder.Status.PLANNED).update(
        status=BuyOrder.Status.CANCELLED, error=f"Not run: {reason}", completed_at=timezone.now())
    if count:
        logger.warning("buy-order %s: %s planned slices cancelled: %s", order_id, count, reason)


def settle(order_id: int) -> BuyOrder:
    """When no slice is planned or in flight: the order's figures are the sum of its completed
    slices (the rest of its amount released), or it failed when none completed. Idempotent."""
    with transaction.atomic():
        order = BuyOrder.objects.select_for_update().get(pk=order_id)
        if order.status != BuyOrder.Status.PENDING or order.slices.filter(status__in=OPEN).exists():
            return order
        done = order.slices.filter(status=BuyOrder.Status.COMPLETED)
        totals = done.aggregate(amount=Sum("amount"), tokens=Sum("tokens_received"), block=Max("block_number"),
                                gas=Sum("gas_used"))
        exact = sum((Decimal(t) for t in done.values_list("tokens_received_exact", flat=True)), Decimal(0))
        if totals["tokens"]:
            BuyOrder.objects.filter(pk=order.pk).update(
                status=BuyOrder.Status.COMPLETED, amount=totals["amount"], tokens_received=totals["tokens"],
                tokens_received_exact=str(exact), block_number=totals["block"], gas_used=totals["gas"],
                price_per_token=round_money(totals["amount"] / exact, places=MONEY_QUANTUM),
                completed_at=timezone.now())
            order.refresh_from_db()
            buy_order_totals_apply(order=order, old_status=BuyOrder.Status.PENDING)
            _send_completed_after_commit(order)
        else:
            errors = "; ".join(e for e in order.slices.order_by("slice_index").values_list("error", flat=True) if e)
            BuyOrder.objects.filter(pk=order.pk).update(status=BuyOrder.Status.FAILED, completed_at=timezone.now(),
                                                        error=f"No slice was bought: {errors}"[:2000])
            order.refresh_from_db()
            buy_order_totals_apply(order=order, old_status=BuyOrder.Status.PENDING)
    logger.info("buy-order %s settled from its slices: %s", order.pk, order.status)
    return order


def period_over(order: BuyOrder, *, config: BuyOrderConfig, now: datetime) -> bool:
    """Whether the schedule period the order belongs to has ended (see the module docstring)."""
    schedule, tz = config.execution_schedule, config.timezone
    own = order.period_key or sched.period_key(schedule, tz, order.created_at)
    return sched.period_key(schedule, tz, now) != own


def expire(order: BuyOrder) -> BuyOrder:
    """Cancel the order's planned slices (its period is over) and settle it with what it got."""
    _cancel_rest(order.pk, reason="the order's schedule period ended before this slice could run.")
    return settle(order.pk)


def buy_order_tick(*, now: datetime | None = None, sleep=None) -> dict:
    """What the beat task runs each minute after the price observation: the next due slice of
    each open split order (or, its period over, the order expired), and a retry of this period's
    scheduled buy when the guard deferred it."""
    now = now or timezone.now()
    ran = expired = 0
    config = buy_order_config()
    for order in BuyOrder.objects.filter(status=BuyOrder.Status.PENDING, slice_count__isnull=False).order_by("id"):
        if period_over(order, config=config, now=now):
            expired += expire(order).status != BuyOrder.Status.PENDING
            continue
        ran += run_next(order, now=now, sleep=sleep).success
    retried = None
    if config.enabled:
        period_key = sched.period_key(config.execution_schedule, config.timezone, now)
        deferred = BuyOrderDeferral.objects.filter(period_key=period_key, slice_of__isnull=True,
                                                   trigger=BuyOrder.Trigger.SCHEDULED).exists()
        if deferred and not BuyOrder.objects.filter(period_key=period_key).exists():
            from tokens.buy_orders import buy_order_run_scheduled

            retried = buy_order_run_scheduled(now=now, sleep=sleep).code
    return {"slices_run": ran, "orders_expired": expired, "deferred_retry": retried}
