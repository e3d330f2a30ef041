"""Reads of the tokens app: settings, exchange rates, available revenue, history, metrics.

Nothing here writes to the database.
"""

from __future__ import annotations

import binascii
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Max, Q, QuerySet, Subquery, Sum, Value
from django.utils import timezone

from common.errors import field_error
from common.money import MONEY_QUANTUM, ZERO, round_down, round_money
from tokens.models import BuyOrder, BuyOrderConfig, BuyOrderTotals, ExchangeRate, Revenue
from tokens.refs import pack_sale_ref

# Orders whose revenue is used: completed ones, and pending ones (reserved).
USING_STATUSES = (BuyOrder.Status.PENDING, BuyOrder.Status.COMPLETED)

HISTORY_MAX_LIMIT = 500
HISTORY_MAX_OFFSET = 10_000  # deeper: the cursor (an OFFSET walks every skipped row)
HISTORY_COUNT_CAP = 10_000  # rows counted exactly; beyond, the running totals (or "at least")


@dataclass(frozen=True)
class HistoryPage:
    rows: list[BuyOrder]
    count: int
    count_exact: bool  # False: at least `count` rows (a date filter over more than the cap)
    next_cursor: str | None  # the page after this one; None on the last page


def buy_order_config() -> BuyOrderConfig:
    """The settings row; the defaults (unsaved) if the row does not exist yet."""
    return BuyOrderConfig.objects.filter(pk=BuyOrderConfig.SINGLETON_PK).first() or BuyOrderConfig()


def exchange_rate_current(*, currency: str, at: datetime | None = None) -> ExchangeRate | None:
    """The newest rate row of ``currency`` valid at ``at`` (now by default)."""
    at = at or timezone.now()
    return (ExchangeRate.objects.filter(currency=currency.upper(), valid_from__lte=at)
            .order_by("-valid_from", "-id").first())


def unspent_revenue() -> Decimal:
    """Σ revenue in ZAR − Σ revenue used by completed or pending buy-orders: the revenue and the
    completed ones from the running totals (``tokens.totals``), the pending ones (few) summed by
    index -- one query, whatever the number of revenue rows."""
    # Orders only: a split order's row reserves (then holds) the sum of its slices.
    pending = (BuyOrder.objects.filter(status=BuyOrder.Status.PENDING, parent__isnull=True).order_by()
               .annotate(one=Value(1)).values("one").annotate(used=Sum("amount")).values("used"))
    row = (BuyOrderTotals.objects.filter(pk=BuyOrderTotals.SINGLETON_PK)
           .annotate(pending_used=Subquery(pending)).values("revenue_zar", "rand_spent", "pending_used").first())
    if row is None:  # no totals row (a flushed database): nothing recorded through the writers yet
        totals = buy_order_totals()
        row = {"revenue_zar": totals["revenue_zar"], "rand_spent": totals["rand_spent"],
               "pending_used": BuyOrder.objects.filter(status=BuyOrder.Status.PENDING, parent__isnull=True)
               .aggregate(used=Sum("amount"))["used"]}
    return row["revenue_zar"] - row["rand_spent"] - (row["pending_used"] or ZERO)


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
    """Newest first, ``limit``/``offset`` paginated, with the count of the filtered rows (see
    :func:`buy_order_history_page`, which also pages by cursor)."""
    page = buy_order_history_page(limit=limit, offset=offset, status=status, date_from=date_from, date_to=date_to)
    return page.rows, page.count


