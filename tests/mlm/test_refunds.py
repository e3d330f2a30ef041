"""Refunds in the compensation plan: the clawback (money-lifecycle §2 and §5)."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from accounts.models import DebtEntry, LedgerEntry, User
from accounts.selectors import debt_mismatches, ledger_mismatches
from accounts.services import member_sponsor_change, wallet_transfer_to_active
from common.errors import ConflictError
from mlm.models import Bonus, MemberStats, MonthlyVolume, PlanSettings, ProcessedPurchase, ProcessedRefund
from mlm.refunds import purchase_clawback, refunds_sweep
from mlm.selectors import bonus_ledger_mismatches, refund_preview
from mlm.services import purchase_process, purchases_sweep, team_volume_drain
from purchases.models import Purchase, Refund
from purchases.services import purchase_grant, purchase_refund
from purchases.signals import purchase_completed, purchase_refunded
from tests.concurrency import run_concurrently
from tests.mlm.factories import buy, member, option
from tokens.models import Revenue
from tokens.selectors import available_revenue, unspent_revenue

D = Decimal


def snapshot() -> dict:
    """Everything a purchase changes that a refund must restore (ledger rows aside: a refund
    adds rows, the balances they make must be the same)."""
    stats = {}
    for s in MemberStats.objects.all():
        row = (s.pv, s.fv, s.tv, s.max_branch, s.is_pioneer, s.pioneer_purchase_id)
        if row != (0, 0, 0, 0, False, None):
            stats[s.user_id] = row
    return {
        "balances": {u.pk: (u.balance_active, u.balance_passive, u.clawback_debt) for u in User.objects.all()},
        "stats": stats,
        "monthly": {(m.user_id, m.month): m.pv for m in MonthlyVolume.objects.exclude(pv=0)},
        # The investment total T per (member, project): every purchase that still counts.
        "totals": {(r["user_id"], r["project_id"]): (r["t"], r["shares"]) for r in
                   Purchase.objects.filter(refunded_at__isnull=True).values("user_id", "project_id")
                   .annotate(t=Sum("price"), shares=Sum("shares"))},
        "counted": set(Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS, refunded_at__isnull=True)
                       .values_list("id", flat=True)),
        "paid_bonuses": set(Bonus.objects.filter(status__in=["paid", "pending"]).values_list("id", flat=True)),
        "revenue": (unspent_revenue(), available_revenue()),
    }


def assert_books_balance():
    assert ledger_mismatches() == []
    assert debt_mismatches() == []
    assert bonus_ledger_mismatches() == []
    call_command("check_ledger")
    assert not User.objects.filter(balance_passive__lt=0).exists()
    assert not User.objects.filter(balance_active__lt=0).exists()


@pytest.fixture
def line(root):
    """root ← D (director) ← B (builder, pioneer) ← S (start): a purchase of 5,000 by S pays
    differentials to B and D, a pioneer bonus to B, a referral bonus (options) to B, an
    investment bonus (options) to S, and makes S a pioneer."""
    d = member(rank="director")
    b = member(d, rank="builder", pioneer=True)
    s = member(b)
    return d, b, s


@pytest.mark.django_db
def test_refund_right_after_a_regular_purchase_restores_everything(line, django_capture_on_commit_callbacks):
    d, b, s = line
    opt = option("5000", shares=100000)
    from accounts.services import wallet_deposit

    wallet_deposit(user=s, amount="5000", reference="s-funds")
    with django_capture_on_commit_callbacks(execute=True):
        team_volume_drain()
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        from purchases.services import purchase_create

        p = purchase_create(user=s, option=opt)
    assert ProcessedPurchase.objects.get(pk=p.pk).fv_path == ""  # = the buyer's path now (kept sparse)
    kinds = sorted(Bonus.objects.filter(purchase=p).values_list("kind", flat=True))
    assert kinds == ["differential", "differential", "investment", "pioneer", "referral"]
    assert MemberStats.objects.get(user=s).pioneer_purchase_id == p.pk
    assert Revenue.objects.filter(external_ref=f"purchase:{p.pk}").exists()
    assert snapshot() != before

    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=p, reason="customer asked")
    assert snapshot() == before
    assert ProcessedRefund.objects.get(refund=refund).was_processed
    assert set(Bonus.objects.filter(purchase=p).values_list("status", flat=True)) == {"reversed"}
    assert Bonus.objects.filter(purchase=p).exclude(reversed_at=None).count() == 5
    for grant in Purchase.objects.filter(kind="bonus"):
        assert grant.refunded_at is not None and Refund.objects.filter(purchase=grant).exists()
    assert_books_balance()
    # The members hear about it.
    assert b.mlm_notifications.filter(message__contains="taken back").count() == 3


@pytest.mark.django_db
def test_refund_right_after_a_legacy_purchase_restores_everything(line, django_capture_on_commit_callbacks):
    d, b, s = line
    opt = option("1000")
    with django_capture_on_commit_callbacks(execute=True):
        team_volume_drain()
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        legacy, _ = purchase_grant(user=s, option=opt, shares=20000, price="1000", kind="legacy",
                                   idempotency_key="legacy-1")
    assert Bonus.objects.filter(purchase=legacy, kind="differential").count() == 2
    assert snapshot() != before
    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=legacy)
    assert snapshot() == before
    # No wallet money moves for a legacy refund: no refund row in the ledger.
    assert not LedgerEntry.objects.filter(reason="refund").exists()
    assert refund.amount == D("1000")
    assert_books_balance()


@pytest.mark.django_db
def test_refund_after_a_sponsor_change_and_a_rebuild_follows_the_rebuilt_tree(root, django_capture_on_commit_callbacks):
    a = member(rank="builder")
    c = member(rank="builder")
    s = member(a)
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("1000"))
    assert MemberStats.objects.get(user=a).fv == D("1000")
    with django_capture_on_commit_callbacks(execute=True):
        member_sponsor_change(user=s, sponsor=c)
        call_command("rebuild_volumes")  # the volumes follow the new tree
    assert MemberStats.objects.get(user=c).fv == D("1000")
    assert MemberStats.objects.get(user=a).fv == D("0")
    # After a rebuild the FV sits with the new upline, and the refund takes it from there.
    assert ProcessedPurchase.objects.get(pk=p.pk).fv_path == ""  # = the buyer's path now, the new tree
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    assert MemberStats.objects.get(user=a).fv == D("0")
    assert MemberStats.objects.get(user=c).fv == D("0")


@pytest.mark.django_db
def test_refund_after_a_sponsor_change_without_rebuild(root, django_capture_on_commit_callbacks):
    """The usual case: the tree changed, volumes were not rebuilt. FV comes off the old upline;
    the TV of the new sponsor (whose branch lost the buyer's PV) is recalculated too."""
    a = member(rank="builder")
    a2 = member(a)
    c = member(rank="builder")
    s = member(a2)
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("1000"))
    old_path = User.objects.get(pk=s.pk).path
    member_sponsor_change(user=s, sponsor=c)
    assert ProcessedPurchase.objects.get(pk=p.pk).fv_path == old_path  # recorded before the move
    member_sponsor_change(user=s, sponsor=a)  # a second move keeps the path FV was raised along
    member_sponsor_change(user=s, sponsor=c)
    assert ProcessedPurchase.objects.get(pk=p.pk).fv_path == old_path
    preview = refund_preview(purchase=p)
    assert {(v["user_id"], v["volume"]) for v in preview["volumes"] if v["volume"] == "fv"} == {(a.pk, "fv"),
                                                                                              (a2.pk, "fv")}
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    assert [MemberStats.objects.get(user=u).fv for u in (a, a2, c)] == [D("0"), D("0"), D("0")]
    assert MemberStats.objects.get(user=s).pv == D("0")
    assert MemberStats.objects.get(user=c).tv_updated_at is not None  # queued and recalculated
    assert MemberStats.objects.get(user=a2).tv == D("0")


