"""The worked examples E1–E7 of the compensation plan, to the cent."""

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import LedgerEntry
from mlm.models import Bonus, MemberStats, PoolRun
from mlm.services import global_pool_run, purchase_process, team_volume_recalculate
from purchases.models import Purchase
from tests.mlm.factories import buy, make_active, member, option

pytestmark = pytest.mark.django_db

D = Decimal


def bonuses(purchase, kind=None):
    qs = Bonus.objects.filter(purchase=purchase).exclude(kind="investment")  # E4 tests that one
    if kind:
        qs = qs.filter(kind=kind)
    return {(b.user_id, b.kind): b.amount for b in qs}


def test_e1_differential_and_root(root):
    d = member(rank="director")
    b = member(d, rank="builder")
    s = member(b, rank="start")
    p = buy(s, option("1000"))
    purchase_process(purchase_id=p.pk)
    diffs = bonuses(p, "differential")
    assert diffs == {(b.pk, "differential"): D("40.00"), (d.pk, "differential"): D("100.00")}
    assert not Bonus.objects.filter(purchase=p, kind="system_compression").exists()
    assert sum(diffs.values()) == D("140.00")
    b.refresh_from_db()
    d.refresh_from_db()
    assert b.balance_passive == D("40") and d.balance_passive == D("100")
    assert Bonus.objects.get(purchase=p, user=b).level == 1
    assert Bonus.objects.get(purchase=p, user=d).level == 2


def test_e2_compression(root):
    g = member(rank="growth")
    b = member(g, rank="builder", active=False)
    s = member(b, rank="start")
    p = buy(s, option("1000"))
    purchase_process(purchase_id=p.pk)
    assert bonuses(p) == {(g.pk, "differential"): D("80.00"), (root.pk, "system_compression"): D("60.00")}
    assert Bonus.objects.get(purchase=p, user=g).compression_applied is True
    root.refresh_from_db()
    assert root.balance_passive == D("60")


def test_e3_pioneer(root):
    pio = member(rank="builder", pioneer=True)
    s = member(pio, rank="start")
    p = buy(s, option("1000"))
    purchase_process(purchase_id=p.pk)
    assert bonuses(p) == {(pio.pk, "differential"): D("40.00"), (pio.pk, "pioneer"): D("40.00"),
                          (root.pk, "system_compression"): D("100.00")}
    pio.refresh_from_db()
    assert pio.balance_passive == D("80.00")
    # Each bonus has its own ledger row on the passive wallet.
    assert LedgerEntry.objects.filter(user=pio, wallet="passive").count() == 2


def test_e4_investment_bonus_in_options(root):
    m = member()
    opt = option("1500", shares=30000)  # unit 0.05
    opt_4000 = option("4000", shares=80000, project=opt.project)
    opt_20000 = option("20000", shares=400000, project=opt.project)

    p1 = buy(m, opt)
    purchase_process(purchase_id=p1.pk)
    inv = Bonus.objects.get(purchase=p1, kind="investment")
    assert inv.amount == D("75.00")
    assert inv.granted_purchase.shares == 1500 and inv.granted_purchase.kind == Purchase.Kind.BONUS

    p2 = buy(m, opt_4000)
    purchase_process(purchase_id=p2.pk)
    inv2 = Bonus.objects.get(purchase=p2, kind="investment")
    assert inv2.amount == D("482.50") and inv2.granted_purchase.shares == 9650

    p3 = buy(m, opt_20000)
    purchase_process(purchase_id=p3.pk)
    inv3 = Bonus.objects.get(purchase=p3, kind="investment")
    assert inv3.granted_purchase.shares == 67022
    assert inv3.amount == D("3351.10")
    total = sum(Purchase.objects.filter(user=m).values_list("price", flat=True))
    assert total == D("29408.60")  # 25,500 bought + 3,908.60 granted; 0.025 stays owed
    # Bonus purchases are net zero on the active wallet.
    m.refresh_from_db()
    assert m.balance_active == 0


def test_e5_referral_and_pioneer(root):
    a = member(rank="start")
    s = member(a, rank="start")
    opt = option("5000", shares=100000)
    p = buy(s, opt)
    purchase_process(purchase_id=p.pk)
    ref = Bonus.objects.get(purchase=p, kind="referral")
    assert ref.user_id == a.pk and ref.amount == D("50.00")
    assert ref.granted_purchase.shares == 1000 and ref.granted_purchase.option_id == opt.pk
    assert ref.granted_purchase.kind == Purchase.Kind.BONUS
    assert MemberStats.objects.get(user=s).is_pioneer is True
    a.refresh_from_db()
    assert a.balance_active == 0


def test_e6_fifty_percent_rule(root):
    m = member(rank="start")
    r1 = member(m)
    r2 = member(m)
    MemberStats.objects.filter(user=r1).update(pv=D("1000"), fv=D("3000"))
    MemberStats.objects.filter(user=r2).update(pv=D("1000"))
    stats = team_volume_recalculate(user=m)
    assert stats.cap == D("2500") and stats.tv == D("3500") and stats.max_branch == D("4000")
    assert stats.next_rank.code == "builder" and stats.gap == D("1500")
    assert stats.rank.code == "start"


def test_e7_global_pool(root):
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
    opt = option("1000000", shares=1000)
    p = buy(buyer, opt)
    Purchase.objects.filter(pk=p.pk).update(created_at=last_month)
    run = global_pool_run(month=last_month.date())
    assert run.company_volume == D("1000000") and run.pool == D("20000.00") and run.qualifiers == 2
    amounts = {b.user_id: b.amount for b in Bonus.objects.filter(pool_run=run)}
    assert amounts == {q1.pk: D("10000.00"), q2.pk: D("10000.00")}
    # Once per month.
    again = global_pool_run(month=last_month.date())
    assert again.pk == run.pk and PoolRun.objects.count() == 1
    assert Bonus.objects.filter(kind="global_pool").count() == 2