def buy_order_history_page(*, limit: int = 50, offset: int = 0, cursor: str | None = None,
                           status: str | None = None, date_from: date | datetime | None = None,
                           date_to: date | datetime | None = None) -> HistoryPage:
    """A page of the history, newest first, that costs the same at any depth.

    ``cursor`` (the ``next_cursor`` of the page before) continues after that page's last row,
    through the ``(created_at, id)`` index: a keyset page, exact under concurrent inserts.
    ``offset`` still works up to :data:`HISTORY_MAX_OFFSET` (deeper is a ``ValidationError``:
    use the cursor). The page's ids are found first and only those rows are loaded with their
    user. ``count`` is exact up to :data:`HISTORY_COUNT_CAP` rows (a bounded count); beyond it the
    running totals give it when no date filter is set, else it is the cap and ``count_exact``
    is False. Five queries at most, whatever the page.
    """
    limit = int(limit)
    offset = int(offset)
    if not 1 <= limit <= HISTORY_MAX_LIMIT:
        raise field_error("limit", f"The limit must be between 1 and {HISTORY_MAX_LIMIT}.", code="invalid_limit")
    if offset < 0:
        raise field_error("offset", "The offset must not be negative.", code="invalid_offset")
    if offset > HISTORY_MAX_OFFSET:
        raise field_error("offset", f"The offset is at most {HISTORY_MAX_OFFSET:,}: page deeper with `cursor` "
                                    "(each page's `next_cursor`).", code="offset_too_deep")
    if cursor and offset:
        raise field_error("cursor", "Give either `cursor` or `offset`, not both.", code="cursor_with_offset")
    rows = buy_order_queryset(status=status, date_from=date_from, date_to=date_to).select_related(None)
    if cursor:
        created_at, pk = decode_cursor(cursor)
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk),
                           created_at__lte=created_at)
        ids = list(rows.values_list("id", flat=True)[:limit + 1])
    else:
        ids = list(rows.values_list("id", flat=True)[offset:offset + limit + 1])
    more = len(ids) > limit
    ids = ids[:limit]
    by_id = BuyOrder.objects.select_related("executed_by").in_bulk(ids) if ids else {}
    page = [by_id[pk] for pk in ids if pk in by_id]
    count, exact = _history_count(status=status, dated=date_from is not None or date_to is not None,
                                  date_from=date_from, date_to=date_to)
    next_cursor = encode_cursor(page[-1].created_at, page[-1].pk) if more and page else None
    return HistoryPage(rows=page, count=count, count_exact=exact, next_cursor=next_cursor)


def _history_count(*, status, dated, date_from, date_to) -> tuple[int, bool]:
    rows = buy_order_queryset(status=status, date_from=date_from, date_to=date_to).select_related(None).order_by()
    bounded = rows.values("id")[:HISTORY_COUNT_CAP + 1].count()
    if bounded <= HISTORY_COUNT_CAP:
        return bounded, True
    if dated:
        return HISTORY_COUNT_CAP, False
    return buy_order_count(status=status), True


def buy_order_count(*, status: str | None = None) -> int:
    """How many buy-orders (in ``status``): the running totals, plus the pending ones counted."""
    totals = buy_order_totals()
    settled = {BuyOrder.Status.COMPLETED: totals["completed_count"], BuyOrder.Status.FAILED: totals["failed_count"]}
    if status in settled:
        return settled[status]
    pending = BuyOrder.objects.filter(status=BuyOrder.Status.PENDING, parent__isnull=True).count()  # not slices
    if status == BuyOrder.Status.PENDING:
        return pending
    return sum(settled.values()) + pending