@pytest.mark.django_db
def test_clawback_beyond_the_passive_balance_is_debt_paid_by_the_next_credit(root, django_capture_on_commit_callbacks):
    d = member(rank="director")
    s = member(d)
    s2 = member(d)
    opt = option("1000")
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, opt)
    d.refresh_from_db()
    assert d.balance_passive == D("140.00")
    wallet_transfer_to_active(user=d, amount="100", idempotency_key="spend")  # D spent 100 of it
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    d.refresh_from_db()
    # The 2% transfer bonus (accounts.WalletSettings) is not clawed back: it paid for a transfer, not a purchase.
    assert (d.balance_passive, d.balance_active, d.clawback_debt) == (D("0"), D("102"), D("100"))
    bonus = Bonus.objects.get(purchase=p, user=d)
    reversal = LedgerEntry.objects.get(reason="bonus_reversal", user=d)
    assert (reversal.amount, reversal.cause, reversal.balance_after) == (D("-40"), bonus, D("0"))
    assert DebtEntry.objects.get(user=d).amount == D("100")
    assert_books_balance()

    # The next passive credit pays the debt first; the ledger shows the credit and the clawback.
    with django_capture_on_commit_callbacks(execute=True):
        p2 = buy(s2, opt)
    rows = list(LedgerEntry.objects.filter(user=d, wallet="passive").order_by("-id")[:2])
    assert [(r.reason, r.amount) for r in reversed(rows)] == [("bonus", D("140.00")), ("clawback", D("-100"))]
    d.refresh_from_db()
    assert (d.balance_passive, d.clawback_debt) == (D("40.00"), D("0"))
    assert Bonus.objects.get(purchase=p2, user=d).status == "paid"
    assert_books_balance()


