"""Buy-orders: run, swap, complete or fail, reconcile, preview.

A buy-order (``buy_order_execute``, or ``buy_order_run_scheduled`` for the beat task):

1. refused when the kill switch is off or the given price is <= 0 (no row);
2. the price is the given one, else the pool's quote;
3. under a lock on the settings row: the amount is the given one, else the available
   revenue; below the minimum it is refused (no row), above the maximum capped; a scheduled
   run also claims its period key (unique) and is refused when the period already has one;
   the ``pending`` row is written and committed (it reserves the amount);
4. the swap, outside any transaction: ``min_tokens_out = expected x (1 - max slippage)``;
   the signed transaction's hash is stored on the row before it is sent; transport errors are
   retried (1 s, 2 s, 4 s, capped at 30 s -- :func:`tokens.chain.runtime.with_retries`) after
   looking up every hash already signed, so a retry never pays twice; a revert is recorded
   ``failed`` with its reason, not retried;
5. ``completed`` with the receipt's figures, and ``buy_order_completed`` after the commit.

When the outcome of a sent transaction cannot be known (the node stayed unreachable), the
row stays ``pending`` -- its amount reserved -- and ``buy_order_reconcile`` settles it later
from the chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import field_error
from common.money import MONEY_QUANTUM, ZERO, round_money, to_decimal, to_money
from tokens import price_guard as pg
from tokens import schedule as sched
from tokens.chain import BuyReceipt, ChainClient, ChainError, ChainRevertError, ChainTransportError, runtime
from tokens.chain.errors import ChainFeeAboveCapError
from tokens.chain.runtime import RETRY_DELAYS, chain_client, with_retries
from tokens.chain.txmanager import DbLedger, fee_policy, swap_outcome, swaps_past_their_deadline
from tokens.chain.txmanager import sweep as tx_sweep
from tokens.chain.units import to_base_units
from tokens.models import BuyOrder, BuyOrderConfig, ChainTransaction
from tokens.observations import GuardReading, deferral_record, price_guard_read
from tokens.selectors import available_revenue, buy_order_config
from tokens.settings_schedule import locked_config
from tokens.signals import buy_order_completed
from tokens.totals import buy_order_totals_apply

logger = logging.getLogger(__name__)


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


def buy_order_execute(*, price_per_token=None, amount=None) -> BuyOrderResult:
    """A manual buy-order (see the module docstring)."""
    return buy_order_run(price_per_token=price_per_token, amount=amount, trigger=BuyOrder.Trigger.MANUAL)


def buy_order_run_scheduled(*, now: datetime | None = None, executed_by=None, sleep=None) -> BuyOrderResult:
    """This schedule period's buy-order: at most one per period, whoever calls it and how often."""
    buy_order_reconcile_stale(sleep=sleep)
    return buy_order_run(trigger=BuyOrder.Trigger.SCHEDULED, now=now, executed_by=executed_by, sleep=sleep)


@dataclass(frozen=True)
class Sizing:
    """How one swap is priced: the price it is sized with, expected and minimum output, impact."""

    quoted_price: Decimal
    expected_tokens: Decimal
    min_tokens: Decimal
    price_impact: Decimal | None


def sizing(amount: Decimal, *, reading: GuardReading, max_slippage: Decimal,
           given_price: Decimal | None = None) -> Sizing:
    """The expected output at the TWAP (fee and the swap's own impact included) -- or at the
    operator's given price -- and the minimum ``expected x (1 - max slippage)``. Never the spot.
    The operator's price is a limit: its minimum is never looser than the TWAP's."""
    impact = pg.price_impact(to_base_units(amount, reading.state.base_decimals), reading.state.reserve_base)
    at_twap = None if reading.twap is None else pg.expected_out_at_price(amount, price=reading.twap,
                                                                          reserve_in=reading.reserve_base)
    if given_price is not None:
        price, expected = given_price, amount / given_price
    else:
        expected = at_twap
        price = round_money(amount / expected, places=MONEY_QUANTUM)
    floor = max(expected, at_twap) if at_twap is not None else expected
    expected = expected.quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
    minimum = (floor * (1 - max_slippage)).quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
    return Sizing(price, expected, minimum, impact.quantize(Decimal("1e-10")))