def encode_cursor(created_at: datetime, pk: int) -> str:
    """The opaque position after the row (``created_at``, ``pk``)."""
    raw = f"{created_at.astimezone(UTC).isoformat()}|{pk}".encode()
    return urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``encode_cursor`` reversed; anything else is a ``ValidationError`` (code ``invalid_cursor``)."""
    def bad():
        return field_error("cursor", "This cursor is not one this API gave: start again without it.",
                           code="invalid_cursor")

    if not isinstance(cursor, str) or not 0 < len(cursor) <= 200:
        raise bad()
    try:
        when, pk_text = urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii").split("|")
        created_at = datetime.fromisoformat(when)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise bad() from exc
    if created_at.tzinfo is None or not pk_text.isdigit() or not 0 < int(pk_text) < 2**63:
        raise bad()
    return created_at, int(pk_text)


def buy_order_queryset(*, status: str | None = None, date_from: date | datetime | None = None,
                       date_to: date | datetime | None = None) -> QuerySet[BuyOrder]:
    """Orders (not their slices), newest first, filtered. A ``date`` is a whole day (UTC), both
    ends included; the bounds are compared with ``created_at`` itself (not its date), so the
    index serves them."""
    rows = BuyOrder.objects.filter(parent__isnull=True).select_related("executed_by").order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    if date_from is not None:
        rows = rows.filter(created_at__gte=date_from if isinstance(date_from, datetime)
                           else datetime.combine(date_from, time.min, tzinfo=UTC))
    if date_to is not None:
        rows = rows.filter(**({"created_at__lte": date_to} if isinstance(date_to, datetime)
                              else {"created_at__lt": datetime.combine(date_to + timedelta(days=1), time.min,
                                                                       tzinfo=UTC)}))
    return rows


def buy_order_totals() -> dict:
    """The running totals (``tokens.totals``), zeros when the row is missing."""
    from tokens.totals import FIELDS

    row = BuyOrderTotals.objects.filter(pk=BuyOrderTotals.SINGLETON_PK).values(*FIELDS).first()
    return row or {field: (0 if field.endswith("_count") else ZERO) for field in FIELDS}


def buy_order_metrics() -> dict:
    """Totals over all revenue and buy-orders, in one query whatever the history's size: the
    running totals of the revenue and of the settled orders (``tokens.totals``) with the pending
    ones counted live and the newest creation time (both by index).

    A split order counts once, with the sum of its slices (its own row); slices are its
    executions and are counted apart (``slice_count``), never added to the totals again."""
    orders_only = BuyOrder.objects.filter(parent__isnull=True)
    slices = BuyOrder.objects.filter(parent__isnull=False).order_by()

    pending = (orders_only.filter(status=BuyOrder.Status.PENDING).order_by().values("status")
               .annotate(n=Count("id")).values("n"))
    newest = orders_only.order_by("-created_at", "-id").values("created_at")[:1]
    slice_count = slices.annotate(one=Value(1)).values("one").annotate(n=Count("id")).values("n")
    slices_done = (slices.filter(status=BuyOrder.Status.COMPLETED).annotate(one=Value(1)).values("one")
                   .annotate(n=Count("id")).values("n"))
    orders = (BuyOrderTotals.objects.filter(pk=BuyOrderTotals.SINGLETON_PK)
              .annotate(pending_count=Subquery(pending), last=Subquery(newest),
                        slices=Subquery(slice_count), slices_completed=Subquery(slices_done))
              .values("completed_count", "failed_count", "tokens_acquired", "rand_spent", "revenue_zar",
                      "pending_count", "last", "slices", "slices_completed")
              .first())
    if orders is None:  # no totals row (a flushed database): nothing settled yet
        orders = {**buy_order_totals(), "pending_count": orders_only.filter(status="pending").count(),
                  "last": orders_only.aggregate(last=Max("created_at"))["last"],
                  "slices": slices.count(), "slices_completed": slices.filter(status="completed").count()}
    revenue = orders["revenue_zar"] or ZERO
    tokens = orders["tokens_acquired"] or ZERO
    spent = orders["rand_spent"] or ZERO
    completed = orders["completed_count"]
    executions = completed + orders["failed_count"] + (orders["pending_count"] or 0)
    return {
        "total_revenue_tracked": revenue,
        "total_tokens_acquired": tokens,
        "total_rand_spent": spent,
        "average_price_per_token": round_money(spent / tokens, places=MONEY_QUANTUM) if tokens else None,
        "execution_count": executions,
        "completed_count": completed,
        "success_rate": (round_money(Decimal(completed) / Decimal(executions), places=Decimal("0.0001"))
                         if executions else None),
        "last_execution_time": orders["last"],
        "slice_count": orders["slices"] or 0,
        "slices_completed": orders["slices_completed"] or 0,
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
    original = (Revenue.objects.filter(source=Revenue.Source.PACK_SALE, external_ref=pack_sale_ref(purchase.pk))
                .select_related("reversal").first())
    if original is None:
        return None
    reversal = getattr(original, "reversal", None)
    return {"revenue_id": original.pk, "amount": original.amount, "currency": original.currency,
            "amount_zar": original.amount_zar, "reversed": reversal is not None,
            "reversal_id": reversal.pk if reversal else None}
