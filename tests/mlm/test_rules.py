"""The pure rule core (mlm.rules) on plain data: the worked examples without a database."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from mlm import rules as r

RANKS = (
    r.RankRule(1, "start", D("0.04"), D(0), D(0), 0, 1),
    r.RankRule(2, "builder", D("0.08"), D(1000), D(5000), 2, 2),
    r.RankRule(3, "growth", D("0.12"), D(2500), D(25000), 4, 3),
    r.RankRule(4, "leadership", D("0.16"), D(5000), D(125000), 6, 4),
    r.RankRule(5, "director", D("0.18"), D(10000), D(500000), 10, 5),
)
TIERS = ((D(1000), D("0.05")), (D(5000), D("0.10")), (D(25000), D("0.15")), (D(125000), D("0.20")))
PLAN = r.PlanRules(ranks=RANKS, tiers=TIERS)
ROOT = 1
MARCH_5 = datetime(2026, 3, 5, 12, tzinfo=UTC)
OPT = r.OptionInfo(id=10, project_id=7, pack_shares=20, pack_price=D(1))  # unit 0.05


def snap(**members):
    """`name=(rank_id, active, pioneer)` → a snapshot with those members in March 2026."""
    s = r.Snapshot(plan=PLAN, cheapest={7: OPT})
    for uid, (rank_id, active, pioneer) in members.items():
        uid = int(uid[1:])
        s.members[uid] = r.MemberState(uid, rank_id, pioneer)
        if active:
            s.monthly_pv[(uid, date(2026, 3, 1))] = D(200)
    return s


def buy(uid, upline, price, *, when=MARCH_5, pid=100, option=OPT):
    return r.PurchaseFacts(id=pid, user_id=uid, option=option, price=D(price), created_at=when,
                           upline_ids=tuple(upline), root_id=ROOT)


def cash(outcome):
    return [(b.user_id, b.kind, b.amount) for b in outcome.bonuses if b.is_cash]


def test_e1_differential_and_root():
    s = snap(u2=(5, True, False), u3=(2, True, False), u4=(1, True, False))  # D ← B ← S
    out = r.evaluate(s, buy(4, [3, 2], 1000))
    assert cash(out) == [(3, "differential", D("40.00")), (2, "differential", D("100.00"))]
    assert out.fv_user_ids == (3, 2)


def test_e2_compression():
    s = snap(u2=(3, True, False), u3=(2, False, False), u4=(1, True, False))  # G ← B(inactive) ← S
    out = r.evaluate(s, buy(4, [3, 2], 1000))
    assert cash(out) == [(2, "differential", D("80.00")), (ROOT, "system_compression", D("60.00"))]
    assert out.by_kind("differential")[0].compression_applied is True


def test_e3_pioneer():
    s = snap(u2=(2, True, True), u3=(1, True, False))
    out = r.evaluate(s, buy(3, [2], 1000))
    assert cash(out) == [(2, "differential", D("40.00")), (ROOT, "system_compression", D("100.00")),
                         (2, "pioneer", D("40.00"))]


def test_e4_investment_bonus_over_three_purchases():
    s = snap(u2=(1, True, False))
    granted = []
    for pid, price in ((1, 1500), (2, 4000), (3, 20000)):
        p = buy(2, [], price, pid=pid)
        out = r.evaluate(s, p)
        r.fold(s, p, out)
        inv = out.by_kind("investment")
        granted.append((inv[0].grant_shares, inv[0].amount))
    assert granted == [(1500, D("75.00")), (9650, D("482.50")), (67022, D("3351.10"))]
    assert s.invest_total[(2, 7)] == D("1500") + D(75) + 4000 + D("482.50") + 20000 + D("3351.10")


def test_e5_referral_and_pioneer():
    opt = r.OptionInfo(id=11, project_id=7, pack_shares=100000, pack_price=D(5000))
    s = snap(u2=(1, True, False), u3=(1, True, False))
    out = r.evaluate(s, buy(3, [2], 5000, option=opt))
    ref = out.by_kind("referral")
    assert [(b.user_id, b.amount, b.grant_shares) for b in ref] == [(2, D("50.00"), 1000)]
    assert out.becomes_pioneer


def test_referral_needs_an_active_sponsor_and_the_threshold():
    s = snap(u2=(1, False, False), u3=(1, True, False))
    assert not r.evaluate(s, buy(3, [2], 6000)).by_kind("referral")
    s = snap(u2=(1, True, False), u3=(1, True, False))
    assert not r.evaluate(s, buy(3, [2], 4999)).by_kind("referral")


def test_pioneer_limit_is_counted_across_a_batch():
    plan = r.PlanRules(ranks=RANKS, tiers=TIERS, pioneer_limit=1)
    s = r.Snapshot(plan=plan, cheapest={7: OPT})
    outs = r.evaluate_many(s, [buy(2, [], 5000, pid=1), buy(3, [], 5000, pid=2)])
    assert [o.becomes_pioneer for o in outs] == [True, False]


def test_e6_fifty_percent_rule():
    tv = r.team_volume(PLAN, RANKS[0], [D(4000), D(1000)])
    assert (tv.cap, tv.tv, tv.next_rank.code, tv.gap) == (D(2500), D(3500), "builder", D(1500))


def test_e7_global_pool():
    split = r.pool_split(PLAN, company_volume=D(1_000_000), qualifiers=2)
    assert (split.pool, split.share, split.remainder) == (D("20000.00"), D("10000.00"), D("0.00"))
    odd = r.pool_split(PLAN, company_volume=D(1000), qualifiers=3)
    assert odd.share * 3 + odd.remainder == odd.pool and odd.share == D("6.66")


def test_e8_grace_day_and_the_loyalty_streak():
    s = snap(u2=(1, True, False))
    out = r.evaluate(s, buy(2, [], 1000, when=datetime(2026, 3, 1, 9, tzinfo=UTC)))
    grace = out.by_kind("grace_day")
    assert [(b.amount, b.grant_shares) for b in grace] == [(D("50.00"), 1000)]
    months = [date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)]
    assert r.loyalty_streak(PLAN, months, today=date(2026, 5, 20)) == 3
    assert r.is_loyalty_qualified(PLAN, 3)
    assert r.loyalty_streak(PLAN, months, today=date(2026, 6, 1)) == 3  # June's Grace Day is today
    assert r.loyalty_streak(PLAN, months, today=date(2026, 6, 2)) == 0
    assert not r.evaluate(s, buy(2, [], 1000, when=MARCH_5)).by_kind("grace_day")


def test_investment_total_counts_only_what_came_before():
    """§7: a later purchase in the same batch does not raise T for an earlier one."""
    one_by_one = []
    for pid, price in ((1, 800), (2, 800)):
        s = snap(u2=(1, True, False))
        if one_by_one:
            r.fold(s, buy(2, [], 800, pid=1), one_by_one[0])
        one_by_one.append(r.evaluate(s, buy(2, [], price, pid=pid)))
    batch = r.evaluate_many(snap(u2=(1, True, False)), [buy(2, [], 800, pid=2), buy(2, [], 800, pid=1)])
    assert [o.bonuses for o in batch] == [o.bonuses for o in one_by_one]
    assert not batch[0].by_kind("investment") and batch[1].by_kind("investment")[0].amount == D("80.00")


@pytest.mark.parametrize("value,expected", [(date(2026, 12, 9), date(2027, 1, 1)),
                                            (date(2026, 1, 31), date(2026, 2, 1))])
def test_month_next(value, expected):
    assert r.month_next(value) == expected
    assert r.month_add(expected, -1) == value.replace(day=1)


def test_rank_earned_skips_levels_and_needs_activity():
    got = r.rank_earned(PLAN, RANKS[0], pv=D(5000), tv=D(125000), active_partners=6, is_active=True)
    assert got.code == "leadership"
    assert r.rank_earned(PLAN, RANKS[0], pv=D(5000), tv=D(125000), active_partners=6, is_active=False) is None
