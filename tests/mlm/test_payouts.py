"""Bonus holds and the monthly payout run (money-lifecycle §1)."""

import importlib
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import LedgerEntry, User, Wallet
from accounts.selectors import ledger_mismatches
from mlm import payouts
from mlm.defaults import PAYOUT_SCHEDULE, schedules_seed
from mlm.models import Bonus, Notification, PayoutRun, PlanSettings, month_next, month_start
from mlm.selectors import bonus_ledger_mismatches, member_summary, payable_bonuses, payout_preview
from mlm.services import global_pool_run, payout_run, payout_run_with_status, purchase_process
from mlm.tasks import payout_run_due_task
from purchases.models import Purchase
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.mlm.factories import buy, make_active, member, option

pytestmark = pytest.mark.django_db
D = Decimal


def months_ago(n: int):
    """The first day of the month `n` months before the current (UTC) one."""
    start = month_start(timezone.now())
    for _ in range(n):
        start = month_start(start - timedelta(days=1))
    return start


def next_month():
    return month_next(month_start(timezone.now()))


def mid(month):
    return datetime(month.year, month.month, 15, 12, tzinfo=UTC)


def monthly(day=5):
    PlanSettings.objects.filter(pk=1).update(payout_mode=PlanSettings.PayoutMode.MONTHLY, payout_day=day)


def process(buyer, price="1000", month=None):
    """Buy and process; with `month`, the purchase's bonuses are dated in that month."""
    from django.test import TestCase

    p = buy(buyer, option(price))
    with TestCase.captureOnCommitCallbacks(execute=True):  # notifications are written after the commit
        purchase_process(purchase_id=p.pk)
    if month is not None:
        Bonus.objects.filter(purchase=p).update(created_at=mid(month))
    return p


def credits_of(bonus):
    return LedgerEntry.objects.filter(cause_type=ContentType.objects.get_for_model(Bonus), cause_id=str(bonus.pk))


@pytest.fixture
def e1(root):
    """E1: root ← D (director) ← B (builder) ← S (start). A purchase of 1,000 by S pays B 40, D 100."""
    d = member(rank="director")
    b = member(d, rank="builder")
    s = member(b)
    return d, b, s


# --- holds -------------------------------------------------------------------------------------

def test_monthly_mode_holds_cash_bonuses_and_grants_options_at_once(e1):
    d, b, s = e1
    monthly()
    p = process(s)
    held = {x.user_id: x for x in Bonus.objects.filter(purchase=p, kind="differential")}
    assert {uid: x.amount for uid, x in held.items()} == {b.pk: D("40.00"), d.pk: D("100.00")}
    assert all(x.status == "pending" and x.paid_at is None and x.payout_run is None for x in held.values())
    assert not LedgerEntry.objects.filter(reason=LedgerEntry.Reason.BONUS).exists()
    d.refresh_from_db()
    b.refresh_from_db()
    assert d.balance_passive == b.balance_passive == 0
    investment = Bonus.objects.get(purchase=p, kind="investment")  # options: granted now
    assert investment.status == "paid" and investment.paid_at is not None
    assert Purchase.objects.get(pk=investment.granted_purchase_id).kind == "bonus"
    assert "held until the monthly payout" in Notification.objects.get(user=d, kind="differential").message
    assert bonus_ledger_mismatches() == [] and ledger_mismatches() == []


def test_immediate_mode_credits_at_once_and_a_run_pays_nothing(e1):
    d, b, s = e1
    p = process(s, month=months_ago(1))
    bonus = Bonus.objects.get(purchase=p, user=d)
    assert bonus.status == "paid" and bonus.paid_at is not None and bonus.payout_run is None
    assert list(credits_of(bonus).values_list("idempotency_key", "amount")) == [(bonus.ledger_key, D("100.00"))]
    ledger_rows = LedgerEntry.objects.count()
    run = payout_run(month=months_ago(1))
    assert (run.bonuses, run.total) == (0, 0)
    assert LedgerEntry.objects.count() == ledger_rows
    d.refresh_from_db()
    assert d.balance_passive == D("100.00")


