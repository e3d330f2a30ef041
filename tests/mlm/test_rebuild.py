"""`rebuild_volumes` (mlm.rebuild): the rebuild equals incremental processing, on PostgreSQL's
set-based SQL and on the Python method (SQLite's), for every member and month."""

import random
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, transaction

from common.errors import ConflictError
from mlm.models import MemberStats, MonthlyVolume, ProcessedPurchase
from mlm.rebuild import rank_caps, rebuild_lock, volumes_rebuild
from mlm.selectors import plan_load
from mlm.services import purchase_process, team_volumes_recalculate
from purchases.models import Purchase
from purchases.services import purchase_refund
from tests.mlm.factories import buy, member, option

STATS_FIELDS = ("pv", "fv", "tv", "max_branch", "cap", "next_rank_id", "gap")
METHODS = ["sql", "python"] if connection.vendor == "postgresql" else ["python"]
PHASES = ["lock", "stats rows", "monthly PV", "tree", "FV/TV by level", "write stats", "write monthly", "fv_path",
          "commit"]


def stats_now():
    return {s["user_id"]: tuple(s[f] for f in STATS_FIELDS)
            for s in MemberStats.objects.values("user_id", *STATS_FIELDS)}


def monthly_now():
    return {(m.user_id, m.month): m.pv for m in MonthlyVolume.objects.exclude(pv=0)}


def scramble(rng, users):
    """Wrong volumes everywhere, a stats row missing, a stale monthly row: what a rebuild repairs."""
    MemberStats.objects.update(pv=D("7"), fv=D("0"), tv=D("1"), max_branch=D("3"), cap=D("0"), gap=D("9"),
                               next_rank=None)
    plain = MemberStats.objects.filter(user__in=users, rank__code="start", is_pioneer=False, loyalty_streak=0)
    plain.filter(user_id=rng.choice(list(plain.values_list("user_id", flat=True)))).delete()  # inserted again
    MonthlyVolume.objects.update_or_create(user=rng.choice(users), month=datetime(2001, 1, 1).date(),
                                           defaults={"pv": D("123")})


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [3, 17])
def test_rebuild_equals_incremental_processing_on_a_random_network(root, seed, django_capture_on_commit_callbacks):
    """Purchases over several months, processed one by one, some refunded (before and after
    processing), bonus auto-purchases granted along the way; TV recalculated by the service.
    Every member's PV, FV, TV, largest branch, cap, next rank and gap, and every monthly PV,
    equal a rebuild from scratch — by each method — and ranks do not change."""
    rng = random.Random(seed)
    ranks = ["start", "start", "start", "builder", "growth", "leadership", "director"]
    members = []
    for _ in range(45):
        sponsor = rng.choice(members) if members and rng.random() < 0.92 else None
        members.append(member(sponsor, rank=rng.choice(ranks), active=False, pioneer=rng.random() < 0.05))
    opts = [option("50", shares=1000), option("1000"), option("5000", shares=100000), option("250", shares=5000)]
    months = [datetime(2025, m, d, 12, tzinfo=UTC) for m, d in ((1, 31), (2, 1), (2, 14), (3, 31), (4, 1))]
    purchases = []
    for _ in range(80):
        p = buy(rng.choice(members), rng.choice(opts), packs=rng.randint(1, 3))
        Purchase.objects.filter(pk=p.pk).update(created_at=rng.choice(months))
        if rng.random() < 0.1:  # refunded before it was processed: never counted
            with django_capture_on_commit_callbacks(execute=True):
                purchase_refund(purchase=p)
        else:
            purchase_process(purchase_id=p.pk)
        purchases.append(p)
    for p in rng.sample(purchases, 10):  # refunded after processing: taken back
        if not Purchase.objects.get(pk=p.pk).is_refunded:
            with django_capture_on_commit_callbacks(execute=True):
                purchase_refund(purchase=p)
    assert Purchase.objects.filter(kind="bonus", refunded_at__isnull=True).exists()  # they must not count
    assert Purchase.objects.filter(kind="regular", refunded_at__isnull=False).count() >= 8
    team_volumes_recalculate(user_ids=[m.pk for m in members])
    expected, expected_monthly = stats_now(), monthly_now()
    ranks_before = dict(MemberStats.objects.values_list("user_id", "rank_id"))
    assert len({v[2] for v in expected.values()}) > 5  # the network is not trivial: many TVs
    assert len({k[1] for k in expected_monthly}) == 4

    for method in METHODS:
        scramble(rng, members)
        result = volumes_rebuild(method=method)
        assert stats_now() == expected, method
        assert monthly_now() == expected_monthly, method
        assert dict(MemberStats.objects.values_list("user_id", "rank_id")) == ranks_before
        assert result["members"] == len(members)
        assert result["purchases"] == Purchase.objects.filter(kind="regular", refunded_at__isnull=True).count()
        assert result["monthly_rows"] == len(expected_monthly)
        assert list(result["timings"]) == PHASES
    # A rebuild that finds everything right changes nothing.
    volumes_rebuild()
    assert stats_now() == expected


