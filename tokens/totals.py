"""Running totals of the buy-orders: what the metrics and the history's count read instead of
scanning a million rows.

One function writes them, :func:`buy_order_totals_apply`, called by whatever changes an
order's status (``tokens.buy_orders`` when an order completes or fails), in the SAME
transaction as that change: the totals can only move with a committed status. A transition
takes the order's old contribution out and puts its new one in, so a later reversal (say
completed → failed) is one more call. Pending orders contribute nothing: they are few and
counted live from the ``(status, created_at, id)`` index.

:func:`buy_order_totals_problems` recomputes the totals from the rows (registered with
``manage.py check_ledger``); :func:`buy_order_totals_rebuild` rewrites them from the rows.

The same row holds the revenue's running total (Σ ``amount_zar`` and the row count), which the
available revenue and the metrics read instead of summing every Revenue row. One function moves
it, :func:`revenue_totals_apply`, called by ``tokens.revenue`` in the same transaction as every
Revenue INSERT, with what was actually inserted (a bulk INSERT … ON CONFLICT DO NOTHING counts
the rows its RETURNING gave). Lock order: a revenue insert takes the totals row LAST (after its
purchase rows and index entries), as a settlement does (after its order row), and holds it only
to its commit -- the callers keep those transactions short.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import Count, F, Q, Sum

from common.money import ZERO
from tokens.models import BuyOrder, BuyOrderTotals, Revenue

ORDER_FIELDS = ("completed_count", "failed_count", "tokens_acquired", "rand_spent")
REVENUE_FIELDS = ("revenue_zar", "revenue_count")
FIELDS = ORDER_FIELDS + REVENUE_FIELDS


def contribution(status: str, *, amount=None, tokens_received=None) -> dict[str, int | Decimal]:
    """What one order in ``status`` adds to the totals (pure)."""
    if status == BuyOrder.Status.COMPLETED:
        return {"completed_count": 1, "failed_count": 0, "tokens_acquired": Decimal(tokens_received or 0),
                "rand_spent": Decimal(amount or 0)}
    if status == BuyOrder.Status.FAILED:
        return {"completed_count": 0, "failed_count": 1, "tokens_acquired": ZERO, "rand_spent": ZERO}
    return dict.fromkeys(ORDER_FIELDS, 0)


def transition_delta(before: dict, after: dict) -> dict:
    """``after − before``, field by field (pure)."""
    return {field: after[field] - before[field] for field in ORDER_FIELDS}


def buy_order_totals_apply(*, order: BuyOrder, old_status: str, old_tokens_received=None) -> None:
    """Move the totals for ``order`` (as it is now, in the database) leaving ``old_status``.

    Must run inside the transaction that changed the status (the row lock it takes on the
    totals is held until that commit, so concurrent settlements add up, never overwrite).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("buy_order_totals_apply must run in the transaction that settles the order")
    if order.parent_id is not None:
        return  # a slice is an execution of its order: the order is counted when it settles
    delta = transition_delta(
        contribution(old_status, amount=order.amount, tokens_received=old_tokens_received),
        contribution(order.status, amount=order.amount, tokens_received=order.tokens_received))
    if not any(delta.values()):
        return
    changes = {field: F(field) + value for field, value in delta.items() if value}
    _move(changes)


def revenue_totals_apply(*, amount_zar: Decimal, count: int) -> None:
    """Add ``count`` revenue rows worth ``amount_zar`` (their Σ, negative for reversals) to the
    running total. Must run inside the transaction that inserted them, after the insert."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("revenue_totals_apply must run in the transaction that inserts the revenue")
    if not count:
        return
    _move({"revenue_zar": F("revenue_zar") + Decimal(amount_zar), "revenue_count": F("revenue_count") + count})


def _move(changes: dict) -> None:
    """The one UPDATE of the totals row (F() increments under its row lock)."""
    if not BuyOrderTotals.objects.filter(pk=BuyOrderTotals.SINGLETON_PK).update(**changes):
        # No row (a flushed database): create it from the rows, which already include this change.
        buy_order_totals_rebuild()


def totals_from_rows() -> dict:
    """The totals recomputed from the buy-order and revenue rows (two aggregates, full scans: checks only)."""
    completed = Q(status=BuyOrder.Status.COMPLETED)
    row = BuyOrder.objects.filter(parent__isnull=True).aggregate(
        completed_count=Count("id", filter=completed),
        failed_count=Count("id", filter=Q(status=BuyOrder.Status.FAILED)),
        tokens_acquired=Sum("tokens_received", filter=completed),
        rand_spent=Sum("amount", filter=completed))
    row.update(Revenue.objects.aggregate(revenue_zar=Sum("amount_zar"), revenue_count=Count("id")))
    return {field: row[field] or (0 if field.endswith("_count") else ZERO) for field in FIELDS}


def buy_order_totals_rebuild() -> BuyOrderTotals:
    """Rewrite the totals from the rows (the migration, an operator after a manual fix)."""
    with transaction.atomic():
        BuyOrderTotals.objects.get_or_create(pk=BuyOrderTotals.SINGLETON_PK)
        totals = BuyOrderTotals.objects.select_for_update().get(pk=BuyOrderTotals.SINGLETON_PK)
        for field, value in totals_from_rows().items():
            setattr(totals, field, value)
        totals.save()
    return totals


def buy_order_totals_problems() -> list[str]:
    """The check: the stored totals against a recomputation from the rows ([] when equal)."""
    stored = BuyOrderTotals.objects.filter(pk=BuyOrderTotals.SINGLETON_PK).values(*FIELDS).first()
    expected = totals_from_rows()
    if stored is None:
        if any(expected.values()):
            return [f"buy-order and revenue totals: the row is missing; the rows give {expected}"]
        return []
    return [f"running totals: {field} is {stored[field]}, the rows give {expected[field]}"
            for field in FIELDS if stored[field] != expected[field]]