# --- the run -----------------------------------------------------------------------------------

def test_payout_run_pays_each_held_bonus_once_and_leaves_the_next_month(
        e1, django_capture_on_commit_callbacks, mailoutbox):
    d, b, s = e1
    monthly()
    last = months_ago(1)
    paid_purchases = [process(s, month=last), process(s, "500", month=months_ago(3))]  # an old leftover too
    refunded = process(s, month=last)
    Bonus.objects.filter(purchase=refunded, kind="differential").update(status="cancelled")  # refunded before the run
    later = process(s)  # this month: the next run's

    with django_capture_on_commit_callbacks(execute=True):
        run = payout_run(month=last.replace(day=20))

    assert (run.month, run.bonuses, run.total) == (last, 4, D("210.00"))  # 140 + 70
    for bonus in Bonus.objects.filter(purchase__in=paid_purchases, kind__in=Bonus.PASSIVE_KINDS):
        assert (bonus.status, bonus.payout_run_id) == ("paid", run.pk) and bonus.paid_at is not None
        row = credits_of(bonus).get()  # exactly one credit, traceable to its bonus
        assert (row.user_id, row.wallet, row.amount, row.reason, row.idempotency_key) == (
            bonus.user_id, Wallet.PASSIVE, bonus.amount, "bonus", bonus.ledger_key)
        assert row.cause == bonus and f"payout {last:%Y-%m}" in row.description
    assert {x.status for x in Bonus.objects.filter(purchase=later, kind="differential")} == {"pending"}
    for bonus in Bonus.objects.filter(purchase=refunded, kind="differential"):
        assert bonus.status == "cancelled" and not credits_of(bonus).exists()
    d.refresh_from_db()
    b.refresh_from_db()
    assert (d.balance_passive, b.balance_passive) == (D("150.00"), D("60.00"))

    notes = {n.user_id: n for n in Notification.objects.filter(kind="payout")}  # one per member per run
    assert {uid: n.amount for uid, n in notes.items()} == {d.pk: D("150.00"), b.pk: D("60.00")}
    assert "2 held bonuses" in notes[d.pk].message
    assert {m.to[0] for m in mailoutbox if m.subject == "Payout of held bonuses"} == {d.email, b.email}
    call_command("check_ledger")

    # A second run for the month pays nothing and returns the first.
    rows = LedgerEntry.objects.count()
    again, created = payout_run_with_status(month=last)
    assert (again.pk, created) == (run.pk, False)
    assert payout_run(month=last).pk == run.pk
    assert LedgerEntry.objects.count() == rows and PayoutRun.objects.count() == 1


def test_run_refuses_a_month_that_has_not_begun_and_writes_nothing(e1):
    monthly()
    process(e1[2])
    for month in (next_month(), next_month() + timedelta(days=40)):
        with pytest.raises(ValidationError) as exc:
            payout_run(month=month)
        assert exc.value.error_dict["month"][0].code == "month_not_over"
        assert "has not begun" in exc.value.messages[0]
    with pytest.raises(ValidationError) as exc:
        payout_run(month="2025-06")
    assert exc.value.error_dict["month"][0].code == "invalid_month"
    assert not PayoutRun.objects.exists()
    assert set(Bonus.objects.filter(kind="differential").values_list("status", flat=True)) == {"pending"}