@pytest.mark.django_db
def test_rebuild_on_the_deepest_line_allowed(root):
    """FV and TV along the deepest line the path index takes (383 levels below the root, paths
    of 2,688 characters), by each method."""
    from accounts.models import LINE_MAX_LEVELS

    depth = LINE_MAX_LEVELS - 1
    mid = depth // 2
    chain = []
    sponsor = None
    for _ in range(depth):
        sponsor = member(sponsor, active=False)
        chain.append(sponsor)
    assert chain[-1].depth == depth
    buy(chain[-1], option("1000"))
    buy(chain[mid], option("500", shares=1000), packs=3)
    plan = plan_load()
    cap = plan_load().ranks[1].tv_required * plan.settings.branch_cap  # start's cap: half of builder's TV
    for method in METHODS:
        MemberStats.objects.update(pv=0, fv=0, tv=0)
        result = volumes_rebuild(method=method)
        assert result["levels"] == depth
        stats = {s.user_id: s for s in MemberStats.objects.all()}
        for i, m in enumerate(chain):  # m is at depth i + 1
            below = (D("1000") if i < depth - 1 else 0) + (D("1500") if i < mid else 0)
            s = stats[m.pk]
            assert (s.fv, s.pv) == (below, {depth - 1: D("1000"), mid: D("1500")}.get(i, 0)), (method, i)
            branch = below  # one direct referral: the whole downline is one branch
            assert (s.tv, s.max_branch, s.cap) == (min(branch, cap), branch, cap), (method, i)
            assert s.gap == plan.ranks[1].tv_required - s.tv


@pytest.mark.django_db
def test_rebuild_resets_fv_paths_to_the_tree_now(root):
    a = member()
    b = member(a)
    p = buy(b, option("1000"))
    purchase_process(purchase_id=p.pk)
    ProcessedPurchase.objects.filter(pk=p.pk).update(fv_path="stale")
    volumes_rebuild()
    assert ProcessedPurchase.objects.get(pk=p.pk).fv_path == ""  # = the buyer's path now


@pytest.mark.django_db
def test_the_caps_come_from_the_rules(root):
    plan = plan_load()
    ranks = plan.ranks
    caps = {rank_id: (cap, nxt) for rank_id, cap, nxt, _ in rank_caps(plan)}
    assert caps[ranks[0].pk] == (ranks[1].tv_required * plan.settings.branch_cap, ranks[1].pk)
    assert caps[ranks[-1].pk] == (ranks[-1].tv_required * plan.settings.branch_cap, None)


@pytest.mark.django_db
def test_the_command_prints_each_phase_the_total_and_peak_memory(root):
    a = member()
    buy(member(a), option("1000"))
    out = StringIO()
    call_command("rebuild_volumes", stdout=out)
    text = out.getvalue()
    for phase in PHASES:
        assert f"  {phase}: " in text
    assert "Rebuilt the volumes of 2 members (1 counted purchases" in text
    assert " s total; peak memory " in text
    assert MemberStats.objects.get(user=a).fv == D("1000")


@pytest.mark.django_db
def test_unknown_method_is_refused(root):
    with pytest.raises(Exception) as exc:
        volumes_rebuild(method="magic")
    assert exc.value.error_dict["method"][0].code == "unknown_method"


class _HeldRebuild:
    """Another connection holds the rebuild's locks (a rebuild under way) until `release()`."""

    def __init__(self):
        self.held, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            with transaction.atomic(), connection.cursor() as cur:
                rebuild_lock(cur)
                self.held.set()
                self.released.wait(10)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        assert self.held.wait(10)
        return self

    def release(self):
        self.released.set()
        self.thread.join(10)

    def __exit__(self, *exc):
        self.release()


@pytest.fixture
def no_receiver():
    """Purchases commit without being processed (the test processes them itself)."""
    from mlm.receivers import on_purchase_completed
    from purchases.signals import purchase_completed

    purchase_completed.disconnect(dispatch_uid="mlm.purchase_completed")
    yield
    purchase_completed.connect(on_purchase_completed, dispatch_uid="mlm.purchase_completed")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_rebuild_is_refused_or_waits_and_processing_waits(root, no_receiver):
    a = member()
    b = member(a)
    p = buy(b, option("1000"))
    with _HeldRebuild() as held:
        with pytest.raises(ConflictError) as exc:
            volumes_rebuild(wait=False)
        assert exc.value.code == "rebuild_running"
        with pytest.raises(CommandError, match="Another volume rebuild is running"):
            call_command("rebuild_volumes", "--no-wait", stdout=StringIO())

        # Processing waits for the rebuild (here: gives up after 300 ms), and writes nothing.
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SET LOCAL lock_timeout = '300ms'")
            purchase_process(purchase_id=p.pk)
        assert not ProcessedPurchase.objects.filter(pk=p.pk).exists()

        # A waiting rebuild runs when the first one is done.
        finished = []

        def second():
            try:
                finished.append(volumes_rebuild(wait=True))
            finally:
                connection.close()

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not finished
        held.release()
        waiter.join(30)
        assert finished and finished[0]["purchases"] == 1
    assert MemberStats.objects.get(user=a).fv == D("1000")
    assert MemberStats.objects.get(user=b).pv == D("1000")