@pytest.mark.django_db
def test_second_refund_is_a_conflict_and_writes_nothing(line, django_capture_on_commit_callbacks):
    d, b, s = line
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("1000"))
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    rows, refunds = LedgerEntry.objects.count(), Refund.objects.count()
    with pytest.raises(ConflictError) as exc:
        purchase_refund(purchase=p)
    assert exc.value.error_dict["purchase"][0].code == "already_refunded"
    assert (LedgerEntry.objects.count(), Refund.objects.count()) == (rows, refunds)


@pytest.mark.django_db
def test_a_retried_signal_or_task_changes_nothing(line, django_capture_on_commit_callbacks):
    d, b, s = line
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("5000", shares=100000))
    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=p)
    after = snapshot()
    rows, debts = LedgerEntry.objects.count(), DebtEntry.objects.count()
    assert not purchase_clawback(purchase_id=p.pk).done
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            purchase_refunded.send(sender=Purchase, purchase=p, refund=refund)
    assert refunds_sweep(older_than_minutes=0) == 0
    assert snapshot() == after
    assert (LedgerEntry.objects.count(), DebtEntry.objects.count()) == (rows, debts)
    assert Revenue.objects.filter(reverses__isnull=False).count() == 1
    assert_books_balance()


@pytest.mark.django_db
def test_a_pending_bonus_is_cancelled_without_money(line, django_capture_on_commit_callbacks):
    """Monthly hold mode (another module) creates cash bonuses `pending` with no ledger row."""
    d, b, s = line
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("1000"))
    other = member()
    held = Bonus.objects.create(user=other, purchase=p, kind="pioneer", amount=D("40"), status="pending")
    preview = refund_preview(purchase=p)
    assert {r["bonus_id"]: r["action"] for r in preview["bonuses"]}[held.pk] == "cancel"
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    held.refresh_from_db()
    assert held.status == "cancelled" and held.reversed_at is not None
    assert not LedgerEntry.objects.filter(user=other).exists()
    other.refresh_from_db()
    assert (other.balance_passive, other.clawback_debt) == (D("0"), D("0"))
    assert_books_balance()


