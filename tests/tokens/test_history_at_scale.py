"""History and metrics that cost the same at any size: running totals moved when an order
settles (proved against the rows), keyset pages by cursor, a bounded count."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from purchases.services import purchase_create, purchase_refund
from tests.factories import OptionFactory, UserFactory
from tokens import selectors
from tokens.models import BuyOrder, BuyOrderTotals, Revenue
from tokens.selectors import buy_order_history_page, buy_order_metrics, decode_cursor, encode_cursor
from tokens.services import buy_order_config_update, buy_order_execute, buy_order_reconcile_stale, revenue_track
from tokens.totals import buy_order_totals_problems, buy_order_totals_rebuild, totals_from_rows

from .conftest import swap_azr_for_zar
from .test_buy_orders import beyond_the_slippage

pytestmark = pytest.mark.django_db
D = Decimal
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def row(created_at: datetime, status: str = "failed", **extra) -> BuyOrder:
    """A history row written directly (not settled through the service: no totals)."""
    return BuyOrder.objects.create(trigger="manual", amount=D("100"), quoted_price=D("0.5"), expected_tokens=D("200"),
                                   min_tokens=D("198"), max_slippage=D("0.01"), disposition="hold", status=status,
                                   created_at=created_at, **extra)


def full_metrics() -> dict:
    """The metrics as the old full-scan aggregate computed them."""
    rows = totals_from_rows()
    executions = BuyOrder.objects.count()
    return {"total_tokens_acquired": rows["tokens_acquired"], "total_rand_spent": rows["rand_spent"],
            "completed_count": rows["completed_count"], "execution_count": executions}


# --- running totals ------------------------------------------------------------------------


def test_totals_equal_a_full_recomputation_after_a_mixed_sequence(config, chain, django_capture_on_commit_callbacks,
                                                                  django_assert_max_num_queries):
    buyer = UserFactory(balance="500")
    with django_capture_on_commit_callbacks(execute=True):
        sale = purchase_create(user=buyer, option=OptionFactory(pack_price=D("500")))  # 9,000 ZAR of revenue
    revenue_track(source="other", amount="50000000")
    buy_order_config_update(revenue_percentage="1", max_buy_amount="50000000", max_price_impact="0.5")
    mover = beyond_the_slippage(chain)
    assert not buy_order_execute(amount="1000").success  # beyond the slippage: reverted → failed
    swap_azr_for_zar(chain, mover)  # the spot back where it was
    assert buy_order_execute(amount="1000").success  # completed
    assert buy_order_execute(amount="3000").success  # completed
    stale = row(timezone.now() - timedelta(hours=2), status="pending")  # a crashed run: released as failed
    assert buy_order_reconcile_stale() == 1
    row(timezone.now(), status="pending")  # still in flight: counted, not in the totals
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=sale)  # reverses 9,000 ZAR of revenue

    assert buy_order_totals_problems() == []
    with django_assert_max_num_queries(2):
        metrics = buy_order_metrics()
    expected = full_metrics()
    assert {key: metrics[key] for key in expected} == expected
    assert (metrics["completed_count"], metrics["execution_count"]) == (2, 5)
    assert metrics["total_revenue_tracked"] == D("50000000")  # the refund's reversal is netted
    assert metrics["success_rate"] == D("0.4000")
    stale.refresh_from_db()
    assert stale.status == "failed"
    # The available revenue reads the totals too: equal to the full sums over the rows.
    used = sum(o.amount for o in BuyOrder.objects.filter(status__in=["completed", "pending"]))
    revenue = sum(r.amount_zar for r in Revenue.objects.all())
    assert selectors.unspent_revenue() == revenue - used


def test_a_settlement_that_does_not_happen_moves_no_totals(config, chain):
    from tokens.buy_orders import _fail

    revenue_track(source="other", amount="10000")
    result = buy_order_execute(amount="1000")
    before = BuyOrderTotals.objects.values("completed_count", "failed_count", "tokens_acquired", "rand_spent").get()

    _fail(BuyOrder.objects.get(pk=result.order_id), "a late failure")  # no longer pending: nothing changes
    after = BuyOrderTotals.objects.values("completed_count", "failed_count", "tokens_acquired", "rand_spent").get()
    assert after == before and before["completed_count"] == 1
    assert BuyOrder.objects.get(pk=result.order_id).status == "completed" and buy_order_totals_problems() == []


def test_the_check_finds_drift_and_the_rebuild_fixes_it(config, chain):
    revenue_track(source="other", amount="10000")
    assert buy_order_execute(amount="1000").success
    BuyOrder.objects.filter(status="completed").update(tokens_received=D("1"))  # a manual edit behind its back

    problems = buy_order_totals_problems()
    assert len(problems) == 1 and "tokens_acquired" in problems[0]
    with pytest.raises(CommandError, match="buy-order running total"):
        call_command("check_ledger")

    buy_order_totals_rebuild()
    assert buy_order_totals_problems() == []


def test_the_totals_row_missing_is_rebuilt_by_the_next_settlement(config, chain):
    BuyOrderTotals.objects.all().delete()
    assert buy_order_metrics()["execution_count"] == 0
    revenue_track(source="other", amount="10000")
    assert buy_order_execute(amount="1000").success
    assert BuyOrderTotals.objects.get().completed_count == 1 and buy_order_totals_problems() == []


# --- keyset pages ------------------------------------------------------------------------


def test_cursor_pages_cover_every_row_once_in_order_with_concurrent_inserts(db):
    # 30 rows, with ties on created_at (the id breaks them).
    original = [row(T0 + timedelta(minutes=i // 3)) for i in range(30)]
    expected = [o.pk for o in sorted(original, key=lambda o: (o.created_at, o.pk), reverse=True)]

    seen, cursor, pages = [], None, 0
    while True:
        page = buy_order_history_page(limit=7, cursor=cursor)
        seen += [o.pk for o in page.rows]
        pages += 1
        row(timezone.now())  # a new order arrives between every two pages (at the head)
        row(T0 + timedelta(minutes=5))  # and one created in the middle (a tie with existing rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    newcomers = set(BuyOrder.objects.values_list("pk", flat=True)) - set(expected)
    assert [pk for pk in seen if pk not in newcomers] == expected  # every original row once, in order
    assert len(seen) == len(set(seen)) and pages == 5


def test_query_count_per_page_is_constant(db, django_assert_num_queries):
    user = UserFactory()
    for i in range(60):
        row(T0 + timedelta(minutes=i), executed_by=user)
    with CaptureQueriesContext(connection) as first:
        page = buy_order_history_page(limit=10)
    assert [o.executed_by.email for o in page.rows]  # loaded with the page, no query per row
    with django_assert_num_queries(len(first.captured_queries)):
        deep = buy_order_history_page(limit=10, cursor=encode_cursor(page.rows[-1].created_at, page.rows[-1].pk))
        [o.executed_by.email for o in deep.rows]
    with django_assert_num_queries(len(first.captured_queries)):
        buy_order_history_page(limit=10, offset=40)
    assert len(first.captured_queries) <= 3


def test_offsets_are_bounded_and_counts_are_cheap(db, monkeypatch):
    for i in range(12):
        row(T0 + timedelta(hours=i), status="pending" if i % 4 == 0 else "failed")
    buy_order_totals_rebuild()
    monkeypatch.setattr(selectors, "HISTORY_COUNT_CAP", 5)

    page = buy_order_history_page(limit=5)
    assert (page.count, page.count_exact) == (12, True)  # beyond the cap: the running totals
    assert buy_order_history_page(status="pending").count == 3
    dated = buy_order_history_page(date_from=T0.date())
    assert (dated.count, dated.count_exact) == (5, False)  # at least 5
    assert buy_order_history_page(date_from=T0.date() + timedelta(days=1)).count == 0

    with pytest.raises(Exception) as too_deep:
        buy_order_history_page(offset=selectors.HISTORY_MAX_OFFSET + 1)
    assert "cursor" in str(too_deep.value)
    assert buy_order_history_page(offset=10).rows and not buy_order_history_page(offset=12).rows


def test_a_day_filter_is_a_whole_utc_day(db):
    inside = [row(datetime(2026, 3, 5, 0, 0, tzinfo=UTC)), row(datetime(2026, 3, 5, 23, 59, 59, tzinfo=UTC))]
    row(datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC)), row(datetime(2026, 3, 6, tzinfo=UTC))
    day = datetime(2026, 3, 5).date()
    page = buy_order_history_page(date_from=day, date_to=day)
    assert sorted(o.pk for o in page.rows) == [o.pk for o in inside] and page.count == 2


@pytest.mark.parametrize("cursor", ["x", "", "!!!!", "MjAyNi0wMS0wMVQxMjowMDowMCswMDowMHwtMQ",  # id -1
                                    "MjAyNi0wMS0wMVQxMjowMDowMHwx",  # no time zone
                                    "bm90IGEgY3Vyc29y", "MjAyNi0wMS0wMVQxMjowMDowMCswMDowMHwgMQ", "é" * 5,
                                    "A" * 201])
def test_a_forged_cursor_is_refused(cursor):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        decode_cursor(cursor)
    assert exc.value.error_dict["cursor"][0].code == "invalid_cursor"


def test_a_cursor_round_trips():
    when = T0 + timedelta(microseconds=123)
    assert decode_cursor(encode_cursor(when, 42)) == (when, 42)


# --- the API and the admin --------------------------------------------------------------------


@pytest.fixture
def staff_client(api_client):
    api_client.force_authenticate(UserFactory(is_staff=True, is_superuser=True))
    return api_client


def test_api_pages_by_cursor_and_refuses_bad_paging(staff_client):
    for i in range(5):
        row(T0 + timedelta(minutes=i))
    first = staff_client.get("/api/tokens/buy-orders/?limit=2").json()
    assert first["count"] == 5 and first["count_exact"] and first["next_cursor"]
    ids = [r["id"] for r in first["results"]]
    cursor = first["next_cursor"]
    while cursor:
        body = staff_client.get("/api/tokens/buy-orders/", {"limit": 2, "cursor": cursor}).json()
        ids += [r["id"] for r in body["results"]]
        cursor = body["next_cursor"]
    assert ids == list(BuyOrder.objects.order_by("-created_at", "-id").values_list("id", flat=True))

    for query, code in [({"cursor": "garbage"}, "invalid_cursor"), ({"offset": 10_001}, "offset_too_deep"),
                        ({"cursor": first["next_cursor"], "offset": 2}, "cursor_with_offset"),
                        ({"limit": 501}, "max_value")]:
        response = staff_client.get("/api/tokens/buy-orders/", query)
        assert response.status_code == 400 and response.json()["code"] == code, (query, response.json())


def test_admin_list_counts_from_the_totals_without_a_full_count(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for i in range(3):
        row(T0 + timedelta(minutes=i))
    buy_order_totals_rebuild()
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/tokens/buyorder/")
    assert response.status_code == 200 and "3 buy" in response.content.decode()
    counts = [q["sql"] for q in queries.captured_queries
              if "COUNT(" in q["sql"] and "tokens_buyorder" in q["sql"] and "WHERE" not in q["sql"]]
    assert counts == []
    assert client.get("/admin/tokens/buyorder/?status__exact=failed").status_code == 200