def _clean_price(price_per_token) -> Decimal | None:
    if price_per_token is None:
        return None
    price = to_decimal(price_per_token, field="price_per_token")
    if price <= 0:
        raise field_error("price_per_token", "The price per token must be greater than zero.", code="min_value")
    price = round_money(price, places=MONEY_QUANTUM)
    if price <= 0:
        raise field_error("price_per_token", "The price per token is too small (8 decimal places at most).",
                          code="min_value")
    return price


def buy_order_run(*, price_per_token=None, amount=None, trigger: str = BuyOrder.Trigger.MANUAL,
                  now: datetime | None = None, executed_by=None, sleep=None) -> BuyOrderResult:
    from tokens import buy_slices

    config = buy_order_config()
    if not config.enabled:
        return _refused("disabled", "Buy-orders are disabled (the kill switch is off).")
    # Bad input is a ValidationError (the README's Python API), raised before anything is written.
    given_price = _clean_price(price_per_token)
    if amount is not None:
        amount = to_money(amount)
    now = now or timezone.now()
    period_key = None
    if trigger == BuyOrder.Trigger.SCHEDULED:
        period_key = sched.period_key(config.execution_schedule, config.timezone, now)
        earlier = BuyOrder.objects.filter(period_key=period_key).first()
        if earlier is not None:
            return _refused("already_ran", f"This period ({period_key}) already has buy-order #{earlier.pk} "
                                           f"({earlier.status}).")
    # Refused before any chain call when there is too little (re-checked under the lock below).
    if amount is None and (available := available_revenue(config=config)) < config.min_buy_amount:
        return _refused("below_minimum", f"The amount {available} ZAR (available: {available} ZAR) is below "
                                         f"the minimum buy of {config.min_buy_amount} ZAR.")
    # The price guard: the spot against the TWAP of our own observations, before anything is reserved.
    try:
        reading = price_guard_read(config=config, sleep=sleep)
    except ChainError as exc:
        return _refused("chain_unavailable", f"No price from the chain: {exc}")
    if not reading.ok:
        deferral_record(reading, trigger=trigger, period_key=period_key)
        return BuyOrderResult(success=False, error=reading.refusal, code=reading.refusal_code)
    try:  # the fee cap: defer (no row, nothing spent, the next tick tries again) rather than overpay
        with_retries(lambda: chain_client().suggest_fees(fee_policy(config)), what="fees", sleep=sleep)
    except ChainFeeAboveCapError as exc:
        return _refused("gas_above_cap", f"Deferred: {exc}.")
    except ChainError as exc:
        return _refused("chain_unavailable", f"No fee figures from the chain: {exc}")

    with transaction.atomic():
        config = locked_config()
        if not config.enabled:
            return _refused("disabled", "Buy-orders are disabled (the kill switch is off).")
        if period_key is not None:
            period_key = sched.period_key(config.execution_schedule, config.timezone, now)
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
        try:
            parts = buy_slices.plan(spend, reading=reading, max_price_impact=config.max_price_impact)
        except ValueError as exc:
            return _refused("pool_too_shallow", f"The pool cannot take a buy within the price impact bound: {exc}")
        size = sizing(spend if len(parts) == 1 else parts[0], reading=reading, max_slippage=config.max_slippage,
                      given_price=given_price)
        if given_price is not None:  # refused (ValidationError) when far from the TWAP's price
            buy_slices.operator_price_check(given_price, spend if len(parts) == 1 else parts[0], reading=reading,
                                            config=config)
        if size.quoted_price <= 0 or size.expected_tokens <= 0:
            return _refused("invalid_price", "The TWAP gives no usable price.")
        fields = {"trigger": trigger, "period_key": period_key, "amount": spend, "quoted_price": size.quoted_price,
                  "max_slippage": config.max_slippage, "disposition": config.disposition,
                  "executed_by": executed_by, "spot_price": _q18(reading.spot),
                  # empty when the operator's price sized the order (its slices keep that price)
                  "twap_price": None if given_price is not None else _q18(reading.twap)}
        try:
            with transaction.atomic():
                if len(parts) == 1:
                    order = BuyOrder.objects.create(**fields, expected_tokens=size.expected_tokens,
                                                    min_tokens=size.min_tokens, price_impact=size.price_impact)
                else:
                    order = buy_slices.create(fields, parts, now=now, reading=reading, config=config,
                                              given_price=given_price)
        except IntegrityError:
            return _refused("already_ran", f"This period ({period_key}) already has a buy-order.")
    if order.slice_count:
        logger.info("buy-order %s pending: %s ZAR in %s slices (%s%s)", order.pk, spend, order.slice_count,
                    trigger, f", {period_key}" if period_key else "")
        return buy_slices.run_next(order, now=now, sleep=sleep, reading=reading)
    logger.info("buy-order %s pending: %s ZAR at %s ZAR/AZR, min %s AZR (%s%s)", order.pk, spend,
                size.quoted_price, size.min_tokens, trigger, f", {period_key}" if period_key else "")
    return swap_checked(order, reading=reading, config=config, sleep=sleep)