@pytest.mark.django_db
def test_pioneer_slot_is_freed_unless_another_purchase_qualifies(root, django_capture_on_commit_callbacks):
    PlanSettings.objects.filter(pk=1).update(pioneer_limit=1)
    opt = option("5000", shares=100000)
    s, t, u = member(), member(), member()
    with django_capture_on_commit_callbacks(execute=True):
        ps = buy(s, opt)
        buy(t, opt)
    assert MemberStats.objects.get(user=s).is_pioneer
    assert not MemberStats.objects.get(user=t).is_pioneer  # the one slot is taken
    preview = refund_preview(purchase=ps)
    assert preview["pioneer"]["action"] == "withdraw"
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=ps)
    stats = MemberStats.objects.get(user=s)
    assert (stats.is_pioneer, stats.pioneer_since, stats.pioneer_purchase_id) == (False, None, None)
    with django_capture_on_commit_callbacks(execute=True):
        pu = buy(u, opt)
    assert MemberStats.objects.get(user=u).pioneer_purchase_id == pu.pk

    # A pioneer with a second qualifying purchase keeps the status.
    PlanSettings.objects.filter(pk=1).update(pioneer_limit=5)
    v = member()
    with django_capture_on_commit_callbacks(execute=True):
        first, second = buy(v, opt), buy(v, opt)
    assert MemberStats.objects.get(user=v).pioneer_purchase_id == first.pk
    assert refund_preview(purchase=first)["pioneer"] == {"user_id": v.pk, "email": v.email, "action": "keep",
                                                         "other_purchase_id": second.pk}
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=first)
    stats = MemberStats.objects.get(user=v)
    assert stats.is_pioneer and stats.pioneer_purchase_id == second.pk


@pytest.mark.django_db
def test_option_bonus_auto_purchases_are_reversed_net_zero(line, django_capture_on_commit_callbacks):
    d, b, s = line
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("5000", shares=100000))
    grants = {bn.kind: bn.granted_purchase for bn in Bonus.objects.filter(purchase=p, kind__in=["investment",
                                                                                                "referral"])}
    assert grants["referral"].user_id == b.pk and grants["investment"].user_id == s.pk
    active = {u.pk: u.balance_active for u in User.objects.filter(pk__in=[b.pk, s.pk])}
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    for grant in grants.values():
        grant.refresh_from_db()
        assert grant.is_refunded and not grant.is_counted
        rows = LedgerEntry.objects.filter(idempotency_key__startswith=f"purchase:{grant.pk}:")
        assert sorted((r.reason, r.amount) for r in rows) == sorted([
            ("bonus_purchase", grant.price), ("bonus_purchase", -grant.price),
            ("bonus_reversal", grant.price), ("bonus_reversal", -grant.price)])
        assert sum(r.amount for r in rows) == 0
    s.refresh_from_db()
    b.refresh_from_db()
    assert b.balance_active == active[b.pk]
    assert s.balance_active == active[s.pk] + D("5000")  # the price came back
    assert_books_balance()


@pytest.mark.django_db
def test_buy_refund_buy_again_pays_the_investment_bonus_once(root, django_capture_on_commit_callbacks):
    opt = option("1000")  # unit price 0.05
    alone = member()
    with django_capture_on_commit_callbacks(execute=True):
        single = buy(alone, opt)
    expected = Bonus.objects.get(purchase=single, kind="investment").amount
    assert expected == D("50.00")

    s = member()
    with django_capture_on_commit_callbacks(execute=True):
        p1 = buy(s, opt)
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p1)
    with django_capture_on_commit_callbacks(execute=True):
        p2 = buy(s, opt)
    assert Bonus.objects.get(purchase=p2, kind="investment").amount == expected  # not 0 (short), not 100 (twice)
    assert Bonus.objects.get(purchase=p1, kind="investment").status == "reversed"
    t = Purchase.objects.filter(user=s, refunded_at__isnull=True).aggregate(t=Sum("price"))["t"]
    assert t == D("1050.00")
    assert_books_balance()


