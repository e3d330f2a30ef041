"""The dashboard: its figures, its query count, and the treasury's truth next to the records."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import wallet_credit
from backoffice import dashboard
from mlm.models import Bonus
from purchases.models import Purchase
from purchases.services import purchase_create, purchase_refund
from tests.factories import OptionFactory, UserFactory
from tokens import dashboard as token_dashboard
from tokens.models import BuyOrder
from tokens.services import buy_order_run, revenue_track
from withdrawals.services import withdrawal_request

pytestmark = pytest.mark.django_db
ALL_PANELS = set(dashboard.PANEL_PERMISSIONS)
ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def _buy(member, option, *, days_ago=0):
    purchase = purchase_create(user=member, option=option)
    Purchase.objects.filter(pk=purchase.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return purchase


def _bonus(user, purchase, kind, amount, status):
    return Bonus.objects.create(user=user, purchase=purchase, kind=kind, amount=Decimal(amount), status=status)


def _fake_completed_order(tokens: str, **extra) -> BuyOrder:
    """A completed row the chain never saw (a chain reset under an old database)."""
    amount = Decimal("100")
    return BuyOrder.objects.create(
        status="completed", trigger="manual", amount=amount, quoted_price=Decimal("0.5"),
        expected_tokens=Decimal(tokens), min_tokens=Decimal(tokens), max_slippage=Decimal("0.01"),
        disposition="hold", tokens_received=Decimal(tokens), price_per_token=amount / Decimal(tokens),
        tx_hash="0x" + "ab" * 32, completed_at=timezone.now(), **extra)


def test_the_figures(django_assert_max_num_queries):
    option = OptionFactory(pack_price=Decimal("50"))
    member = UserFactory(balance="1000")
    today = [_buy(member, option), _buy(member, option)]
    purchase_refund(purchase=_buy(member, option), reason="test")  # refunded: not a sale
    _buy(member, option, days_ago=40)  # before the month and the chart
    _bonus(member, today[0], "pioneer", "2.5", "paid")
    _bonus(member, today[0], "differential", "4", "pending")
    _bonus(member, today[1], "differential", "1", "pending")
    _bonus(member, today[1], "referral", "9", "reversed")  # taken back: not in the chart

    with django_assert_max_num_queries(14):
        board = dashboard.load(panels=ALL_PANELS)

    assert board.sales["today_count"] == 2 and board.sales["today_amount"] == Decimal("100")
    month_start = board.window.month_start
    assert board.sales["month_count"] == 2 + (0 if month_start > timezone.now() - timedelta(days=40) else 1)
    assert board.sales_per_day[board.window.today] == {"count": 2, "amount": Decimal("100")}
    assert sum(board.bonuses_per_day.values()) == Decimal("7.5")
    kinds = {row["kind"]: row for row in board.bonuses}
    assert kinds["pioneer"]["paid"] == Decimal("2.5") and kinds["differential"]["pending"] == Decimal("5")
    assert kinds["differential"]["pending_count"] == 2 and kinds["referral"]["paid"] == 0
    assert board.members["today"] >= 1 and board.members["month"] >= board.members["today"]
    assert board.withdrawals["count"] == 0
    assert board.ranks[0][0] == "No rank"


def test_the_query_count_does_not_grow_with_the_data(django_assert_max_num_queries):
    option = OptionFactory()
    members = [UserFactory(balance="500") for _ in range(6)]
    for i, member in enumerate(members):
        _buy(member, option, days_ago=i * 4)
    with django_assert_max_num_queries(14):
        dashboard.load(panels=ALL_PANELS)


def test_withdrawals_waiting():
    member = UserFactory()
    wallet_credit(user=member, wallet="passive", amount="100", reason="adjustment", idempotency_key="t:1")
    for amount in ("20", "30"):
        withdrawal_request(user=member, amount=Decimal(amount), destination=ADDRESS)
    board = dashboard.load(panels={"withdrawals"})
    assert board.withdrawals["count"] == 2 and board.withdrawals["amount"] == Decimal("50")
    assert board.withdrawals["requested"] == 2 and board.withdrawals["approved"] == 0


def test_the_page_draws_every_kpi_and_chart(operator_client, chain):
    option = OptionFactory()
    _buy(UserFactory(balance="500"), option)
    revenue_track(source="other", amount="10000")
    assert buy_order_run().success
    page = operator_client.get("/admin/")
    html = page.content.decode()
    assert page.status_code == 200 and '<section id="dashboard"' in html
    for kpi in ("sales-today", "sales-month", "new-members", "bonuses-paid", "bonuses-pending",
                "withdrawals-waiting", "revenue-available", "last-buyback", "treasury"):
        assert f'data-kpi="{kpi}"' in html, kpi
    for chart in ("sales", "bonuses", "buybacks", "ranks"):
        svg = html.split(f'data-chart="{chart}"')[1].split("</svg>")[0]
        assert 'class="mark' in svg, chart
    last = BuyOrder.objects.filter(status="completed").latest("created_at")
    assert f"/admin/tokens/buyorder/{last.pk}/change/" in html  # the short hash links to the order
    assert "0E-8" not in html and "0.00000000" not in html


def test_the_treasury_agrees_with_the_records_after_a_real_buy(chain):
    revenue_track(source="other", amount="10000")
    assert buy_order_run().success
    status = token_dashboard.treasury()
    assert status.chain_available and status.bought > 0 and status.on_chain >= status.held
    assert status.shortfall is None


@pytest.mark.parametrize("page", ["/admin/", "/admin/tokens/buyorderdashboard/"])
def test_records_claiming_more_than_the_treasury_holds_are_flagged(operator_client, chain, page):
    on_chain = chain.client().balances().azr
    _fake_completed_order(str(on_chain + Decimal("160000")))
    status = token_dashboard.treasury()
    assert status.shortfall == Decimal("160000")
    html = operator_client.get(page).content.decode()
    assert "The records claim more AZR than the treasury holds" in html
    assert "160,000.0000 AZR missing" in html


def test_burned_tokens_are_not_claimed_as_held(chain):
    _fake_completed_order("500", burn_tx_hash="0x" + "cd" * 32)
    status = token_dashboard.treasury()
    assert status.bought == Decimal("500") and status.burned == Decimal("500") and status.held == 0
    assert status.shortfall is None


@pytest.mark.parametrize("page", ["/admin/", "/admin/tokens/buyorderdashboard/"])
def test_a_chain_that_refuses_says_chain_unavailable(operator_client, point_chain_at, page):
    point_chain_at("http://127.0.0.1:9")  # nothing listens there
    _fake_completed_order("1000")
    response = operator_client.get(page)
    html = response.content.decode()
    assert response.status_code == 200 and "Chain unavailable" in html
    assert "The records claim more" not in html  # not verified, not claimed either way


def test_a_hung_chain_does_not_hang_the_page(point_chain_at, silent_node):
    point_chain_at(silent_node)
    started = time.monotonic()
    status = token_dashboard.treasury(timeout=0.5)
    assert time.monotonic() - started < 3
    assert not status.chain_available and "no answer within 0.5 s" in status.chain_error