def _q18(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("1e-18"))


def swap_checked(order: BuyOrder, *, reading: GuardReading, config: BuyOrderConfig, sleep) -> BuyOrderResult:
    """The swap, then the post-swap check: the spot read again must not have moved more than
    the swap itself explains plus ``max_price_impact``; else a warning is kept on the order
    (and a split order stops its further slices)."""
    result = _swap(order, config=config, sleep=sleep)
    if not result.success:
        return result
    try:
        after = with_retries(lambda: chain_client().pair_state(), what="post-swap check", sleep=sleep)
    except ChainError as exc:
        logger.warning("buy-order %s: no post-swap price check: %s", order.pk, exc)
        return result
    state = reading.state
    expected = pg.price_move(to_base_units(order.amount, state.base_decimals), state.reserve_base, state.reserve_azr)
    spot_after = pg.spot_price(after.reserve_base, after.reserve_azr, base_decimals=after.base_decimals,
                               azr_decimals=after.azr_decimals)
    moved = spot_after / reading.spot - 1
    if moved > expected + config.max_price_impact:
        warning = (f"After the swap the spot moved {moved:.2%} (this swap explains {expected:.2%}, tolerance "
                   f"{config.max_price_impact:.2%}): someone else moved the pool; further slices are stopped.")
        BuyOrder.objects.filter(pk=order.pk).update(warning=warning)
        if order.parent_id:
            BuyOrder.objects.filter(pk=order.parent_id).update(warning=warning)
        logger.warning("buy-order %s: %s", order.pk, warning)
        return replace(result, error=(result.error + " " if result.error else "") + warning)
    return result