@pytest.mark.django_db
def test_investment_bonus_after_a_refund_is_computed_from_what_remains(root, django_capture_on_commit_callbacks):
    """E4's member refunds the first purchase and buys it again: the bonuses still standing
    equal T × rate of what remains — neither paid twice nor short."""
    opt = option("1000")
    s = member()
    with django_capture_on_commit_callbacks(execute=True):
        p1 = buy(s, option("1500", shares=30000, project=opt.project))
    with django_capture_on_commit_callbacks(execute=True):
        buy(s, option("4000", shares=80000, project=opt.project))
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p1)
    with django_capture_on_commit_callbacks(execute=True):
        p3 = buy(s, option("1500", shares=30000, project=opt.project))
    # What remains when p3 is processed: 4,000 + 1,500 counted and p2's 482.50 in options
    # (p1 and its 75.00 are gone): T = 5,982.50 → 10% = 598.25 owed in all, 482.50 of it
    # standing, so p3 pays 115.75 — and the standing total is exactly 10% of T.
    assert Bonus.objects.get(purchase=p3, kind="investment").amount == D("115.75")
    standing = Bonus.objects.filter(user=s, kind="investment", status="paid").aggregate(t=Sum("amount"))["t"]
    counted = Purchase.objects.filter(user=s, kind="regular", refunded_at__isnull=True).aggregate(t=Sum("price"))["t"]
    assert counted == D("5500")
    assert standing == D("598.25") == (counted + D("482.50")) * D("0.10")


@pytest.mark.django_db
def test_refund_before_processing_pays_nothing_later(root, django_capture_on_commit_callbacks):
    d = member(rank="director")
    s = member(d)
    p = buy(s, option("1000"))  # committed, but its message is lost (no on_commit run)
    refund = purchase_refund(purchase=p)  # and so is the refund's
    assert purchases_sweep(older_than_minutes=0) == 0  # a refunded purchase is never processed
    assert refunds_sweep(older_than_minutes=0) == 1
    assert not ProcessedRefund.objects.get(refund=refund).was_processed
    assert not purchase_process(purchase_id=p.pk).processed  # a late message pays nothing
    assert not Bonus.objects.filter(purchase=p).exists()
    assert MemberStats.objects.get(user=s).pv == D("0")
    assert refund_preview(purchase=p)["mlm_processed"] is False
    assert_books_balance()


@pytest.mark.django_db
def test_lost_refund_message_is_swept(line):
    d, b, s = line
    p = buy(s, option("1000"))
    purchase_process(purchase_id=p.pk)
    purchase_refund(purchase=p)  # on_commit callbacks never run: the message is lost
    assert Bonus.objects.filter(purchase=p, status="paid").count() == 4
    assert refunds_sweep(older_than_minutes=5) == 0  # too recent
    assert refunds_sweep(older_than_minutes=0) == 1
    assert not Bonus.objects.filter(purchase=p, status="paid").exists()
    assert MemberStats.objects.get(user=d).fv == D("0")
    assert_books_balance()


@pytest.mark.django_db
def test_preview_lists_what_is_taken_back_from_whom(line, django_capture_on_commit_callbacks):
    d, b, s = line
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("1000"))
    preview = refund_preview(purchase=p)
    assert preview["mlm_processed"] and not preview["clawback_done"]
    assert {(v["user_id"], v["volume"]) for v in preview["volumes"]} == {
        (s.pk, "pv"), (s.pk, "monthly_pv"), (b.pk, "fv"), (d.pk, "fv")}
    by_user = {(r["user_id"], r["kind"]): r for r in preview["bonuses"]}
    assert by_user[(b.pk, "differential")]["action"] == "reverse"
    assert by_user[(b.pk, "differential")]["debit"] == D("40.00")
    assert by_user[(s.pk, "investment")]["action"] == "revoke"
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    after = refund_preview(purchase=p)
    assert after["clawback_done"] and {r["action"] for r in after["bonuses"]} == {"none"}


