"""Reads of the tokens app: settings, exchange rates, available revenue, history, metrics.

Nothing here writes to the database.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from common.money import MONEY_QUANTUM, ZERO, round_down, round_money
from tokens.models import BuyOrder, BuyOrderConfig, ExchangeRate, Revenue

# Orders whose revenue is used: completed ones, and pending ones (reserved).
USING_STATUSES = (BuyOrder.Status.PENDING, BuyOrder.Status.COMPLETED)


def buy_order_config() -> BuyOrderConfig:
    """The settings row; the defaults (unsaved) if the row does not exist yet."""
    return BuyOrderConfig.objects.filter(pk=BuyOrderConfig.SINGLETON_PK).first() or BuyOrderConfig()


def exchange_rate_current(*, currency: str, at: datetime | None = None) -> ExchangeRate | None:
    """The newest rate row of ``currency`` valid at ``at`` (now by default)."""
    at = at or timezone.now()
    return (ExchangeRate.objects.filter(currency=currency.upper(), valid_from__lte=at)
            .order_by("-valid_from", "-id").first())


def unspent_revenue() -> Decimal:
    """Σ revenue in ZAR − Σ revenue used by completed or pending buy-orders (two aggregates)."""
    total = Revenue.objects.aggregate(total=Sum("amount_zar"))["total"] or ZERO
    # Orders only: a split order's row reserves (then holds) the sum of its slices.
    used = (BuyOrder.objects.filter(status__in=USING_STATUSES, parent__isnull=True)
            .aggregate(used=Sum("amount"))["used"] or ZERO)
    return total - used


def available_revenue(*, config: BuyOrderConfig | None = None) -> Decimal:
    """(Σ revenue − Σ used by completed or pending orders) × percentage, rounded down to the cent.

    Never below zero: a refund's reversal of revenue already spent on buys leaves the unspent
    total negative, and then nothing is available until new revenue has made up the deficit."""
    config = config or buy_order_config()
    unspent = unspent_revenue()
    if unspent <= 0:
        return ZERO.quantize(Decimal("0.01"))
    return round_down(unspent * config.revenue_percentage)


def buy_order_history(*, limit: int = 50, offset: int = 0, status: str | None = None,
                      date_from: date | datetime | None = None,
                      date_to: date | datetime | None = None) -> tuple[list[BuyOrder], int]:
    """Newest first, ``limit``/``offset`` paginated, with the total count of the filtered rows.

    ``date_from``/``date_to`` filter on the creation time; a ``date`` is a whole day (UTC),
    both ends included.
    """
    rows = buy_order_queryset(status=status, date_from=date_from, date_to=date_to)
    limit = max(0, int(limit))
    offset = max(0, int(offset))
    return list(rows[offset:offset + limit]), rows.count()


def buy_order_queryset(*, status: str | None = None, date_from: date | datetime | None = None,
                       date_to: date | datetime | None = None) -> QuerySet[BuyOrder]:
    rows = BuyOrder.objects.filter(parent__isnull=True).select_related("executed_by").order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    if date_from is not None:
        rows = rows.filter(**({"created_at__gte": date_from} if isinstance(date_from, datetime)
                              else {"created_at__date__gte": date_from}))
    if date_to is not None:
        rows = rows.filter(**({"created_at__lte": date_to} if isinstance(date_to, datetime)
                              else {"created_at__date__lte": date_to}))
    return rows


def buy_order_metrics() -> dict:
    """Totals over all revenue and buy-orders, computed by two aggregate queries.

    A split order counts once, with the sum of its slices (its own row); slices are its
    executions and are counted apart (``slice_count``), never added to the totals again."""
    completed = Q(status=BuyOrder.Status.COMPLETED)
    order = Q(parent__isnull=True)
    orders = BuyOrder.objects.aggregate(
        tokens=Sum("tokens_received", filter=completed & order),
        spent=Sum("amount", filter=completed & order),
        completed=Count("id", filter=completed & order),
        executions=Count("id", filter=order),
        last=Max("created_at", filter=order),
        slices=Count("id", filter=~order),
        slices_completed=Count("id", filter=completed & ~order),
    )
    revenue = Revenue.objects.aggregate(total=Sum("amount_zar"))["total"] or ZERO
    tokens = orders["tokens"] or ZERO
    spent = orders["spent"] or ZERO
    executions = orders["executions"]
    return {
        "total_revenue_tracked": revenue,
        "total_tokens_acquired": tokens,
        "total_rand_spent": spent,
        "average_price_per_token": round_money(spent / tokens, places=MONEY_QUANTUM) if tokens else None,
        "execution_count": executions,
        "completed_count": orders["completed"],
        "success_rate": (round_money(Decimal(orders["completed"]) / Decimal(executions), places=Decimal("0.0001"))
                         if executions else None),
        "last_execution_time": orders["last"],
        "slice_count": orders["slices"],
        "slices_completed": orders["slices_completed"],
    }


def buy_order_chart_points(*, limit: int = 200) -> list[dict]:
    """Completed orders, oldest first (the latest ``limit``): time, tokens, price."""
    rows = (BuyOrder.objects.filter(status=BuyOrder.Status.COMPLETED, parent__isnull=True)
            .order_by("-completed_at", "-id")
            .values("completed_at", "tokens_received", "price_per_token", "amount")[:limit])
    return list(reversed(list(rows)))


def pack_sale_reversal_preview(*, purchase) -> dict | None:
    """The pack-sale revenue a refund of `purchase` reverses (None when none was recorded):
    the record, its amounts, and the reversal if made."""
    original = (Revenue.objects.filter(source=Revenue.Source.PACK_SALE, external_ref=f"purchase:{purchase.pk}")
                .select_related("reversal").first())
    if original is None:
        return None
    reversal = getattr(original, "reversal", None)
    return {"revenue_id": original.pk, "amount": original.amount, "currency": original.currency,
            "amount_zar": original.amount_zar, "reversed": reversal is not None,
            "reversal_id": reversal.pk if reversal else None}