def _swap(order: BuyOrder, *, config: BuyOrderConfig, sleep) -> BuyOrderResult:
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
        if signed and _swap_may_still_be_mined(order):
            # A retry never signs a second swap beside one that may still be mined (a node that
            # dropped it from its pool, a reorganised block, another node holding it): that
            # swap's nonce -- its replacement or cancellation, the stored bytes sent again -- is
            # the only way on. Buying anew here could buy twice.
            outcome = swap_outcome(client, order, config=config, on_signed=on_signed)
            if outcome.state == "mined":
                logger.info("buy-order %s: its swap was mined after all", order.pk)
                return _finish_burn(client, client.buy_outcome(outcome.receipt), order)
            if outcome.state == "cancelled":
                raise SwapCancelled(outcome.note)
            raise ChainTransportError(f"its swap {signed[-1]} is not mined yet ({outcome.state}"
                                      f"{': ' + outcome.note if outcome.note else ''})")
        return client.buy(amount=order.amount, min_tokens_out=order.min_tokens, disposition=order.disposition,
                          on_signed=on_signed, deadline=runtime.wall_clock() + config.tx_deadline_seconds,
                          policy=fee_policy(config), ledger=DbLedger(buy_order_id=order.pk))

    try:
        receipt = with_retries(attempt, what=f"buy-order {order.pk}", sleep=sleep, on_attempt=count_attempt)
    except ChainRevertError as exc:
        return _fail(order, _revert_message(exc), tx_hash=exc.tx_hash or (signed[-1] if signed else None))
    except SwapCancelled as exc:
        return _fail(order, _cancelled_message(exc.tx_hash))
    except ChainFeeAboveCapError as exc:
        if not signed:  # the fee rose since the check: nothing was signed
            return _defer(order, exc)
        return _fail(order, f"Chain error: {exc}", tx_hash=signed[-1])
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
    burn = (ChainTransaction.objects.filter(buy_order_id=order.pk, purpose=ChainTransaction.Purpose.BURN)
            .exclude(status__in=[ChainTransaction.Status.SEND_FAILED, ChainTransaction.Status.DROPPED])
            .order_by("-id").first())
    if burn is not None:  # another actor finishing this order burned already (the ledger signs one)
        if burn.status == ChainTransaction.Status.MINED:
            return replace(receipt, burn_tx_hash=burn.tx_hash)
        return replace(receipt, burn_error=f"its burn {burn.tx_hash} is {burn.get_status_display().lower()}")
    try:
        return replace(receipt, burn_tx_hash=client.burn(receipt.tokens_received, policy=fee_policy(buy_order_config()),
                                                         ledger=DbLedger(buy_order_id=order.pk)))
    except ChainError as exc:
        return replace(receipt, burn_error=str(exc))


def _complete(order: BuyOrder, receipt: BuyReceipt) -> BuyOrderResult:
    tokens = receipt.tokens_received
    stored_tokens = tokens.quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
    price = round_money(order.amount / tokens, places=MONEY_QUANTUM)
    error = (f"Bought, but the burn was not confirmed ({receipt.burn_error}); the treasury holds the tokens "
             "unless this order's burn transaction (Chain transactions) is mined later.") if receipt.burn_error else ""
    with transaction.atomic():
        updated = BuyOrder.objects.filter(pk=order.pk, status=BuyOrder.Status.PENDING).update(
            status=BuyOrder.Status.COMPLETED, tx_hash=receipt.tx_hash, block_number=receipt.block_number,
            gas_used=receipt.gas_used, tokens_received=stored_tokens, tokens_received_exact=str(tokens),
            price_per_token=price, burn_tx_hash=receipt.burn_tx_hash or "", error=error,
            completed_at=timezone.now())
        order.refresh_from_db()
        if updated:
            buy_order_totals_apply(order=order, old_status=BuyOrder.Status.PENDING)  # a slice: no-op
        if updated and order.parent_id is None:  # a slice is an execution; its order signals when settled
            _send_completed_after_commit(order)
    logger.info("buy-order %s completed: %s AZR for %s ZAR (%s ZAR/AZR) in %s", order.pk, tokens, order.amount,
                price, receipt.tx_hash)
    return BuyOrderResult(success=True, tokens_acquired=tokens, rand_spent=order.amount, price_per_token=price,
                          transaction_hash=receipt.tx_hash, error=error or None, order_id=order.pk)


def _fail(order: BuyOrder, error: str, *, tx_hash: str | None = None) -> BuyOrderResult:
    fields = {"status": BuyOrder.Status.FAILED, "error": error, "completed_at": timezone.now()}
    if tx_hash:
        fields["tx_hash"] = tx_hash
    with transaction.atomic():
        if BuyOrder.objects.filter(pk=order.pk, status=BuyOrder.Status.PENDING).update(**fields):
            buy_order_totals_apply(order=BuyOrder(pk=order.pk, amount=order.amount, status=BuyOrder.Status.FAILED,
                                                  parent_id=order.parent_id),  # a slice: not an order of its own
                                   old_status=BuyOrder.Status.PENDING)
    logger.warning("buy-order %s failed: %s", order.pk, error)
    return BuyOrderResult(success=False, error=error, code="failed", order_id=order.pk, transaction_hash=tx_hash)