@pytest.mark.django_db
def test_bonus_ledger_check_finds_a_status_that_disagrees(line, django_capture_on_commit_callbacks, capsys):
    from django.core.management.base import CommandError

    d, b, s = line
    with django_capture_on_commit_callbacks(execute=True):
        p = buy(s, option("1000"))
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    assert bonus_ledger_mismatches() == []
    bonus = Bonus.objects.get(purchase=p, user=d)
    Bonus.objects.filter(pk=bonus.pk).update(status="paid")  # reversed in the ledger, "paid" on the row
    problems = bonus_ledger_mismatches()
    assert [(x["bonus_id"], x["problem"]) for x in problems] == [(bonus.pk, "paid but taken back 100.00000000")]
    with pytest.raises(CommandError):
        call_command("check_ledger")
    assert f"bonus {bonus.pk}" in capsys.readouterr().err


@pytest.fixture
def no_receivers():
    """Purchases and refunds commit without their messages (the test runs the work itself)."""
    from mlm.receivers import on_purchase_completed, on_purchase_refunded

    purchase_completed.disconnect(dispatch_uid="mlm.purchase_completed")
    purchase_refunded.disconnect(dispatch_uid="mlm.purchase_refunded")
    yield
    purchase_completed.connect(on_purchase_completed, dispatch_uid="mlm.purchase_completed")
    purchase_refunded.connect(on_purchase_refunded, dispatch_uid="mlm.purchase_refunded")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_refunds_and_two_clawbacks_at_once_take_back_once(no_receivers):
    from accounts.selectors import system_root

    system_root()
    d = member(rank="director")
    b = member(d, rank="builder")
    s = member(b)
    p = buy(s, option("5000", shares=100000))
    purchase_process(purchase_id=p.pk)
    results, errors = run_concurrently(lambda: purchase_refund(purchase=p), 2)
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], ConflictError)
    results, errors = run_concurrently(lambda: purchase_clawback(purchase_id=p.pk).done, 2)
    assert errors == [] and sorted(results) == [False, True]
    assert MemberStats.objects.get(user=d).fv == D("0") and MemberStats.objects.get(user=s).pv == D("0")
    assert LedgerEntry.objects.filter(reason="bonus_reversal", wallet="passive").count() == 2  # B and D
    assert_books_balance()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_clawback_racing_the_processing_ends_with_nothing_paid(no_receivers):
    """A refund committed before mlm processed the purchase; the late processing message and
    the clawback run at once: whichever wins, nothing stays paid and the volumes are zero."""
    from accounts.selectors import system_root

    system_root()
    d = member(rank="director")
    s = member(d)
    p = buy(s, option("1000"))
    refund = purchase_refund(purchase=p)
    calls = [(lambda: purchase_process(purchase_id=p.pk),), (lambda: purchase_clawback(purchase_id=p.pk),)]
    _, errors = run_concurrently(lambda f: f(), calls)
    assert errors == []
    assert ProcessedRefund.objects.filter(refund=refund).exists()
    assert not Bonus.objects.filter(purchase=p, status="paid").exists()
    assert MemberStats.objects.filter(user=d).first() is None or MemberStats.objects.get(user=d).fv == D("0")
    d.refresh_from_db()
    assert d.balance_passive == D("0")
    assert_books_balance()


