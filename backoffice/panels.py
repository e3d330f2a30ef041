"""The dashboard page's context: the figures of ``backoffice.dashboard`` and their charts."""

from __future__ import annotations

from decimal import Decimal

from backoffice import charts
from backoffice import dashboard as selectors
from common import display
from tokens import dashboard as token_dashboard


def _sales_chart(board: selectors.Dashboard):
    days = board.window.days()
    values = [board.sales_per_day.get(day, {}).get("amount") or Decimal(0) for day in days]
    titles = []
    for day, value in zip(days, values, strict=True):
        count = board.sales_per_day.get(day, {}).get("count", 0)
        titles.append(f"{day:%a %b %d}: {count} sale{'s' if count != 1 else ''}, {display.money(value, 'USD')}")
    return charts.daily_bars("sales", days, values, titles=titles, unit="USD")


def _bonuses_chart(board: selectors.Dashboard):
    days = board.window.days()
    values = [board.bonuses_per_day.get(day) or Decimal(0) for day in days]
    titles = [f"{day:%a %b %d}: {display.money(value, 'USD')} in bonuses" for day, value in zip(days, values,
                                                                                                  strict=True)]
    return charts.daily_bars("bonuses", days, values, titles=titles, unit="USD")


def dashboard_context(user, *, now=None, chain_timeout: float = token_dashboard.CHAIN_READ_TIMEOUT_SECONDS) -> dict:
    """Everything the index template draws, limited to the panels ``user`` may see."""
    panels = selectors.allowed_panels(user)
    board = selectors.load(panels=panels, now=now)
    context: dict = {"board": board, "panels": panels}
    if board.sales is not None:
        context["sales_chart"] = _sales_chart(board)
    if board.bonuses is not None:
        context["bonuses_chart"] = _bonuses_chart(board)
        context["bonus_totals"] = {"paid": sum((row["paid"] for row in board.bonuses), Decimal(0)),
                                   "pending": sum((row["pending"] for row in board.bonuses), Decimal(0)),
                                   "pending_count": sum(row["pending_count"] for row in board.bonuses)}
    if board.buyback is not None:
        context["buyback_chart"] = charts.buyback_chart(board.buyback["points"])
        context["treasury"] = token_dashboard.treasury(chain_timeout)
    if board.ranks is not None:
        context["ranks_chart"] = charts.horizontal_bars("ranks", board.ranks)
    return context