def _revert_message(exc: ChainRevertError) -> str:
    if exc.reason == "EXPIRED":
        return "Expired: the swap reached a block after its deadline (reverted EXPIRED); nothing was bought."
    return f"Reverted: {exc.reason}"


class SwapCancelled(ChainError):
    """The order's swap, pending past its deadline, was cancelled: ``tx_hash`` took its nonce."""

    def __init__(self, tx_hash: str) -> None:
        super().__init__(f"cancelled by {tx_hash}")
        self.tx_hash = tx_hash


def _cancelled_message(cancel_hash: str) -> str:
    return (f"Expired: its swap was still pending past its deadline, so it was cancelled (the zero-value "
            f"transaction {cancel_hash} took its nonce); nothing was bought.")


def _swap_may_still_be_mined(order: BuyOrder) -> bool:
    """Whether a swap signed for ``order`` may still be mined: one the node took (or may have
    taken), not one it refused or whose nonce another transaction took."""
    return order.chain_transactions.filter(
        purpose__in=[ChainTransaction.Purpose.SWAP, ChainTransaction.Purpose.CANCEL],
        status__in=[ChainTransaction.Status.SIGNED, ChainTransaction.Status.SENT, ChainTransaction.Status.MINED,
                    ChainTransaction.Status.REVERTED]).exists()


def _defer(order: BuyOrder, exc: ChainFeeAboveCapError) -> BuyOrderResult:
    """Nothing was signed: the row fails with the figures and frees its period for the next tick."""
    error = f"Deferred: {exc}."
    with transaction.atomic():
        if BuyOrder.objects.filter(pk=order.pk, status=BuyOrder.Status.PENDING).update(
                status=BuyOrder.Status.FAILED, error=error, period_key=None, completed_at=timezone.now()):
            buy_order_totals_apply(order=BuyOrder(pk=order.pk, amount=order.amount, status=BuyOrder.Status.FAILED,
                                                  parent_id=order.parent_id), old_status=BuyOrder.Status.PENDING)
    logger.warning("buy-order %s deferred: %s", order.pk, exc)
    return BuyOrderResult(success=False, error=error, code="gas_above_cap", order_id=order.pk)


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
    stale_after = stale_after if stale_after is not None else timedelta(
        minutes=getattr(settings, "TOKENS_PENDING_STALE_MINUTES", 15))
    order.refresh_from_db()
    if order.slice_count:  # a split order settles from its slices
        from tokens import buy_slices

        for part in order.slices.filter(status=BuyOrder.Status.PENDING):
            buy_order_reconcile(order=part, stale_after=stale_after, sleep=sleep)
        buy_slices.settle(order.pk)
        return _refreshed(order)
    if order.status != BuyOrder.Status.PENDING:
        return order
    if order.parent_id:
        _reconcile_one(order, stale_after=stale_after, sleep=sleep)
        from tokens import buy_slices

        buy_slices.settle(order.parent_id)
        return _refreshed(order)
    return _reconcile_one(order, stale_after=stale_after, sleep=sleep)


def _reconcile_one(order: BuyOrder, *, stale_after: timedelta, sleep) -> BuyOrder:
    is_stale = order.created_at <= timezone.now() - stale_after  # a slice's: when it was claimed
    if order.chain_transactions.exists():
        return _reconcile_swaps(order, is_stale=is_stale, sleep=sleep)
    if order.tx_hash:
        try:
            receipt = with_retries(lambda: chain_client().receipt_for(order.tx_hash), what="reconcile", sleep=sleep)
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
        _abandon(order, "Abandoned: no transaction was signed (the run stopped before the swap).", swaps_seen=0)
    return _refreshed(order)