@pytest.mark.django_db
def test_random_purchases_refunds_and_transfers_keep_the_books(root, django_capture_on_commit_callbacks):
    """A random tree; purchases, refunds (some before processing), passive → active transfers.
    Then: check_ledger passes, bonus statuses agree with the ledger, no balance is negative, and
    the volumes equal a rebuild from the purchases that still count."""
    import random

    rng = random.Random(11)
    ranks = ["start", "start", "builder", "growth", "director"]
    members = []
    for _ in range(25):
        sponsor = rng.choice(members) if members and rng.random() < 0.9 else None
        members.append(member(sponsor, rank=rng.choice(ranks), active=rng.random() < 0.8,
                              pioneer=rng.random() < 0.1))
    opts = [option("250", shares=5000), option("1000"), option("5000", shares=100000)]
    activity = {(m.user_id, m.month): m.pv for m in MonthlyVolume.objects.all()}  # the factory's, not purchases
    purchases = []
    for step in range(70):
        roll = rng.random()
        with django_capture_on_commit_callbacks(execute=True):
            if roll < 0.5 or not purchases:
                purchases.append(buy(rng.choice(members), rng.choice(opts)))
            elif roll < 0.75:
                p = rng.choice(purchases)
                if not Purchase.objects.get(pk=p.pk).is_refunded:
                    purchase_refund(purchase=p)
            else:  # a member with earnings moves them all to the active wallet
                earners = list(User.objects.filter(pk__in=[m.pk for m in members], balance_passive__gt=0))
                if earners:
                    m = rng.choice(earners)
                    wallet_transfer_to_active(user=m, amount=m.balance_passive, idempotency_key=f"t{step}")
    assert Purchase.objects.filter(refunded_at__isnull=False, kind="regular").count() >= 8
    assert User.objects.filter(clawback_debt__gt=0).exists() or DebtEntry.objects.exists()
    assert_books_balance()
    for b in Bonus.objects.filter(purchase__refunded_at__isnull=False):
        assert b.status in ("reversed", "cancelled"), b
    before = {s.user_id: (s.pv, s.fv) for s in MemberStats.objects.all()}
    monthly = {(m.user_id, m.month): m.pv for m in MonthlyVolume.objects.exclude(pv=0)}
    call_command("rebuild_volumes")
    assert before == {s.user_id: (s.pv, s.fv) for s in MemberStats.objects.all()}
    rebuilt = {(m.user_id, m.month): m.pv for m in MonthlyVolume.objects.all()}
    expected = {k: activity.get(k, 0) + rebuilt.get(k, 0) for k in activity.keys() | rebuilt.keys()}
    assert monthly == {k: v for k, v in expected.items() if v}


def _clawback_queries(depth):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.mlm.test_processing import chain

    buyer, _ = chain(depth)
    p = buy(buyer, option("1000"))
    purchase_process(purchase_id=p.pk)
    purchase_refund(purchase=p)  # its message is not delivered: the clawback is run here
    with CaptureQueriesContext(connection) as ctx:
        result = purchase_clawback(purchase_id=p.pk)
    assert result.done and len(result.bonuses) == 4  # 2 differentials, root's share, investment
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_clawback_query_count_is_constant_whatever_the_depth(root):
    shallow, deep = _clawback_queries(5), _clawback_queries(200)
    assert shallow == deep, (shallow, deep)
    assert deep <= 45, deep
    print(f"clawback queries: depth 5 → {shallow}, depth 200 → {deep}")


@pytest.mark.django_db
def test_a_refund_takes_back_a_grace_day_bonus_like_other_option_bonuses(root, django_capture_on_commit_callbacks):
    """§8a's bonus is an options bonus: a refund reverses it and revokes its auto-purchase, and
    the refunded purchase no longer counts for the loyalty streak."""
    from accounts.services import wallet_deposit
    from mlm.selectors import member_summary
    from purchases.services import purchase_create

    s = member(member())
    opt = option("1000")  # unit 0.05
    wallet_deposit(user=s, amount="1000", reference="s-funds")
    with django_capture_on_commit_callbacks(execute=True):
        team_volume_drain()
    before = snapshot()
    p = purchase_create(user=s, option=opt)  # its processing waits for the commit: date it on the Grace Day first
    Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now().replace(day=1, hour=0, minute=0, second=1))
    with django_capture_on_commit_callbacks(execute=True):
        purchase_process(purchase_id=p.pk)
    grace = Bonus.objects.get(purchase=p, kind="grace_day")
    assert (grace.user_id, grace.amount, grace.granted_purchase.shares) == (s.pk, D("50.00"), 1000)
    assert member_summary(user=s)["loyalty_streak"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    grace.refresh_from_db()
    assert grace.status == "reversed" and grace.reversed_at is not None
    assert grace.granted_purchase.refunded_at is not None
    assert Refund.objects.filter(purchase=grace.granted_purchase).exists()
    assert member_summary(user=s)["loyalty_streak"] == 0
    assert snapshot() == before
    assert_books_balance()
