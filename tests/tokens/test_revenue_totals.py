"""The revenue's running total (tokens.totals.revenue_totals_apply) and the pack-sale sweeper's
high-water mark (tokens.pack_sales_mark): always equal to a recomputation from the rows, and a
purchase committing late below the mark is still swept."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from purchases.models import Purchase
from purchases.services import purchase_create, purchase_refund
from tests.concurrency import run_concurrently
from tests.factories import OptionFactory, UserFactory
from tokens.models import BuyOrderTotals, PackSaleSweepMark, Revenue
from tokens.pack_sales_mark import can_advance, pack_sales_mark
from tokens.refs import pack_sale_ref
from tokens.revenue import pack_sales_record, pack_sales_sweep, revenue_reverse_pack_sale, revenue_track
from tokens.selectors import buy_order_metrics, unspent_revenue
from tokens.totals import buy_order_totals_problems, buy_order_totals_rebuild

D = Decimal


def stored() -> tuple:
    row = BuyOrderTotals.objects.get()
    return row.revenue_zar, row.revenue_count


def recomputed() -> tuple:
    row = Revenue.objects.aggregate(total=Sum("amount_zar"), n=Count("id"))
    return row["total"] or D(0), row["n"]


def buy(price="50", *, age_minutes=0) -> Purchase:
    p = purchase_create(user=UserFactory(balance=price), option=OptionFactory(pack_price=D(price)))
    if age_minutes:
        Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(minutes=age_minutes))
    return p


@pytest.fixture
def lost_tasks(monkeypatch):
    """The purchases' on-commit messages are lost (the sweeper's case)."""
    from tokens import tasks

    monkeypatch.setattr(tasks.pack_sales_record, "delay_on_commit", lambda *a, **k: None)


@pytest.mark.django_db
def test_the_total_equals_a_recomputation_after_a_mixed_sequence(lost_tasks, django_assert_max_num_queries):
    revenue_track(source="other", amount="100", external_ref="inv-1")
    revenue_track(source="other", amount="100", external_ref="inv-1")  # a retry: recorded once
    revenue_track(source="course_sale", amount="10", currency="USD")  # 180 ZAR at the seeded rate
    p, _q = buy("50", age_minutes=10), buy("20", age_minutes=10)
    assert pack_sales_record(purchase_ids=[p.pk]) == 1
    assert pack_sales_record(purchase_ids=[p.pk]) == 0  # the task twice for the same purchase
    assert pack_sales_sweep() == 1  # q, whose task was lost
    refund = purchase_refund(purchase=p)
    reversal = revenue_reverse_pack_sale(refund_id=refund.pk)
    assert revenue_reverse_pack_sale(refund_id=refund.pk) == reversal  # once

    assert stored() == recomputed() == (D("100") + D("180") + D("900") + D("360") - D("900"), 5)
    assert buy_order_totals_problems() == []
    with django_assert_max_num_queries(2):
        metrics = buy_order_metrics()
    assert metrics["total_revenue_tracked"] == recomputed()[0]
    with django_assert_max_num_queries(1):
        unspent = unspent_revenue()
    assert unspent == recomputed()[0]


@pytest.mark.django_db
def test_a_bulk_insert_counts_only_the_rows_it_inserted(lost_tasks):
    """A racing task inserted one reference between the look-up and the INSERT: ON CONFLICT
    skips it, and the total counts only what RETURNING gave."""
    from tokens import revenue

    bought = [buy("30", age_minutes=10) for _ in range(3)]
    real_insert = revenue._insert_ignoring_conflicts

    def racing_insert(rows):
        revenue_track(source="pack_sale", amount="30", currency="USD", external_ref=pack_sale_ref(bought[0].pk))
        return real_insert(rows)

    revenue._insert_ignoring_conflicts = racing_insert
    try:
        pack_sales_record(purchase_ids=[p.pk for p in bought])
    finally:
        revenue._insert_ignoring_conflicts = real_insert
    assert Revenue.objects.filter(source="pack_sale").count() == 3
    assert stored() == recomputed() == (D("1620"), 3)


@pytest.mark.django_db
def test_the_check_finds_drift_and_the_rebuild_fixes_it():
    revenue_track(source="other", amount="250")
    BuyOrderTotals.objects.update(revenue_zar=F("revenue_zar") + 1)  # a manual edit behind its back
    Revenue.objects.create(source="other", amount=D("5"), amount_zar=D("5"))  # an insert past the writer

    problems = buy_order_totals_problems()
    assert len(problems) == 2 and "revenue_zar is 251" in problems[0] and "revenue_count is 1" in problems[1]
    with pytest.raises(CommandError, match="buy-order running total"):
        call_command("check_ledger")

    buy_order_totals_rebuild()
    assert buy_order_totals_problems() == [] and stored() == (D("255"), 2)


@pytest.mark.django_db
def test_without_the_totals_row_the_next_insert_rebuilds_it():
    Revenue.objects.create(source="other", amount=D("7"), amount_zar=D("7"))
    BuyOrderTotals.objects.all().delete()
    assert unspent_revenue() == 0 and buy_order_metrics()["total_revenue_tracked"] == 0
    revenue_track(source="other", amount="3")
    assert stored() == (D("10"), 2) and unspent_revenue() == D("10")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_inserts_in_four_threads_add_up(lost_tasks):
    bought = [buy("40", age_minutes=10) for _ in range(6)]
    ids = [p.pk for p in bought]

    def work(which: int):
        if which % 2:
            return pack_sales_record(purchase_ids=ids)  # both racing over the same purchases
        return [revenue_track(source="other", amount=str(10 + which), external_ref=f"t{which}-{i}")
                for i in range(5)] + [revenue_track(source="other", amount="1", external_ref="shared")]

    results, errors = run_concurrently(work, [(0,), (1,), (2,), (3,)])
    assert errors == []
    assert Revenue.objects.filter(source="pack_sale").count() == 6
    assert stored() == recomputed() == (6 * D("720") + 5 * D("10") + 5 * D("12") + D("1"), 6 + 10 + 1)
    assert buy_order_totals_problems() == []


# --- the sweeper's high-water mark ---------------------------------------------------------

def test_the_mark_moves_only_past_ended_transactions_and_the_grace():
    now = timezone.now()
    noted = {"candidate": 10, "candidate_xmax": 500, "candidate_at": now - timedelta(minutes=6)}
    assert can_advance(**noted, xmin=500, now=now, grace=timedelta(minutes=5))
    assert not can_advance(**noted, xmin=499, now=now, grace=timedelta(minutes=5))  # one still running
    assert not can_advance(**noted, xmin=900, now=now, grace=timedelta(minutes=7))  # too recent
    assert not can_advance(candidate=None, candidate_xmax=None, candidate_at=None, xmin=900, now=now,
                           grace=timedelta(0))


def sweep_until_the_mark_moves(*, times=40) -> int:
    """Sweeps (grace 0) until the mark moves: it waits for every transaction running when a
    candidate was noted, in any database of the server, so a busy server may take a moment."""
    before = pack_sales_mark()
    for _ in range(times):
        pack_sales_sweep(older_than_minutes=0)
        if pack_sales_mark() != before:
            return pack_sales_mark()
        time.sleep(0.25)
    return pack_sales_mark()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_with_nothing_missing_looks_above_the_mark_only(lost_tasks, django_assert_max_num_queries):
    old = [buy("10", age_minutes=10) for _ in range(3)]
    assert pack_sales_sweep(older_than_minutes=0) == 3
    assert sweep_until_the_mark_moves() == old[-1].pk

    # Below the mark a deleted row is the repair command's (it scans every purchase).
    Revenue.objects.filter(external_ref=pack_sale_ref(old[0].pk)).delete()
    buy_order_totals_rebuild()
    assert pack_sales_sweep(older_than_minutes=0) == 0
    call_command("tokens_record_pack_sales")
    assert Revenue.objects.filter(external_ref=pack_sale_ref(old[0].pk)).count() == 1
    newer = buy("10")
    assert pack_sales_sweep(older_than_minutes=0) == 1 and Revenue.objects.filter(
        external_ref=pack_sale_ref(newer.pk)).exists()
    assert buy_order_totals_problems() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_purchase_committing_late_below_a_higher_committed_id_is_still_swept(lost_tasks):
    taken, release = threading.Event(), threading.Event()
    late = {}

    def slow_purchase():
        try:
            with transaction.atomic():
                late["p"] = buy("25")  # takes its id, then stays uncommitted
                taken.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_purchase)
    thread.start()
    try:
        assert taken.wait(30)
        higher = buy("25")  # a higher id, committed first
        assert higher.pk > late["p"].pk
        for _ in range(6):  # however often it sweeps, the mark stays below the open purchase
            pack_sales_sweep(older_than_minutes=0)
            assert pack_sales_mark() < late["p"].pk
            time.sleep(0.1)
        assert PackSaleSweepMark.objects.get().candidate >= higher.pk
    finally:
        release.set()
        thread.join(30)

    assert not Revenue.objects.filter(external_ref=pack_sale_ref(late["p"].pk)).exists()  # its task was lost
    assert pack_sales_sweep(older_than_minutes=0) == 1
    assert Revenue.objects.filter(external_ref=pack_sale_ref(late["p"].pk)).count() == 1
    assert sweep_until_the_mark_moves() >= higher.pk
    assert buy_order_totals_problems() == []