def _abandon(order: BuyOrder, error: str, *, swaps_seen: int) -> None:
    """Fail ``order`` found stale with ``swaps_seen`` swaps -- unless a swap was signed for it
    since the look (a worker still buying: it signs under this row's lock, see
    ``DbLedger._refuse_unwanted``); the next reconciliation follows that swap instead."""
    with transaction.atomic():
        if not list(BuyOrder.objects.select_for_update().filter(pk=order.pk, status=BuyOrder.Status.PENDING)
                    .values_list("pk", flat=True)):
            return
        if ChainTransaction.objects.filter(buy_order_id=order.pk, purpose=ChainTransaction.Purpose.SWAP).count() \
                != swaps_seen:
            logger.info("buy-order %s: a swap was signed while it was reconciled; not abandoned", order.pk)
            return
        _fail(order, error)


# An order whose swap the node does not know fails only this long after the swap's deadline.
DEADLINE_MARGIN_SECONDS = 60


def _reconcile_swaps(order: BuyOrder, *, is_stale: bool, sleep) -> BuyOrder:
    """Every hash of the order's swap (the first and its replacements) is looked up; whichever was
    mined settles the order, once. A stuck one is replaced, or cancelled once past its deadline (a
    mined cancellation fails the order: nothing was bought); one the node never got fails the order
    only once stale and past its wall-clock deadline (it can no longer be mined with effect)."""
    config = buy_order_config()

    def on_signed(tx_hash: str) -> None:
        BuyOrder.objects.filter(pk=order.pk).update(tx_hash=tx_hash)

    swaps_seen = order.chain_transactions.filter(purpose=ChainTransaction.Purpose.SWAP).count()
    try:
        outcome = with_retries(lambda: swap_outcome(chain_client(), order, config=config, on_signed=on_signed),
                               what="reconcile", sleep=sleep)
    except ChainTransportError:
        return order
    if outcome.state == "mined":
        try:
            receipt = chain_client().buy_outcome(outcome.receipt)
        except ChainRevertError as exc:
            _fail(order, _revert_message(exc), tx_hash=exc.tx_hash)
        except ChainError:
            return order
        else:
            _complete(order, _finish_burn(chain_client(), receipt, order))
        return _refreshed(order)
    if outcome.state == "cancelled":
        _fail(order, _cancelled_message(outcome.note))
        return _refreshed(order)
    if outcome.state == "pending":
        if outcome.note:
            logger.info("buy-order %s still pending: %s", order.pk, outcome.note)
        return order
    # The deadline each swap carries, not today's setting (it may have changed since the signing);
    # a minute more, for a server clock ahead of the chain's.
    expired = swaps_past_their_deadline(chain_client(), order, margin=DEADLINE_MARGIN_SECONDS)
    if expired is None:
        expired = outcome.last_signed_at is None or \
            outcome.last_signed_at <= timezone.now() - timedelta(seconds=config.tx_deadline_seconds)
    if is_stale and expired:
        _abandon(order, "Abandoned: its transaction never reached the chain, and its deadline has passed.",
                 swaps_seen=swaps_seen)
    return _refreshed(order)


def _refreshed(order: BuyOrder) -> BuyOrder:
    order.refresh_from_db()
    return order


def buy_order_reconcile_stale(*, sleep=None) -> int:
    """Reconcile every stale pending order; returns how many were settled."""
    stale_after = timedelta(minutes=getattr(settings, "TOKENS_PENDING_STALE_MINUTES", 15))
    settled = 0
    # Single orders and slices; a split order settles from its slices (and its planned slices wait).
    for order in BuyOrder.objects.filter(status=BuyOrder.Status.PENDING, slice_count__isnull=True,
                                         created_at__lte=timezone.now() - stale_after).order_by("id"):
        if buy_order_reconcile(order=order, stale_after=stale_after, sleep=sleep).status != BuyOrder.Status.PENDING:
            settled += 1
    return settled


