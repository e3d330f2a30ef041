"""The worked examples E1–E8 of the compensation plan, to the cent — each through real purchases
processed both ways (§11): one by one as they come (`purchase_process`) and as one batch after
they were all bought (`purchase_process_many`)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import LedgerEntry
from mlm.models import Bonus, MemberStats, PoolRun
from mlm.rules import month_add
from mlm.selectors import loyalty, member_summary, plan_load
from mlm.services import (
    global_pool_run,
    loyalty_streaks_update,
    purchase_process,
    purchase_process_many,
    team_volume_recalculate,
)
from purchases.models import Purchase
from tests.mlm.factories import buy, make_active, member, option

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture(params=["one_by_one", "batch"])
def purchases(request):
    """`purchases(*(user, option[, when]))` buys them in order and has them processed: each right
    after it is bought (`purchase_process`), or all of them in one batch once bought
    (`purchase_process_many`). `when` (an aware datetime) dates a purchase before it is processed."""

    def play(*specs):
        bought = []
        for user, opt, *when in specs:
            p = buy(user, opt)
            if when:
                Purchase.objects.filter(pk=p.pk).update(created_at=when[0])
                p.refresh_from_db()
            bought.append(p)
            if request.param == "one_by_one":
                assert purchase_process(purchase_id=p.pk).processed
        if request.param == "batch":
            assert purchase_process_many(purchase_ids=[p.pk for p in bought]) == len(bought)
        return bought

    return play


def bonuses(purchase, kind=None):
    qs = Bonus.objects.filter(purchase=purchase).exclude(kind="investment")  # E4 tests that one
    if kind:
        qs = qs.filter(kind=kind)
    return {(b.user_id, b.kind): b.amount for b in qs}


def test_e1_differential_and_root(root, purchases):
    d = member(rank="director")
    b = member(d, rank="builder")
    s = member(b, rank="start")
    [p] = purchases((s, option("1000")))
    diffs = bonuses(p, "differential")
    assert diffs == {(b.pk, "differential"): D("40.00"), (d.pk, "differential"): D("100.00")}
    assert not Bonus.objects.filter(purchase=p, kind="system_compression").exists()
    assert sum(diffs.values()) == D("140.00")
    b.refresh_from_db()
    d.refresh_from_db()
    assert b.balance_passive == D("40") and d.balance_passive == D("100")
    assert Bonus.objects.get(purchase=p, user=b).level == 1
    assert Bonus.objects.get(purchase=p, user=d).level == 2


def test_e2_compression(root, purchases):
    g = member(rank="growth")
    b = member(g, rank="builder", active=False)
    s = member(b, rank="start")
    [p] = purchases((s, option("1000")))
    assert bonuses(p) == {(g.pk, "differential"): D("80.00"), (root.pk, "system_compression"): D("60.00")}
    assert Bonus.objects.get(purchase=p, user=g).compression_applied is True
    root.refresh_from_db()
    assert root.balance_passive == D("60")


def test_e3_pioneer(root, purchases):
    pio = member(rank="builder", pioneer=True)
    s = member(pio, rank="start")
    [p] = purchases((s, option("1000")))
    assert bonuses(p) == {(pio.pk, "differential"): D("40.00"), (pio.pk, "pioneer"): D("40.00"),
                          (root.pk, "system_compression"): D("100.00")}
    pio.refresh_from_db()
    assert pio.balance_passive == D("80.00")
    # Each bonus has its own ledger row on the passive wallet.
    assert LedgerEntry.objects.filter(user=pio, wallet="passive").count() == 2


def test_e4_investment_bonus_in_options(root, purchases):
    m = member()
    opt = option("1500", shares=30000)  # unit 0.05
    opt_4000 = option("4000", shares=80000, project=opt.project)
    opt_20000 = option("20000", shares=400000, project=opt.project)
    p1, p2, p3 = purchases((m, opt), (m, opt_4000), (m, opt_20000))

    inv = Bonus.objects.get(purchase=p1, kind="investment")
    assert inv.amount == D("75.00")
    assert inv.granted_purchase.shares == 1500 and inv.granted_purchase.kind == Purchase.Kind.BONUS
    inv2 = Bonus.objects.get(purchase=p2, kind="investment")
    assert inv2.amount == D("482.50") and inv2.granted_purchase.shares == 9650
    inv3 = Bonus.objects.get(purchase=p3, kind="investment")
    assert inv3.granted_purchase.shares == 67022
    assert inv3.amount == D("3351.10")
    total = sum(Purchase.objects.filter(user=m).values_list("price", flat=True))
    assert total == D("29408.60")  # 25,500 bought + 3,908.60 granted; 0.025 stays owed
    # Bonus purchases are net zero on the active wallet.
    m.refresh_from_db()
    assert m.balance_active == 0


def test_e5_referral_and_pioneer(root, purchases):
    a = member(rank="start")
    s = member(a, rank="start")
    opt = option("5000", shares=100000)
    [p] = purchases((s, opt))
    ref = Bonus.objects.get(purchase=p, kind="referral")
    assert ref.user_id == a.pk and ref.amount == D("50.00")
    assert ref.granted_purchase.shares == 1000 and ref.granted_purchase.option_id == opt.pk
    assert ref.granted_purchase.kind == Purchase.Kind.BONUS
    assert MemberStats.objects.get(user=s).is_pioneer is True
    a.refresh_from_db()
    assert a.balance_active == 0


def test_e6_fifty_percent_rule(root, purchases):
    m = member(rank="start")
    r1 = member(m)
    r2 = member(m)
    below_r1 = member(r1)
    # Branch volumes (PV + FV of the direct referral): r1 4,000, r2 1,000.
    purchases((r1, option("1000")), (below_r1, option("3000")), (r2, option("1000")))
    stats = team_volume_recalculate(user=m)
    assert stats.cap == D("2500") and stats.tv == D("3500") and stats.max_branch == D("4000")
    assert stats.next_rank.code == "builder" and stats.gap == D("1500")
    assert stats.rank.code == "start"


def test_e7_global_pool(root, purchases):
    last_month = (timezone.now().replace(day=1) - timezone.timedelta(days=1)).replace(day=15)
    # Two qualifiers, each with two director branches.
    q1 = member(rank="director")
    q2 = member(rank="director")
    for q in (q1, q2):
        make_active(q, last_month)
        for _ in range(2):
            head = member(q)
            member(head, rank="director")
    buyer = member()
    purchases((buyer, option("1000000", shares=1000), last_month))
    run = global_pool_run(month=last_month.date())
    assert run.company_volume == D("1000000") and run.pool == D("20000.00") and run.qualifiers == 2
    amounts = {b.user_id: b.amount for b in Bonus.objects.filter(pool_run=run)}
    assert amounts == {q1.pk: D("10000.00"), q2.pk: D("10000.00")}
    # Once per month.
    again = global_pool_run(month=last_month.date())
    assert again.pk == run.pk and PoolRun.objects.count() == 1
    assert Bonus.objects.filter(kind="global_pool").count() == 2


def test_e8_grace_day_and_the_loyalty_streak(root, purchases):
    s = member(member())
    opt = option("1000")  # unit 0.05
    graces = [datetime(2025, month, 1, 9, 30, tzinfo=UTC) for month in (3, 4, 5)]
    march, april, may = purchases(*((s, opt, when) for when in graces))
    grace = Bonus.objects.get(purchase=march, kind="grace_day")
    assert (grace.user_id, grace.amount, grace.rate) == (s.pk, D("50.00"), D("0.05"))
    assert grace.granted_purchase.shares == 1000 and grace.granted_purchase.option_id == opt.pk
    assert grace.granted_purchase.kind == Purchase.Kind.BONUS
    assert [Bonus.objects.get(purchase=p, kind="grace_day").amount for p in (april, may)] == [D("50.00")] * 2
    s.refresh_from_db()
    assert s.balance_active == 0  # the auto-purchases are net zero

    plan = plan_load()
    assert loyalty(plan, user=s, today=date(2025, 5, 20)) == (3, True)
    assert loyalty(plan, user=s, today=date(2025, 4, 20)) == (2, False)
    assert loyalty(plan, user=s, today=date(2025, 6, 1)) == (3, True)  # June's Grace Day is today
    assert loyalty(plan, user=s, today=date(2025, 6, 2)) == (0, False)  # no Grace Day purchase in June
    # The daily task stores it: 3 on 1 June, 0 on 2 June.
    assert loyalty_streaks_update(today=date(2025, 6, 1)) == 1
    assert MemberStats.objects.get(user=s).loyalty_streak == 3
    assert loyalty_streaks_update(today=date(2025, 6, 1)) == 0  # nothing changes twice
    assert loyalty_streaks_update(today=date(2025, 6, 2)) == 1
    assert MemberStats.objects.get(user=s).loyalty_streak == 0


def test_summary_shows_the_streak_of_the_last_grace_days(root, purchases):
    """The streak up to this month's Grace Day (already past, whatever today is)."""
    s = member()
    firsts = [month_add(timezone.now().date(), -k) for k in (2, 1, 0)]
    months = [datetime(d.year, d.month, d.day, 0, 0, 1, tzinfo=UTC) for d in firsts]
    purchases(*((s, option("1000"), when) for when in months))
    summary = member_summary(user=s)
    assert (summary["loyalty_streak"], summary["is_loyalty_qualified"]) == (3, True)
    other = member()
    purchases((other, option("1000"), months[0]), (other, option("1000"), months[2]))  # a month missed
    assert (member_summary(user=other)["loyalty_streak"], member_summary(user=other)["is_loyalty_qualified"]) \
        == (1, False)