def test_global_pool_in_monthly_mode_is_held_then_paid_with_its_month(root):
    monthly()
    last = months_ago(1)
    q = member(rank="director", active=False)  # a qualifier: active, two branches with a top each
    make_active(q, last)
    member(member(q), rank="director", active=False)
    member(q, rank="director", active=False)
    p = buy(member(), option("50000", shares=1000000))
    Purchase.objects.filter(pk=p.pk).update(created_at=mid(last))

    pool = global_pool_run(month=last)  # made now, on the 3rd of the next month in production

    bonus = Bonus.objects.get(pool_run=pool)
    assert (bonus.user_id, bonus.amount, bonus.status) == (q.pk, D("1000.00"), "pending")
    assert not credits_of(bonus).exists()
    run = payout_run(month=last)  # the pool of M belongs to M's payout
    bonus.refresh_from_db()
    q.refresh_from_db()
    assert (run.bonuses, run.total, bonus.status, q.balance_passive) == (1, D("1000.00"), "paid", D("1000.00"))
    assert credits_of(bonus).get().description.startswith(f"Global pool {last:%Y-%m}")


def test_preview_changes_nothing_and_equals_what_the_run_pays(e1, django_assert_max_num_queries):
    d, b, s = e1
    monthly()
    last = months_ago(1)
    process(s, month=last)
    process(s, "2000", month=last)
    process(s)  # this month

    def snapshot():
        return (list(Bonus.objects.order_by("pk").values_list("pk", "status", "paid_at")),
                LedgerEntry.objects.count(), PayoutRun.objects.count(), Notification.objects.count())

    before = snapshot()
    with django_assert_max_num_queries(4):
        preview = payout_preview(month=last)
    assert snapshot() == before

    assert (preview["month"], preview["runnable"], preview["already_run"]) == (last, True, False)
    assert (preview["total"], preview["count"], preview["members"]) == (D("420.00"), 4, 2)
    assert preview["by_kind"] == {"differential": {"amount": D("420.00"), "count": 4}}
    assert [(m["user_id"], m["email"], m["amount"], m["count"]) for m in preview["by_member"]] == [
        (d.pk, d.email, D("300.00"), 2), (b.pk, b.email, D("120.00"), 2)]
    assert payout_preview(month=last, top=1)["by_member"][0]["user_id"] == d.pk

    run = payout_run(month=last)
    paid = {}
    for row in LedgerEntry.objects.filter(reason="bonus", description__contains="payout"):
        paid[row.user_id] = paid.get(row.user_id, 0) + row.amount
    assert (run.total, run.bonuses) == (preview["total"], preview["count"])
    assert paid == {m["user_id"]: m["amount"] for m in preview["by_member"]}

    after = payout_preview(month=last)  # a second run would pay nothing
    assert after["already_run"] and not after["runnable"] and after["total"] == 0 and after["by_member"] == []
    assert after["run"]["id"] == run.pk and after["run"]["total"] == D("420.00")
    current = payout_preview(month=timezone.now().date())  # payable early, with a warning
    assert current["total"] == D("140.00") and current["runnable"] and "not over" in current["warning"]


def test_the_run_costs_the_same_queries_for_few_or_many_bonuses(e1):
    d, b, s = e1
    monthly()
    process(s, month=months_ago(2))
    buyers = [member(b) for _ in range(5)]
    for buyer in buyers:
        process(buyer, month=months_ago(1))
    counts = []
    for month, expected in ((months_ago(2), 2), (months_ago(1), 10)):
        with CaptureQueriesContext(connection) as ctx:
            assert payout_run(month=month).bonuses == expected
        counts.append(len(ctx))
    assert counts[0] == counts[1]


def test_a_held_bonus_already_credited_is_never_credited_twice(e1):
    """The run and immediate mode share the bonus's ledger key: whichever path came first wins."""
    d, b, s = e1
    monthly()
    p = process(s, month=months_ago(1))
    bonus = Bonus.objects.get(purchase=p, user=d)
    from accounts.services import wallet_post

    wallet_post([payouts.bonus_posting(bonus)])  # as if credited once already
    run = payout_run(month=months_ago(1))
    assert credits_of(bonus).count() == 1 and run.bonuses == 2
    d.refresh_from_db()
    assert d.balance_passive == D("100.00")