def chain_sweep(*, sleep=None) -> dict[str, int]:
    """The beat's sweep (every minute): stuck transactions replaced, lost ones sent again, mined
    ones recorded; then every pending order with transactions is reconciled from them."""
    config = buy_order_config()
    counts = with_retries(lambda: tx_sweep(chain_client(), config), what="transaction sweep", sleep=sleep)
    cutoff = timezone.now() - timedelta(seconds=config.replace_after_seconds)
    counts["orders_settled"] = 0
    for order in BuyOrder.objects.filter(status=BuyOrder.Status.PENDING, created_at__lte=cutoff,
                                         chain_transactions__isnull=False).distinct().order_by("id"):
        if buy_order_reconcile(order=order, sleep=sleep).status != BuyOrder.Status.PENDING:
            counts["orders_settled"] += 1
    return counts


def buy_order_preview() -> dict:
    """What a buy-order would do now: amount, TWAP and spot, the plan (slices, expected price and
    impact of each), expected and minimum tokens, the fee figures (gwei: base fee, priority fee,
    the max fee the transaction would carry, the cap), and whether the price guard and the fee cap
    let it go (``would_execute`` false with the reason, e.g. gas above the cap). Writes nothing."""
    from tokens import buy_slices

    config = buy_order_config()
    available = available_revenue(config=config)
    amount = min(available, config.max_buy_amount)
    preview = {
        "enabled": config.enabled, "available_revenue": available, "amount": amount,
        "min_buy_amount": config.min_buy_amount, "max_buy_amount": config.max_buy_amount,
        "price_per_token": None, "expected_tokens": None, "min_tokens_out": None,
        "max_slippage": config.max_slippage, "disposition": config.disposition,
        "spot_price": None, "twap_price": None, "price_deviation": None,
        "max_price_deviation": config.max_price_deviation, "max_price_impact": config.max_price_impact,
        "twap_window_seconds": config.twap_window_seconds, "slices": [], "fees": None,
        "would_execute": False, "reason": "",
    }
    try:
        reading = price_guard_read(config=config, record=False)
    except ChainError as exc:
        preview["reason"] = f"No price from the chain: {exc}"
        return preview
    preview.update(spot_price=_q18(reading.spot), twap_price=_q18(reading.twap),
                   price_deviation=reading.deviation and reading.deviation.quantize(Decimal("1e-6")))
    try:  # the figures of the fee cap, read as the buy would (it defers above the cap)
        quote = with_retries(lambda: chain_client().fee_quote(fee_policy(config)), what="fees")
    except ChainError as exc:
        fee_refusal = f"No fee figures from the chain: {exc}"
    else:
        preview["fees"] = quote.figures()
        fee_refusal = f"Deferred: {quote.above_cap_error()}." if quote.above_cap else ""
    if reading.twap is not None and amount > 0:
        try:
            plan = buy_slices.preview_plan(amount, reading=reading, config=config)
        except ValueError as exc:
            preview["reason"] = f"The pool cannot take a buy within the price impact bound: {exc}"
            return preview
        preview.update(slices=plan, expected_tokens=sum(p["expected_tokens"] for p in plan),
                       min_tokens_out=sum(p["min_tokens_out"] for p in plan))
        preview["price_per_token"] = round_money(amount / preview["expected_tokens"], places=MONEY_QUANTUM)
    if not config.enabled:
        preview["reason"] = "Buy-orders are disabled (the kill switch is off)."
    elif available < config.min_buy_amount:
        preview["reason"] = f"The available revenue {available} ZAR is below the minimum {config.min_buy_amount} ZAR."
    elif not reading.ok:
        preview["reason"] = reading.refusal
    elif fee_refusal:
        preview["reason"] = fee_refusal
    else:
        preview["would_execute"] = True
        preview["reason"] = "Capped at the maximum." if available > config.max_buy_amount else ""
    return preview
