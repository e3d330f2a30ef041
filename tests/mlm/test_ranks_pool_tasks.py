from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.selectors import ledger_mismatches
from mlm.models import Bonus, MemberStats, Notification, ProcessedPurchase, RankHistory
from mlm.services import global_pool_run, purchase_process, purchases_sweep, rank_assign, ranks_update
from purchases.models import Purchase
from tests.mlm.factories import buy, make_active, member, option

pytestmark = pytest.mark.django_db
D = Decimal


def test_beat_schedules_exist_once():
    names = set(PeriodicTask.objects.filter(task__startswith="mlm.").values_list("task", flat=True))
    assert names == {"mlm.ranks_update", "mlm.global_pool_run", "mlm.purchases_sweep", "mlm.team_volume_drain",
                     "mlm.payout_run_due", "mlm.loyalty_streaks_update"}
    daily = PeriodicTask.objects.get(task="mlm.ranks_update")
    assert (daily.crontab.minute, daily.crontab.hour, str(daily.crontab.timezone)) == ("0", "0", "UTC")
    assert PeriodicTask.objects.get(task="mlm.global_pool_run").crontab.day_of_month == "3"
    loyalty = PeriodicTask.objects.get(task="mlm.loyalty_streaks_update").crontab  # daily, so it runs on the 2nd
    assert (loyalty.minute, loyalty.hour, loyalty.day_of_month, str(loyalty.timezone)) == ("5", "0", "*", "UTC")


def test_daily_advancement_skips_levels_and_never_lowers(root):
    m = member(rank="start")
    refs = [member(m) for _ in range(10)]
    MemberStats.objects.filter(user=m).update(pv=D("2500"))
    for r in refs:
        MemberStats.objects.filter(user=r).update(pv=D("7000"))
    assert ranks_update() >= 1
    stats = MemberStats.objects.get(user=m)
    assert stats.rank.code == "growth"  # skipped builder: PV 2,500, TV 10 × min(7,000, 2,500) = 25,000
    h = RankHistory.objects.get(user=m)
    assert (h.old_rank.code, h.new_rank.code, h.reason) == ("start", "growth", "qualified")
    assert Notification.objects.filter(user=m, kind="rank_change").exists()
    rank_assign(user=m, rank_code="director", reason="manual", note="board decision")
    ranks_update()
    assert MemberStats.objects.get(user=m).rank.code == "director"  # never lowered


def test_rank_assign_refuses_unknown_rank_and_root(root):
    from django.core.exceptions import ValidationError

    m = member()
    with pytest.raises(ValidationError):
        rank_assign(user=m, rank_code="emperor")
    with pytest.raises(ValidationError):
        rank_assign(user=root, rank_code="builder")


def test_notification_failure_never_rolls_back_money(root, monkeypatch):
    d = member(rank="director")
    s = member(d)
    p = buy(s, option("1000"))

    def broken(*args, **kwargs):
        raise DatabaseError("notifications table is broken")

    monkeypatch.setattr(Notification.objects, "bulk_create", broken)
    assert purchase_process(purchase_id=p.pk).processed
    assert Bonus.objects.get(purchase=p, kind="differential").amount == D("140.00")
    d.refresh_from_db()
    assert d.balance_passive == D("140.00")
    assert ledger_mismatches() == []


def test_sweeper_processes_lost_purchases(root):
    s = member(member(rank="builder"))
    p = buy(s, option("1000"))
    Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=10))
    assert purchases_sweep(older_than_minutes=5) == 1
    assert ProcessedPurchase.objects.filter(purchase=p).exists()
    assert purchases_sweep(older_than_minutes=5) == 0


def test_pool_qualifiers_need_two_distinct_top_branches_and_activity(root):
    month = datetime(2025, 6, 15, tzinfo=UTC)
    two_branches = []
    for _ in range(3):  # three qualifiers: 1,000 split three ways leaves a cent to the root
        q = member(rank="director", active=False)
        make_active(q, month)
        member(member(q), rank="director", active=False)  # a top deep in branch 1
        member(q, rank="director", active=False)  # a top heading branch 2
        two_branches.append(q)
    one_branch = member(rank="director", active=False)  # two tops, but in the same branch
    make_active(one_branch, month)
    head = member(one_branch, rank="director", active=False)
    member(head, rank="director", active=False)
    inactive = member(rank="director", active=False)  # two branches, not active in the month
    member(inactive, rank="director", active=False)
    member(inactive, rank="director", active=False)

    p = buy(member(), option("50000", shares=1000000))
    Purchase.objects.filter(pk=p.pk).update(created_at=month)

    run = global_pool_run(month=month.date())

    assert run.pool == D("1000.00") and run.qualifiers == 3 and run.share == D("333.33")
    paid = {b.user_id: b.amount for b in Bonus.objects.filter(pool_run=run)}
    assert paid == {**{q.pk: D("333.33") for q in two_branches}, root.pk: D("0.01")}


def test_the_loyalty_schedule_is_seeded_without_wiping_an_operators_edits():
    import importlib

    from django.apps import apps

    task = PeriodicTask.objects.get(task="mlm.loyalty_streaks_update")
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False, description="paused by ops")
    importlib.import_module("mlm.migrations.0008_loyalty_schedule_purchase_preview").seed_loyalty_schedule(apps, None)
    task.refresh_from_db()
    assert (task.enabled, task.description) == (False, "paused by ops")
    assert PeriodicTask.objects.filter(task="mlm.loyalty_streaks_update").count() == 1


def test_the_loyalty_task_stores_streaks_set_based(root, django_assert_max_num_queries):
    from mlm.rules import month_add
    from mlm.tasks import loyalty_streaks_update_task

    opt = option("1000")
    this_month = timezone.now().date().replace(day=1)
    loyal = [member() for _ in range(4)]
    for k in (1, 0):  # last month's and this month's Grace Day
        first = month_add(this_month, -k)
        for m in loyal:
            p = buy(m, opt)
            Purchase.objects.filter(pk=p.pk).update(created_at=datetime(first.year, first.month, 1, 8, tzinfo=UTC))
    lapsed = member()
    MemberStats.objects.filter(user=lapsed).update(loyalty_streak=5)  # no Grace Day purchase any more
    with django_assert_max_num_queries(8):
        assert loyalty_streaks_update_task.delay().get() == 5
    assert dict(MemberStats.objects.filter(user__in=[*loyal, lapsed]).values_list("user_id", "loyalty_streak")) \
        == {**{m.pk: 2 for m in loyal}, lapsed.pk: 0}