# --- concurrency (PostgreSQL) --------------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_runs_at_the_same_time_pay_once(e1):
    """Two clicks, a retried run and the beat task for one month, at once."""
    d, b, s = e1
    monthly(day=1)  # the beat task pays the previous month today
    last = months_ago(1)
    for buyer in [s, *[member(b) for _ in range(3)]]:
        process(buyer, month=last)

    def call(who):
        if who == "beat":
            result = payout_run_due_task()  # what a worker runs (eager .get() refuses in a thread)
            return ("beat", result is not None)
        return ("click", payout_run_with_status(month=last)[1])

    results, errors = run_concurrently(call, [("click",), ("click",), ("click",), ("beat",)])

    assert errors == []
    assert sum(created for _, created in results) == 1
    run = PayoutRun.objects.get()
    assert (run.month, run.bonuses, run.total) == (last, 8, D("560.00"))
    for bonus in Bonus.objects.filter(kind="differential"):
        assert bonus.status == "paid" and credits_of(bonus).count() == 1
    d.refresh_from_db()
    assert d.balance_passive == D("400.00")
    assert Notification.objects.filter(kind="payout").count() == 2
    call_command("check_ledger")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_runs_of_overlapping_months_at_the_same_time_pay_each_bonus_once(e1):
    """The run of M also pays older leftovers; runs of M−1 and M at once never pay one twice."""
    d, b, s = e1
    monthly()
    for month in (months_ago(2), months_ago(1)):
        for buyer in [member(b) for _ in range(3)]:
            process(buyer, month=month)
    results, errors = run_concurrently(lambda m: payout_run(month=m), [(months_ago(2),), (months_ago(1),)] * 2)
    assert errors == []
    assert sum(r.total for r in PayoutRun.objects.all()) == D("840.00") and PayoutRun.objects.count() == 2
    for bonus in Bonus.objects.filter(kind="differential"):
        assert bonus.status == "paid" and credits_of(bonus).count() == 1
    call_command("check_ledger")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_bonus_created_while_a_run_is_under_way_is_left_for_the_next_run(e1, monkeypatch):
    d, b, s = e1
    monthly()
    last = months_ago(1)
    process(s, month=last)
    other = member()
    p = buy(other, option("1000"))
    real_post = payouts.wallet_post
    late = []

    def insert_late_bonus():  # another worker commits a held bonus of the month meanwhile
        late.append(Bonus.objects.create(user=other, purchase=p, kind="differential", amount=D("5.00"),
                                         status="pending", created_at=mid(last)))
        connection.close()

    def post_while_another_bonus_arrives(postings):
        if not late:
            t = threading.Thread(target=insert_late_bonus)
            t.start()
            t.join()
        return real_post(postings)

    monkeypatch.setattr(payouts, "wallet_post", post_while_another_bonus_arrives)
    run = payout_run(month=last)

    assert run.bonuses == 2 and run.total == D("140.00")
    late_bonus = Bonus.objects.get(pk=late[0].pk)
    assert late_bonus.status == "pending" and not credits_of(late_bonus).exists()
    assert list(payable_bonuses(month=last)) == [late_bonus]  # the next run's


# --- the beat --------------------------------------------------------------------------------------

def test_beat_pays_the_previous_month_from_payout_day_in_monthly_mode(e1):
    d, b, s = e1
    monthly(day=5)
    process(s, month=months_ago(1))
    this = month_start(timezone.now())
    assert payouts.payout_run_due(today=this.replace(day=4)) is None  # before the payout day
    assert not PayoutRun.objects.exists()
    run = payouts.payout_run_due(today=this.replace(day=5))
    assert run.month == months_ago(1) and run.bonuses == 2 and run.created_by is None
    assert payouts.payout_run_due(today=this.replace(day=5)) is None  # once
    assert payouts.payout_run_due(today=this.replace(day=6)) is None
    assert PayoutRun.objects.count() == 1


def test_beat_catches_up_a_missed_payout_day(e1):
    monthly(day=5)
    process(e1[2], month=months_ago(1))
    run = payouts.payout_run_due(today=month_start(timezone.now()).replace(day=9))
    assert run is not None and run.bonuses == 2


