"""Writes of the mlm app: processing purchases, team volumes, ranks, the global pool
(processing itself is `mlm.engine` around the pure rules of `mlm.rules`; bonus holds and the
monthly payout run are in `mlm.payouts`, re-exported here).

`purchase_process` is a batch of one; `purchase_process_many` takes batches; both run
`mlm.engine.process_batch` (a constant number of statements whatever the depth or the batch
size, exactly once per purchase by its processed marker).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import PATH_STEP, User
from common.errors import field_error
from common.money import ZERO
from common.text import text_clean
from mlm import engine, rules, selectors
from mlm.engine import team_volume_enqueue  # noqa: F401 - a public name of this module
from mlm.models import (
    Bonus,
    MemberStats,
    MonthlyVolume,
    Notification,
    PoolRun,
    Rank,
    RankHistory,
    TeamVolumeQueue,
    month_next,
    month_start,
)
from mlm.payouts import bonuses_create, payout_run, payout_run_with_status  # noqa: F401 - the service API
from mlm.rebuild import volumes_rebuild  # noqa: F401 - the service API (set-based, in mlm.rebuild)
from mlm.selectors import Plan, plan_load
from purchases.models import Purchase

logger = logging.getLogger(__name__)


@dataclass
class ProcessResult:
    purchase_id: int
    processed: bool  # False: already processed (nothing created) or not a counted purchase
    bonuses: list[Bonus] = field(default_factory=list)


# --- helpers ---------------------------------------------------------------------------------

_STATS = MemberStats._meta.db_table


def _stats_ensure(user_ids, plan: Plan) -> None:
    """Create the missing stats rows (one INSERT … ON CONFLICT DO NOTHING, as processing does)."""
    ids = sorted(set(user_ids))
    if ids:
        engine.stats_insert(ids, plan.lowest.pk)


# --- processing purchases (§5, §11) ---------------------------------------------------------

PROCESS_BATCH = 500  # purchases per transaction in purchase_process_many (measured: 500 ≈ 2× 100 end to end)
PENDING_WINDOW = 2_000  # how far back (in ids) a purchase's task looks for others still waiting (older: the sweeper)


def purchase_process(*, purchase_id: int) -> ProcessResult:
    """Process a counted purchase exactly once (§5): a batch of one (`mlm.engine`).

    A second call (a retried task, a duplicated message, an operator's reprocess) creates
    nothing and returns `processed=False`; so does a bonus auto-purchase or a refunded one.
    """
    claimed, bonuses = engine.process_batch([purchase_id])
    if not claimed and not Purchase.objects.filter(pk=purchase_id).exists():
        raise field_error("purchase_id", f"Unknown purchase {purchase_id}.", code="unknown_purchase")
    return ProcessResult(purchase_id, bool(claimed), bonuses)


def purchase_process_many(*, purchase_ids) -> int:
    """Process purchases in batches (§11): the same result, bonus for bonus, as one by one in
    id order; each still exactly once. Returns how many were processed now."""
    ids = sorted({int(i) for i in purchase_ids})
    done = 0
    for i in range(0, len(ids), PROCESS_BATCH):
        done += len(engine.process_batch(ids[i:i + PROCESS_BATCH])[0])
    return done


def purchases_pending(*, up_to: int | None = None, older_than=None, limit: int = PROCESS_BATCH) -> list[int]:
    """Counted, unrefunded purchases not processed yet, oldest first (a bounded scan)."""
    qs = (Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS, refunded_at__isnull=True,
                                  mlm_processed__isnull=True).exclude(user__is_system_root=True))
    if up_to is not None:
        qs = qs.filter(id__lte=up_to, id__gt=up_to - PENDING_WINDOW)
    if older_than is not None:
        qs = qs.filter(created_at__lt=older_than)
    return list(qs.order_by("id").values_list("id", flat=True)[:limit])


def purchase_process_pending(*, purchase_id: int) -> int:
    """What the task for a new purchase runs: that purchase and the ones still waiting before it,
    as one batch — so a burst of purchases is processed in a few transactions, in id order, and
    the tasks of the others then find nothing left to do."""
    ids = set(purchases_pending(up_to=purchase_id))
    ids.add(purchase_id)
    return purchase_process_many(purchase_ids=ids)


def purchases_sweep(*, older_than_minutes: int = 5, limit: int = 500) -> int:
    """Process counted purchases that have no processed marker after some minutes (a lost
    message), in batches. Returns how many were processed now."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = purchases_pending(older_than=cutoff, limit=limit)
    done = 0
    for i in range(0, len(ids), PROCESS_BATCH):
        try:
            done += purchase_process_many(purchase_ids=ids[i:i + PROCESS_BATCH])
        except Exception:  # one bad batch must not stop the sweep; it is logged and retried next time
            logger.exception("mlm: sweeping purchases %s…%s failed", ids[i], ids[min(i + PROCESS_BATCH, len(ids)) - 1])
    return done


# --- team volume -----------------------------------------------------------------------------

def team_volumes_recalculate(*, user_ids, plan: Plan | None = None) -> int:
    """TV (Σ min(branch, cap)), largest branch, cap, next rank and gap for `user_ids`.

    Set-based: one query for the members (locked in pk order), one for all their direct
    referrals' volumes, one bulk UPDATE.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    plan = plan or plan_load()
    now = timezone.now()
    with transaction.atomic():
        rows = list(MemberStats.objects.select_for_update().filter(user_id__in=ids).order_by("user_id"))
        branches: dict[int, list[Decimal]] = defaultdict(list)
        for sponsor_id, pv, fv in (MemberStats.objects.filter(user__sponsor_id__in=[r.user_id for r in rows])
                                   .values_list("user__sponsor_id", "pv", "fv")):
            branches[sponsor_id].append(pv + fv)
        for s in rows:
            team = rules.team_volume(plan.rules, plan.rules.rank(s.rank_id), branches.get(s.user_id, []))
            s.tv, s.max_branch, s.cap, s.gap = team.tv, team.max_branch, team.cap, team.gap
            s.next_rank_id = team.next_rank.id if team.next_rank else None
            s.tv_updated_at = now
        _stats_tv_write(rows, now)
    return len(rows)


def _stats_tv_write(rows: list[MemberStats], now) -> None:
    """One UPDATE … FROM (VALUES …) per 1,000 rows on PostgreSQL (Django's bulk_update spends
    its time building CASE expressions in Python); bulk_update elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        MemberStats.objects.bulk_update(rows, ["tv", "max_branch", "cap", "next_rank", "gap", "tv_updated_at"],
                                        batch_size=100)
        return
    with connection.cursor() as cur:
        for i in range(0, len(rows), 1000):
            batch = rows[i:i + 1000]
            values = ", ".join(["(%s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::bigint, %s::numeric)"]
                               * len(batch))
            params = [now]
            for r in batch:
                params += [r.user_id, r.tv, r.max_branch, r.cap, r.next_rank_id, r.gap]
            cur.execute(f"UPDATE {_STATS} AS m SET tv_updated_at = %s, tv = v.tv, max_branch = v.mb, "
                        "cap = v.cap, next_rank_id = v.nr, gap = v.gap "
                        f"FROM (VALUES {values}) AS v(user_id, tv, mb, cap, nr, gap) WHERE m.user_id = v.user_id",
                        params)


def team_volume_recalculate(*, user: User) -> MemberStats | None:
    """What the queued task runs for one member. None for the root."""
    if user.is_system_root:
        return None
    plan = plan_load()
    _stats_ensure([user.pk], plan)
    team_volumes_recalculate(user_ids=[user.pk], plan=plan)
    return MemberStats.objects.get(user_id=user.pk)


def team_volume_drain(*, batch: int = 500) -> int:
    """Recalculate the queued members. Each batch is claimed (deleted, skipping rows another
    worker holds) in its own short transaction, so a purchase queueing a member meanwhile
    queues it again rather than being lost."""
    plan = plan_load()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(TeamVolumeQueue.objects.select_for_update(skip_locked=True).order_by("user_id")
                       .values_list("user_id", flat=True)[:batch])
            if not ids:
                break
            TeamVolumeQueue.objects.filter(user_id__in=ids).delete()
        total += team_volumes_recalculate(user_ids=ids, plan=plan)
    return total


# --- ranks -----------------------------------------------------------------------------------

def _rank_change(stats: MemberStats, new_rank: Rank, *, reason: str, note: str = "",
                 created_by: User | None = None, plan: Plan) -> RankHistory:
    old_id = stats.rank_id
    stats.rank = new_rank
    MemberStats.objects.filter(user_id=stats.user_id).update(rank=new_rank)
    history = RankHistory.objects.create(user_id=stats.user_id, old_rank_id=old_id, new_rank=new_rank,
                                         reason=reason, note=note[:255], created_by=created_by)
    old_name = plan.rank(old_id).name if old_id else "—"
    engine.notifications_save([Notification(user_id=stats.user_id, kind=Notification.RANK_CHANGE,
                                      rank_history=history,
                                      message=f"Your rank changed from {old_name} to {new_rank.name}.")])
    return history


def rank_assign(*, user: User, rank_code: str, reason: str = "manual", created_by: User | None = None,
                note: str = "") -> RankHistory | None:
    """Set a member's rank by hand. `reason` is `manual` (default) or `qualified`; any other
    text is kept as the note of a manual change. Returns the history row (None: no change)."""
    if user.is_system_root:
        raise field_error("user", "The system root is never ranked.", code="system_root")
    if reason not in RankHistory.Reason.values:
        note, reason = (note or reason), RankHistory.Reason.MANUAL
    note = text_clean(note, field="note", multiline=True)
    plan = plan_load()
    new_rank = next((r for r in plan.ranks if r.code == rank_code), None)
    if new_rank is None:
        raise field_error("rank_code", f"Unknown rank {rank_code!r}.", code="unknown_rank")
    with transaction.atomic():
        _stats_ensure([user.pk], plan)
        stats = MemberStats.objects.select_for_update().get(user_id=user.pk)
        if plan.rank(stats.rank_id).pk == new_rank.pk and stats.rank_id is not None:
            return None
        history = _rank_change(stats, new_rank, reason=reason, note=note, created_by=created_by, plan=plan)
        team_volumes_recalculate(user_ids=[user.pk], plan=plan)  # the cap follows the next rank
    return history


def ranks_update(*, today: date | None = None, chunk: int = 1000) -> int:
    """The daily advancement (§4, `rules.rank_earned`): members active this month get the highest
    rank above their own whose every requirement holds. Never lowers a rank. Returns how many
    changed."""
    plan = plan_load()
    month = month_start(today or timezone.now())
    active_ids = sorted(selectors.active_member_ids(plan, month=month))
    changed = 0
    for i in range(0, len(active_ids), chunk):
        ids = active_ids[i:i + chunk]
        _stats_ensure(ids, plan)
        team_volumes_recalculate(user_ids=ids, plan=plan)
        partners = Counter(sponsor_id for sponsor_id, pv in
                           MonthlyVolume.objects.filter(month=month, user__sponsor_id__in=ids)
                           .values_list("user__sponsor_id", "pv") if plan.rules.is_active(pv))
        changed_here = 0
        with transaction.atomic():
            for s in MemberStats.objects.select_for_update().filter(user_id__in=ids).order_by("user_id"):
                best = rules.rank_earned(plan.rules, plan.rules.rank(s.rank_id), pv=s.pv, tv=s.tv,
                                         active_partners=partners[s.user_id], is_active=True)
                if best is not None:
                    _rank_change(s, plan.by_id[best.id], reason=RankHistory.Reason.QUALIFIED, plan=plan)
                    changed_here += 1
            if changed_here:
                team_volumes_recalculate(user_ids=ids, plan=plan)  # the caps follow the new ranks
        changed += changed_here
    return changed


# --- the loyalty streak (§8a) ---------------------------------------------------------------

def loyalty_streaks_update(*, today: date | None = None) -> int:
    """Store every member's loyalty streak (`MemberStats.loyalty_streak`, for the admin's filter),
    as `rules.loyalty_streak` counts it today. The daily beat task runs it: on the day after the
    Grace Day (the 2nd by default) a member without a Grace Day purchase that month drops to 0.

    Set-based: one query for the Grace Day months of the members who bought on a Grace Day this
    month or last (no one else can have a streak), one UPDATE zeroing everyone else, and one
    UPDATE per distinct streak value. Returns how many rows changed.
    """
    plan = plan_load()
    today = today or timezone.now().date()
    since = rules.month_add(today, -1)
    streaks = {uid: n for uid, months in selectors.grace_day_months(plan, since=since).items()
               if (n := rules.loyalty_streak(plan.rules, months, today=today))}
    by_value: dict[int, list[int]] = defaultdict(list)
    for uid, n in streaks.items():
        by_value[n].append(uid)
    with transaction.atomic():
        changed = (MemberStats.objects.filter(loyalty_streak__gt=0).exclude(user_id__in=list(streaks))
                   .update(loyalty_streak=0))
        for n, ids in sorted(by_value.items()):
            changed += MemberStats.objects.filter(user_id__in=ids).exclude(loyalty_streak=n).update(loyalty_streak=n)
    return changed


# --- the global pool (§9) --------------------------------------------------------------------

def global_pool_run(*, month: date) -> PoolRun:
    """Pay the global pool for the month containing `month`. One run per month: a second
    call returns the first run and pays nothing."""
    plan = plan_load()
    start = month_start(month)
    end = month_next(start)
    existing = PoolRun.objects.filter(month=start).first()
    if existing is not None:
        return existing
    from accounts.selectors import system_root

    root = system_root()
    with transaction.atomic():
        volume = (Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS, refunded_at__isnull=True,
                                          created_at__date__gte=start,
                                          created_at__date__lt=end).exclude(user__is_system_root=True)
                  .aggregate(t=Sum("price"))["t"] or ZERO)
        qualifiers = _pool_qualifiers(plan, start)
        split = rules.pool_split(plan.rules, company_volume=volume, qualifiers=len(qualifiers))
        pool, share, remainder, n = split.pool, split.share, split.remainder, len(qualifiers)
        try:
            with transaction.atomic():
                run = PoolRun.objects.create(month=start, company_volume=volume, pool=pool, qualifiers=n,
                                             share=share, remainder=remainder)
        except IntegrityError:
            return PoolRun.objects.get(month=start)
        bonuses = [Bonus(user_id=uid, pool_run=run, kind=Bonus.Kind.GLOBAL_POOL, amount=share,
                         rate=plan.rules.pool_rate) for uid in qualifiers if share > 0]
        if remainder > 0:
            bonuses.append(Bonus(user_id=root.pk, pool_run=run, kind=Bonus.Kind.GLOBAL_POOL, amount=remainder))
        created = bonuses_create(bonuses, settings=plan.settings)  # credited now, or held
        engine.notify(created, skip_user_ids=[root.pk])
    return run


def _pool_qualifiers(plan: Plan, month: date) -> list[int]:
    """Top-rank members active in `month` with at least two direct-referral branches that
    each hold a top-rank member. Two queries."""
    top = plan.top
    tops = list(User.objects.filter(mlm_stats__rank=top, is_system_root=False).values_list("id", "path", "depth"))
    if not tops:
        return []
    active = selectors.active_member_ids(plan, month=month, user_ids=[t[0] for t in tops])
    out = []
    for uid, path, depth in tops:
        if uid not in active:
            continue
        # The direct-referral branch of each top-rank member below: its path cut one level below uid.
        heads = {p[:PATH_STEP * (depth + 2)] for _, p, _ in tops if p != path and p.startswith(path)}
        if len(heads) >= 2:
            out.append(uid)
    return sorted(out)
