from decimal import Decimal

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.selectors import ledger_mismatches
from mlm.models import Bonus, MemberStats, Notification, ProcessedPurchase, RankHistory
from mlm.services import purchase_process, purchases_sweep, rank_assign, ranks_update
from purchases.models import Purchase
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db
D = Decimal


def test_beat_schedules_exist_once():
    names = set(PeriodicTask.objects.filter(task__startswith="mlm.").values_list("task", flat=True))
    assert names == {"mlm.ranks_update", "mlm.global_pool_run", "mlm.purchases_sweep", "mlm.team_volume_drain"}
    daily = PeriodicTask.objects.get(task="mlm.ranks_update")
    assert (daily.crontab.minute, daily.crontab.hour, str(daily.crontab.timezone)) == ("0", "0", "UTC")
    assert PeriodicTask.objects.get(task="mlm.global_pool_run").crontab.day_of_month == "3"


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