def test_beat_in_immediate_mode_runs_only_for_bonuses_left_held(e1):
    d, b, s = e1
    this = month_start(timezone.now())
    process(s, month=months_ago(1))  # immediate: credited at once
    assert payouts.payout_run_due(today=this.replace(day=5)) is None
    assert not PayoutRun.objects.exists()
    monthly()
    process(s, month=months_ago(1))  # held, then the operator switches back to immediate
    PlanSettings.objects.filter(pk=1).update(payout_mode=PlanSettings.PayoutMode.IMMEDIATE)
    run = payouts.payout_run_due(today=this.replace(day=5))
    assert run is not None and run.bonuses == 2
    assert not Bonus.objects.filter(status="pending").exists()


def test_beat_task_is_seeded_once_and_operators_edits_survive(e1):
    task = PeriodicTask.objects.get(task="mlm.payout_run_due")
    assert task.name == PAYOUT_SCHEDULE and task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month, str(task.crontab.timezone)) == (
        "30", "0", "*", "UTC")
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False, description="paused by ops")
    schedules_seed(apps)
    assert PeriodicTask.objects.filter(task="mlm.payout_run_due").count() == 1
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    # The migration that adds the schedule brings back only its own row.
    PeriodicTask.objects.filter(task__in=["mlm.payout_run_due", "mlm.ranks_update"]).delete()
    importlib.import_module("mlm.migrations.0005_payouts").seed_payout_schedule(apps, None)
    assert PeriodicTask.objects.filter(task="mlm.payout_run_due").exists()
    assert not PeriodicTask.objects.filter(task="mlm.ranks_update").exists()


def test_beat_task_is_idempotent(e1):
    monthly(day=1)
    process(e1[2], month=months_ago(1))
    first = payout_run_due_task.delay().get()
    assert first == PayoutRun.objects.get().pk
    assert payout_run_due_task.delay().get() is None  # a second beat, a retried task
    assert PayoutRun.objects.count() == 1 and not Bonus.objects.filter(status="pending").exists()


# --- summary, bonus list, ledger check ------------------------------------------------------------

def test_summary_shows_pending_paid_reversed_and_debt(e1, member_client):
    d, b, s = e1
    monthly()
    process(s, month=months_ago(1))
    summary = member_summary(user=d)
    assert (summary["bonuses_pending"], summary["bonuses_paid"], summary["bonuses_reversed"]) == (
        D("100.00"), 0, 0)
    payout_run(month=months_ago(1))
    process(s)
    Bonus.objects.filter(user=d, status="paid").update(status="reversed")  # as a refund would
    User.objects.filter(pk=d.pk).update(clawback_debt=D("12.50"))
    process(s, month=months_ago(1))
    summary = member_summary(user=d)
    assert (summary["bonuses_pending"], summary["bonuses_paid"], summary["bonuses_reversed"],
            summary["clawback_debt"]) == (D("200.00"), 0, D("100.00"), D("12.50"))
    body = member_client(d).get("/api/mlm/me/summary/").json()
    assert (D(body["bonuses_pending"]), D(body["bonuses_paid"]), D(body["bonuses_reversed"]),
            D(body["clawback_debt"])) == (D("200"), 0, D("100"), D("12.5"))
    investment = member_summary(user=s)  # options are not cash: not in these totals
    assert investment["bonuses_paid"] == 0 and Bonus.objects.filter(user=s, kind="investment").exists()


