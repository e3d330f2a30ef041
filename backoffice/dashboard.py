"""The home dashboard's reads: a few aggregate queries over indexed date ranges.

Every function reads; nothing writes. ``load`` gathers the panels a user may see (by the view
permission of each panel's model) so a clerk without bonus rights does not get bonus totals.
Sales, bonuses and withdrawals are in USD (the plan's currency), the buy-back in ZAR/AZR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from common.money import ZERO
from mlm.models import Bonus, MemberStats, Rank
from purchases.models import Purchase
from tokens import selectors as token_selectors
from tokens.models import BuyOrder, Revenue
from withdrawals.models import Withdrawal

CHART_DAYS = 30

# Panel -> the permission that shows it.
PANEL_PERMISSIONS = {
    "sales": "purchases.view_purchase",
    "members": "accounts.view_user",
    "bonuses": "mlm.view_bonus",
    "withdrawals": "withdrawals.view_withdrawal",
    "buyback": "tokens.view_buyorder",
    "ranks": "mlm.view_memberstats",
}


@dataclass(frozen=True)
class Window:
    """Today, this month and the chart's days, in the site's time zone."""

    now: datetime
    today: date
    today_start: datetime
    month_start: datetime
    chart_start: datetime

    @classmethod
    def at(cls, now: datetime | None = None, chart_days: int = CHART_DAYS) -> Window:
        now = timezone.localtime(now or timezone.now())
        tz = now.tzinfo
        today = now.date()
        start = datetime.combine(today, time.min, tzinfo=tz)
        return cls(now=now, today=today, today_start=start,
                   month_start=datetime.combine(today.replace(day=1), time.min, tzinfo=tz),
                   chart_start=start - timedelta(days=chart_days - 1))

    @property
    def since(self) -> datetime:
        """The earliest moment any panel counts from (the month or the chart, whichever first)."""
        return min(self.month_start, self.chart_start)

    def days(self) -> list[date]:
        first = self.chart_start.date()
        return [first + timedelta(days=i) for i in range((self.today - first).days + 1)]


@dataclass
class Dashboard:
    window: Window
    sales: dict | None = None
    sales_per_day: dict[date, dict] = field(default_factory=dict)
    members: dict | None = None
    bonuses: list[dict] | None = None
    bonuses_per_day: dict[date, Decimal] = field(default_factory=dict)
    withdrawals: dict | None = None
    buyback: dict | None = None
    ranks: list[tuple[str, int]] | None = None


def _per_day(rows, value_key: str) -> dict:
    return {row["day"]: row[value_key] for row in rows}


def sales(window: Window) -> tuple[dict, dict[date, dict]]:
    """Regular purchases not refunded: today's and this month's count and USD, the month's
    pack-sale revenue in ZAR, and per day over the chart's days. Three queries, each on an
    index range of ``created_at``/``recorded_at``."""
    counted = Purchase.objects.filter(kind=Purchase.Kind.REGULAR, refunded_at__isnull=True,
                                      created_at__gte=window.since, created_at__lte=window.now)
    today, month = Q(created_at__gte=window.today_start), Q(created_at__gte=window.month_start)
    totals = counted.aggregate(today_count=Count("id", filter=today), today_amount=Sum("price", filter=today),
                               month_count=Count("id", filter=month), month_amount=Sum("price", filter=month))
    totals["month_zar"] = Revenue.objects.filter(
        source=Revenue.Source.PACK_SALE, recorded_at__gte=window.month_start, recorded_at__lte=window.now,
    ).aggregate(total=Sum("amount_zar"))["total"] or ZERO
    rows = (counted.filter(created_at__gte=window.chart_start).annotate(day=TruncDate("created_at"))
            .values("day").annotate(count=Count("id"), amount=Sum("price")).order_by("day"))
    per_day = {row["day"]: {"count": row["count"], "amount": row["amount"]} for row in rows}
    for key in ("today_amount", "month_amount"):
        totals[key] = totals[key] or ZERO
    return totals, per_day


def members(window: Window) -> dict:
    """New members (not operators, not the root) today and this month: one query."""
    joined = User.objects.filter(is_staff=False, is_system_root=False, date_joined__gte=window.month_start,
                                 date_joined__lte=window.now)
    return joined.aggregate(today=Count("id", filter=Q(date_joined__gte=window.today_start)), month=Count("id"))


def bonuses(window: Window) -> tuple[list[dict], dict[date, Decimal]]:
    """By kind: paid this month (created this month, status paid) and pending (held, all of
    them); and the bonuses created per day (not taken back). Two queries: the month's range of
    ``created_at`` and the partial index of pending bonuses."""
    month_paid = Q(status=Bonus.Status.PAID, created_at__gte=window.month_start)
    pending = Q(status=Bonus.Status.PENDING)
    rows = (Bonus.objects.filter(month_paid | pending).values("kind")
            .annotate(paid=Sum("amount", filter=month_paid), paid_count=Count("id", filter=month_paid),
                      pending=Sum("amount", filter=pending), pending_count=Count("id", filter=pending)))
    labels = dict(Bonus.Kind.choices)
    by_kind = {row["kind"]: row for row in rows}
    table = [{"kind": kind, "label": labels[kind], "paid": by_kind.get(kind, {}).get("paid") or ZERO,
              "paid_count": by_kind.get(kind, {}).get("paid_count", 0),
              "pending": by_kind.get(kind, {}).get("pending") or ZERO,
              "pending_count": by_kind.get(kind, {}).get("pending_count", 0)} for kind in labels]
    daily = (Bonus.objects.filter(created_at__gte=window.chart_start, created_at__lte=window.now)
             .exclude(status__in=Bonus.TAKEN_BACK_STATUSES)
             .annotate(day=TruncDate("created_at")).values("day").annotate(amount=Sum("amount")).order_by("day"))
    return table, _per_day(daily, "amount")


def withdrawals() -> dict:
    """Requests waiting for an operator (requested or approved): counts and amount, one query
    on the (status, created_at) index."""
    waiting = Withdrawal.objects.filter(status__in=Withdrawal.HELD)
    requested, approved = Q(status=Withdrawal.Status.REQUESTED), Q(status=Withdrawal.Status.APPROVED)
    totals = waiting.aggregate(count=Count("id"), amount=Sum("amount"),
                               requested=Count("id", filter=requested), approved=Count("id", filter=approved),
                               oldest=Min("created_at"))
    totals["amount"] = totals["amount"] or ZERO
    return totals


def buyback() -> dict:
    """Revenue available for the next buy, the last completed buy-back and the chart points."""
    last = (BuyOrder.objects.filter(status=BuyOrder.Status.COMPLETED).order_by("-created_at", "-id")
            .only("id", "amount", "tokens_received", "price_per_token", "completed_at", "created_at", "tx_hash",
                  "burn_tx_hash").first())
    config = token_selectors.buy_order_config()
    return {"available": token_selectors.available_revenue(config=config), "config": config,
            "last": last, "points": token_selectors.buy_order_chart_points()}


def ranks() -> list[tuple[str, int]]:
    """Members per rank, lowest rank first, members with no rank yet first of all. Two queries."""
    counts = dict(MemberStats.objects.values_list("rank").annotate(n=Count("pk")).values_list("rank", "n"))
    rows = [("No rank", counts.pop(None, 0))]
    rows += [(rank.name, counts.get(rank.pk, 0)) for rank in Rank.objects.order_by("position")]
    return rows


def allowed_panels(user) -> set[str]:
    return {panel for panel, perm in PANEL_PERMISSIONS.items() if user.has_perm(perm)}


def load(*, panels: set[str], now: datetime | None = None) -> Dashboard:
    """The dashboard's figures for the given panels (all of them: about a dozen queries)."""
    window = Window.at(now)
    board = Dashboard(window=window)
    if "sales" in panels:
        board.sales, board.sales_per_day = sales(window)
    if "members" in panels:
        board.members = members(window)
    if "bonuses" in panels:
        board.bonuses, board.bonuses_per_day = bonuses(window)
    if "withdrawals" in panels:
        board.withdrawals = withdrawals()
    if "buyback" in panels:
        board.buyback = buyback()
    if "ranks" in panels:
        board.ranks = ranks()
    return board