def test_bonus_list_shows_status_and_filters_by_it(e1, member_client):
    d, b, s = e1
    monthly()
    process(s, month=months_ago(1))
    payout_run(month=months_ago(1))
    process(s)
    c = member_client(d)
    rows = c.get("/api/mlm/me/bonuses/").json()["results"]
    assert sorted(r["status"] for r in rows) == ["paid", "pending"]
    paid = c.get("/api/mlm/me/bonuses/?status=paid").json()
    assert paid["count"] == 1 and paid["results"][0]["payout_run"] == PayoutRun.objects.get().pk
    assert paid["results"][0]["paid_at"] is not None
    assert c.get("/api/mlm/me/bonuses/?status=pending").json()["count"] == 1
    assert c.get("/api/mlm/me/bonuses/?status=nope").status_code == 400


def test_ledger_check_finds_bonus_statuses_that_disagree_with_the_ledger(e1):
    d, b, s = e1
    monthly()
    p = process(s, month=months_ago(1))
    held = Bonus.objects.get(purchase=p, user=d)
    from accounts.services import wallet_post

    wallet_post([payouts.bonus_posting(held)])  # credited, but still marked pending
    unpaid = Bonus.objects.get(purchase=p, user=b)
    Bonus.objects.filter(pk=unpaid.pk).update(status="paid")  # marked paid, never credited
    problems = {(x["bonus_id"], x["problem"]) for x in bonus_ledger_mismatches()}
    assert problems == {(held.pk, "pending but credited 100.00000000"), (unpaid.pk, "paid but credited 0")}
    assert ledger_mismatches() == []  # the balances themselves agree with the ledger
    with pytest.raises(CommandError, match="2 bonus"):
        call_command("check_ledger")


# --- admin and API ---------------------------------------------------------------------------------

@pytest.fixture
def operator(db):
    return UserFactory(email="op-payouts@example.com", is_staff=True, is_superuser=True)


def test_admin_payouts_page_previews_and_pays(e1, client, operator):
    d, b, s = e1
    monthly()
    last = months_ago(1)
    process(s, month=last)
    client.force_login(operator)
    assert "Payouts: preview and pay a month" in client.get("/admin/mlm/payoutrun/").content.decode()

    page = client.get(f"/admin/mlm/payoutrun/pay/?month={last:%Y-%m}")
    html = page.content.decode()
    assert page.status_code == 200 and d.email in html and "140.00" in html and "Pay now" in html
    assert not PayoutRun.objects.exists() and not LedgerEntry.objects.filter(reason="bonus").exists()
    assert client.get("/admin/mlm/payoutrun/pay/").status_code == 200  # defaults to the previous month
    assert "YYYY-MM" in client.get("/admin/mlm/payoutrun/pay/?month=2025-13").content.decode()

    r = client.post("/admin/mlm/payoutrun/pay/", {"month": f"{last:%Y-%m}"}, follow=True)
    assert "Paid 2 held bonus(es)" in r.content.decode()
    run = PayoutRun.objects.get()
    assert run.created_by == operator and run.total == D("140.00")
    r = client.post("/admin/mlm/payoutrun/pay/", {"month": f"{last:%Y-%m}"}, follow=True)
    assert "already paid out" in r.content.decode() and PayoutRun.objects.count() == 1
    r = client.post("/admin/mlm/payoutrun/pay/", {"month": f"{next_month():%Y-%m}"}, follow=True)
    assert "has not begun" in r.content.decode() and PayoutRun.objects.count() == 1

    for url in ("/admin/mlm/payoutrun/", f"/admin/mlm/payoutrun/{run.pk}/change/", "/admin/mlm/bonus/?status=paid",
                f"/admin/mlm/bonus/?payout_run__id__exact={run.pk}", "/admin/mlm/plansettings/"):
        assert client.get(url).status_code == 200, url
    assert "payout_mode" in client.get("/admin/mlm/plansettings/1/change/").content.decode()


def test_admin_plan_settings_refuse_a_payout_day_beyond_28(client, operator):
    client.force_login(operator)
    form = client.get("/admin/mlm/plansettings/1/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "id"}
    data.update(payout_mode="monthly", payout_day=29)
    r = client.post("/admin/mlm/plansettings/1/change/", data)
    assert r.status_code == 200 and "payout_day" in r.context["adminform"].form.errors
    data["payout_day"] = 10
    assert client.post("/admin/mlm/plansettings/1/change/", data).status_code == 302
    assert (PlanSettings.load().payout_mode, PlanSettings.load().payout_day) == ("monthly", 10)


def test_admin_payouts_need_permission(e1, client):
    staff = UserFactory(email="viewer@example.com", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/mlm/payoutrun/pay/").status_code == 403
    assert client.post("/admin/mlm/payoutrun/pay/", {"month": f"{months_ago(1):%Y-%m}"}).status_code == 403
    assert not PayoutRun.objects.exists()


def test_payouts_api_for_staff(e1, member_client, operator):
    d, b, s = e1
    monthly()
    last = months_ago(1)
    process(s, month=last)
    staff = member_client(operator)
    assert member_client(d).get(f"/api/mlm/payouts/preview/?month={last:%Y-%m}").status_code == 403
    assert member_client(d).post("/api/mlm/payouts/run/", {"month": f"{last:%Y-%m}"}).status_code == 403

    r = staff.get(f"/api/mlm/payouts/preview/?month={last:%Y-%m}")
    body = r.json()
    assert r.status_code == 200 and D(body["total"]) == D("140") and body["count"] == 2
    assert body["month"] == f"{last:%Y-%m}" and body["runnable"] is True and body["run"] is None
    assert [(m["email"], D(m["amount"])) for m in body["by_member"]] == [(d.email, D("100")), (b.email, D("40"))]
    assert D(body["by_kind"]["differential"]["amount"]) == D("140")
    for bad in ("2025-13", "2025-00", "0000-01", "june"):
        r = staff.get(f"/api/mlm/payouts/preview/?month={bad}")
        assert r.status_code == 400 and "YYYY-MM" in r.json()["message"], bad

    r = staff.post("/api/mlm/payouts/run/", {"month": f"{last:%Y-%m}"}, format="json")
    assert r.status_code == 201 and r.json()["month"] == f"{last:%Y-%m}" and r.json()["bonuses"] == 2
    assert D(r.json()["total"]) == D("140") and r.json()["created_by"] == operator.pk
    r = staff.post("/api/mlm/payouts/run/", {"month": f"{last:%Y-%m}"}, format="json")
    assert r.status_code == 409 and "already paid out" in r.json()["message"]
    r = staff.post("/api/mlm/payouts/run/", {"month": f"{next_month():%Y-%m}"}, format="json")
    assert r.status_code == 400 and "has not begun" in r.json()["message"]
    assert staff.post("/api/mlm/payouts/run/", {}, format="json").status_code == 400

    runs = staff.get("/api/mlm/payouts/").json()
    assert runs["count"] == 1 and runs["results"][0]["month"] == f"{last:%Y-%m}"
    after = staff.get(f"/api/mlm/payouts/preview/?month={last:%Y-%m}").json()
    assert after["already_run"] is True and after["run"]["bonuses"] == 2 and D(after["total"]) == 0


def test_the_current_month_can_be_paid_early_and_what_it_earns_later_waits(e1):
    """The spec's run for month M pays the bonuses held for M; an operator may run it before M
    ends. What M earns after that run is left pending for the next month's run."""
    d, b, s = e1
    monthly()
    process(s)
    run = payout_run(month=timezone.now().date())
    assert (run.bonuses, run.total) == (2, D("140.00"))
    assert set(Bonus.objects.filter(kind="differential").values_list("status", flat=True)) == {"paid"}
    later = process(s)
    assert set(Bonus.objects.filter(purchase=later, kind="differential").values_list("status", flat=True)) == {
        "pending"}
    assert payout_run(month=timezone.now().date()).pk == run.pk  # one run per month: pays nothing now
    assert Bonus.objects.filter(purchase=later, status="pending").count() == 2
    assert set(payable_bonuses(month=next_month()).values_list("purchase_id", flat=True)) == {later.pk}
    call_command("check_ledger")
