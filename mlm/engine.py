"""Processing counted purchases: one place that loads, the rules, one place that writes.

The rules are `mlm.rules` (pure). Around them:

- `snapshot_load` reads, for a batch of purchases, everything the rules look at — the plan,
  the members' ranks and pioneer flags, monthly activity, the pioneer count, investment
  totals and bonuses already paid, the cheapest options — in a constant number of queries
  whatever the batch size or the depth of the tree.
- `outcomes_write` writes what the rules decided in bulk: volumes as one UPDATE … FROM
  (VALUES …), monthly volumes as one upsert, option grants, bonuses, every wallet posting
  in one `wallet_post` batch, the team-volume queue and the notifications.
- `process_batch` claims the purchases first (a processed-marker row each, INSERT … ON
  CONFLICT DO NOTHING RETURNING — a purchase claimed by a concurrent batch is skipped), so
  each purchase is processed exactly once however many workers, retries or sweeps run.

Purchases run through the rules in id order with the snapshot folded forward in memory, so
a batch pays bonus for bonus what processing them one by one would pay.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Case, F, Q, Sum, Value, When
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet, path_decode
from accounts.services import Posting, wallet_post
from common.bulk import ids_in, insert_many
from common.money import ZERO
from mlm import payouts, rules
from mlm.models import (
    Bonus,
    MemberStats,
    MonthlyVolume,
    Notification,
    PlanSettings,
    ProcessedPurchase,
    TeamVolumeQueue,
)
from mlm.selectors import Plan, plan_load
from purchases.models import Option, Purchase

logger = logging.getLogger(__name__)

# A purchase id no real purchase reaches: a preview is "after everything" (§7's T counts all).
PREVIEW_ID = 2**62


# --- plan and purchases as plain data --------------------------------------------------------

def option_info(option: Option) -> rules.OptionInfo:
    return rules.OptionInfo(id=option.pk, project_id=option.project_id, pack_shares=option.pack_shares,
                            pack_price=option.pack_price)


def purchase_facts(*, purchase_id: int, user_id: int, path: str, option: Option, price: Decimal,
                   created_at: datetime) -> rules.PurchaseFacts:
    ids = path_decode(path)  # root … buyer
    return rules.PurchaseFacts(id=purchase_id, user_id=user_id, option=option_info(option), price=price,
                               created_at=created_at, upline_ids=tuple(reversed(ids[1:-1])), root_id=ids[0])


# --- loading ---------------------------------------------------------------------------------

@dataclass
class Loaded:
    snapshot: rules.Snapshot
    existing_stats: set[int]
    # Counted purchases outside the batch that precede some of its purchases (a backlog):
    # (id, user_id, project_id, price), folded into T as the batch passes their id (§7).
    earlier: list[tuple[int, int, int, Decimal]]


def snapshot_load(facts: Sequence[rules.PurchaseFacts], plan: Plan, *, lock: bool = True) -> Loaded:
    """Everything the rules read for `facts`, in a constant number of queries.

    Nothing here locks the members' rows: the rules read ranks and pioneer flags (read
    committed is what "the stored rank when processed" means) and write volumes as increments
    at the end (`outcomes_write`). With `lock`, the plan's settings row is locked when a
    purchase could make a pioneer, so the pioneer limit is counted under it.
    """
    prules = plan.rules
    snap = rules.Snapshot(plan=prules)
    buyers = {f.user_id for f in facts}
    chain = buyers | {u for f in facts for u in f.upline_ids}
    walkers = buyers | {u for f in facts for u in f.upline_ids[:prules.max_levels]}
    months = {f.month for f in facts}
    keys = {(f.user_id, f.project_id) for f in facts}

    existing = set()
    for uid, rank_id, is_pioneer in (MemberStats.objects.filter(user_id__in=ids_in(chain))
                                     .values_list("user_id", "rank_id", "is_pioneer")):
        existing.add(uid)
        if uid in walkers:
            snap.members[uid] = rules.MemberState(uid, rank_id, is_pioneer)

    for uid, month, pv in (MonthlyVolume.objects.filter(user_id__in=ids_in(walkers), month__in=months)
                           .values_list("user_id", "month", "pv")):
        snap.monthly_pv[(uid, month)] = pv

    if any(f.price >= prules.pioneer_threshold and not snap.member(f.user_id).is_pioneer for f in facts):
        if lock:
            PlanSettings.objects.select_for_update().filter(pk=plan.settings.pk).first()
        snap.pioneer_count = MemberStats.objects.filter(is_pioneer=True).count()

    earlier = _investment_load(snap, facts, keys)
    projects = {p for _, p in keys}
    by_project = {p: [] for p in projects}
    for o in Option.objects.filter(project_id__in=projects, is_active=True):
        by_project[o.project_id].append(option_info(o))
    snap.cheapest.update({p: rules.cheapest_option(options) for p, options in by_project.items()})
    return Loaded(snapshot=snap, existing_stats=existing, earlier=earlier)


def _investment_load(snap: rules.Snapshot, facts, keys) -> list[tuple[int, int, int, Decimal]]:
    """§7's T before the batch and the investment bonuses already paid: two queries.

    T counts, per (member, project): counted purchases before the batch's first purchase (by
    id) and the bonus auto-purchases already granted, neither refunded; counted purchases
    inside the batch's id range but not in it come back as `earlier`, to be folded in order.
    """
    if not keys:
        return []
    users = {u for u, _ in keys}
    projects = {p for _, p in keys}
    batch_ids = {f.id for f in facts}
    first_id, last_id = min(batch_ids), max(batch_ids)
    counted = [str(k) for k in Purchase.COUNTED_KINDS]
    mine = Purchase.objects.filter(user_id__in=ids_in(users), project_id__in=projects, refunded_at__isnull=True)
    before = mine.filter(Q(kind=Purchase.Kind.BONUS) | Q(kind__in=counted, id__lt=first_id))
    for uid, project_id, total in before.values_list("user_id", "project_id").annotate(t=Sum("price")):
        if (uid, project_id) in keys:
            snap.invest_total[(uid, project_id)] = total
    earlier = []
    if last_id > first_id:  # a batch: counted purchases between its ids that it does not hold
        earlier = [(pid, uid, project_id, price) for pid, uid, project_id, price in
                   mine.filter(kind__in=counted, id__gt=first_id, id__lt=last_id).exclude(id__in=batch_ids)
                   .values_list("id", "user_id", "project_id", "price") if (uid, project_id) in keys]
    for uid, project_id, total in (Bonus.objects.filter(user_id__in=ids_in(users), kind=Bonus.Kind.INVESTMENT,
                                                        purchase__project_id__in=projects)
                                   .exclude(status__in=[Bonus.Status.CANCELLED, Bonus.Status.REVERSED])
                                   .values_list("user_id", "purchase__project_id").annotate(t=Sum("amount"))):
        if (uid, project_id) in keys:
            snap.invest_paid[(uid, project_id)] = total
    return sorted(earlier)


# --- writing ---------------------------------------------------------------------------------

def outcomes_write(plan: Plan, loaded: Loaded, purchases: dict[int, Purchase],
                   outcomes: Sequence[rules.Outcome]) -> list[Bonus]:
    """Write the outcomes of a claimed batch in bulk. Returns the bonuses created."""
    now = timezone.now()

    # Option grants: a bonus auto-purchase each (no signal: no bonus on bonus).
    grants = []
    grant_of = {}
    for o in outcomes:
        for i, b in enumerate(o.bonuses):
            if b.grant_option is None:
                continue
            grant = Purchase(user_id=b.user_id, project_id=b.grant_option.project_id, option_id=b.grant_option.id,
                             kind=Purchase.Kind.BONUS, shares=b.grant_shares, price=b.amount,
                             idempotency_key=f"mlm:{b.kind}:{o.purchase_id}", created_at=now)
            grants.append(grant)
            grant_of[(o.purchase_id, i)] = grant
    insert_many(grants)

    rows = []
    for o in outcomes:
        purchase = purchases[o.purchase_id]
        for i, b in enumerate(o.bonuses):
            # Money-lifecycle §1: in monthly mode a cash bonus is held (pending, no ledger row).
            held = payouts.bonus_is_held(b.kind, settings=plan.settings)
            status = Bonus.Status.PENDING if held else Bonus.Status.PAID
            rows.append(Bonus(user_id=b.user_id, purchase=purchase, kind=b.kind, level=b.level, rate=b.rate,
                              amount=b.amount, compression_applied=b.compression_applied,
                              granted_purchase=grant_of.get((o.purchase_id, i)), status=status,
                              paid_at=now if status == Bonus.Status.PAID else None))
    created = insert_many(rows)

    # The rows every line shares (the root's and the top's balances, the top's volumes) are
    # written last and in one fixed order — members' balances by id, then stats rows by id —
    # so concurrent batches hold them only for the end of their transaction and never deadlock.
    postings = []
    for grant in grants:
        label = f"{grant.shares} options ({grant.idempotency_key.split(':')[1]} bonus)"
        postings += [
            Posting(user_id=grant.user_id, wallet=Wallet.ACTIVE, amount=grant.price,
                    reason=LedgerEntry.Reason.BONUS_PURCHASE, idempotency_key=f"purchase:{grant.pk}:credit",
                    cause=grant, description=f"{label} (paid outside the wallet)"),
            Posting(user_id=grant.user_id, wallet=Wallet.ACTIVE, amount=-grant.price,
                    reason=LedgerEntry.Reason.BONUS_PURCHASE, idempotency_key=f"purchase:{grant.pk}:debit",
                    cause=grant, description=label)]
    postings += [payouts.bonus_posting(b) for b in created
                 if b.kind in Bonus.PASSIVE_KINDS and b.status == Bonus.Status.PAID]
    wallet_post(postings, savepoint=False)

    # Volumes: PV of the buyers, FV of their uplines (one increment per member), monthly PV.
    pv, fv, monthly = Counter(), Counter(), Counter()
    for o in outcomes:
        pv[o.buyer_id] += o.price
        monthly[(o.buyer_id, o.month)] += o.price
        for uid in o.fv_user_ids:
            fv[uid] += o.price
    touched = sorted(set(pv) | set(fv))
    missing = [uid for uid in touched if uid not in loaded.existing_stats]
    if missing:
        stats_insert(missing, plan.lowest.pk)
    _stats_increment({uid: (pv.get(uid, ZERO), fv.get(uid, ZERO)) for uid in touched})
    _monthly_increment(monthly)
    for o in outcomes:  # rare: at most the pioneer limit, ever
        if o.becomes_pioneer:
            MemberStats.objects.filter(user_id=o.buyer_id).update(is_pioneer=True, pioneer_since=now,
                                                                  pioneer_purchase_id=o.purchase_id)
    team_volume_enqueue(sorted(fv))

    root_ids = {path_decode(p.user.path)[0] for p in purchases.values()}
    transaction.on_commit(lambda: notify(created, skip_user_ids=root_ids))
    return created


def stats_insert(user_ids: Sequence[int], rank_id: int) -> None:
    """Create missing stats rows: one INSERT … ON CONFLICT DO NOTHING (concurrent first
    purchases in one line both try; neither fails)."""
    table = MemberStats._meta.db_table
    values = ", ".join(["(%s, %s, %s, 0, 0, 0, 0, 0, 0)"] * len(user_ids))
    params = []
    for uid in user_ids:
        params += [uid, rank_id, False]
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {table} (user_id, rank_id, is_pioneer, pv, fv, tv, max_branch, cap, gap) "
                    f"VALUES {values} ON CONFLICT (user_id) DO NOTHING", params)


def _stats_increment(deltas: dict[int, tuple[Decimal, Decimal]]) -> None:
    """pv += a, fv += b for every member: one UPDATE … FROM (VALUES …) on PostgreSQL, one
    UPDATE … CASE per 2,000 members elsewhere (SQLite writes one at a time anyway)."""
    if not deltas:
        return
    if connection.vendor != "postgresql":
        items = sorted(deltas.items())
        for i in range(0, len(items), 2000):
            chunk = items[i:i + 2000]
            whens = {"pv": [When(user_id=uid, then=Value(dpv)) for uid, (dpv, _) in chunk],
                     "fv": [When(user_id=uid, then=Value(dfv)) for uid, (_, dfv) in chunk]}
            MemberStats.objects.filter(user_id__in=[uid for uid, _ in chunk]).update(
                **{name: F(name) + Case(*w, default=Value(ZERO), output_field=MemberStats._meta.get_field(name))
                   for name, w in whens.items()})
        return
    list(MemberStats.objects.select_for_update(no_key=True).filter(user_id__in=ids_in(deltas))
         .order_by("user_id").values_list("user_id", flat=True))  # lock in id order: no deadlock
    table = MemberStats._meta.db_table
    values = ", ".join(["(%s::bigint, %s::numeric, %s::numeric)"] * len(deltas))
    params = [x for uid, (dpv, dfv) in deltas.items() for x in (uid, dpv, dfv)]
    with connection.cursor() as cur:
        cur.execute(f"UPDATE {table} AS s SET pv = s.pv + v.pv, fv = s.fv + v.fv "
                    f"FROM (VALUES {values}) AS v(user_id, pv, fv) WHERE s.user_id = v.user_id", params)


def _monthly_increment(deltas: dict[tuple[int, object], Decimal]) -> None:
    """Monthly PV += delta per (member, month): one upsert."""
    if not deltas:
        return
    table = MonthlyVolume._meta.db_table
    items = sorted(deltas.items())
    values = ", ".join(["(%s, %s, %s)"] * len(items))
    params = [x for (uid, month), v in items for x in (uid, month, v)]
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {table} (user_id, month, pv) VALUES {values} "
                    f"ON CONFLICT (user_id, month) DO UPDATE SET pv = {table}.pv + EXCLUDED.pv", params)


def team_volume_enqueue(user_ids: Iterable[int]) -> None:
    """Queue members for a TV recalculation (a member already queued is not queued twice),
    and ask a worker to drain the queue after the commit."""
    ids = list(user_ids)
    if not ids:
        return
    TeamVolumeQueue.objects.bulk_create([TeamVolumeQueue(user_id=i) for i in ids], ignore_conflicts=True)
    from mlm.tasks import team_volume_drain_task

    team_volume_drain_task.delay_on_commit()


def notify(bonuses: Sequence[Bonus], *, skip_user_ids: Iterable[int] = ()) -> None:
    """A notification row per bonus received, then an e-mail after commit. Never breaks the money."""
    skip = set(skip_user_ids)
    notifications_save([Notification(user_id=b.user_id, kind=b.kind, amount=b.amount, bonus=b,
                                     message=bonus_message(b)) for b in bonuses if b.user_id not in skip])


def bonus_message(b: Bonus) -> str:
    label = Bonus.Kind(b.kind).label
    cause = f" on purchase #{b.purchase_id}" if b.purchase_id else (
        f" for {b.pool_run.month:%Y-%m}" if b.pool_run_id and b.pool_run else "")
    held = " It is held until the monthly payout." if b.status == Bonus.Status.PENDING else ""
    return f"{label} bonus of {b.amount:,.2f} USD{cause}.{held}"


def notifications_save(rows: list[Notification]) -> None:
    if not rows:
        return
    from django.db import DatabaseError

    try:
        with transaction.atomic():
            created = insert_many(rows)
    except DatabaseError:
        logger.exception("mlm: could not write %d notification(s); the money is unaffected", len(rows))
        return
    ids = [n.pk for n in created if n.pk]
    if ids:
        from mlm.tasks import notifications_email_task

        notifications_email_task.delay_on_commit(ids)


# --- the batch -------------------------------------------------------------------------------

def _claim(ids: Sequence[int]) -> list[int]:
    """Insert the processed markers of the counted, unrefunded purchases among `ids` that no
    one has processed: the ids this batch now owns (in id order). The marker's `fv_path` stays
    empty — "the buyer's path now" — until a sponsor change records the old one
    (`mlm.receivers.on_sponsor_changing`), so a refund takes FV back from the same members."""
    if not ids:
        return []
    marker = ProcessedPurchase._meta.db_table
    purchase = Purchase._meta.db_table
    user = User._meta.db_table
    counted = [str(k) for k in Purchase.COUNTED_KINDS]
    if connection.vendor == "postgresql":  # one array parameter, however many ids
        id_sql, id_params = "p.id = ANY(%s)", [list(ids)]
    else:
        id_sql, id_params = f"p.id IN ({', '.join(['%s'] * len(ids))})", list(ids)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {marker} (purchase_id, processed_at, fv_path) "
            f"SELECT p.id, %s, '' FROM {purchase} p JOIN {user} u ON u.id = p.user_id "
            f"WHERE {id_sql} AND p.kind IN ({', '.join(['%s'] * len(counted))}) "
            f"AND p.refunded_at IS NULL AND u.is_system_root = %s ORDER BY p.id "
            f"ON CONFLICT (purchase_id) DO NOTHING RETURNING purchase_id",
            [timezone.now(), *id_params, *counted, False])
        return sorted(row[0] for row in cur.fetchall())


def process_batch(purchase_ids: Iterable[int]) -> tuple[list[int], list[Bonus]]:
    """Process the purchases among `purchase_ids` that are counted and not yet processed, in
    one transaction. Returns (the ids processed now, the bonuses created)."""
    ids = sorted({int(i) for i in purchase_ids})
    with transaction.atomic():
        claimed = _claim(ids)
        if not claimed:
            return [], []
        plan = plan_load()
        purchases = {p.pk: p for p in Purchase.objects.filter(pk__in=ids_in(claimed))
                     .select_related("user", "option").order_by("id")}
        facts = [purchase_facts(purchase_id=p.pk, user_id=p.user_id, path=p.user.path, option=p.option,
                                price=p.price, created_at=p.created_at) for p in purchases.values()]
        loaded = snapshot_load(facts, plan)
        outcomes = rules.evaluate_many(loaded.snapshot, facts, earlier=loaded.earlier)
        bonuses = outcomes_write(plan, loaded, purchases, outcomes)
    return claimed, bonuses


# --- preview (§11) ---------------------------------------------------------------------------

def preview(*, user: User, option: Option, price: Decimal, when: datetime) -> rules.Outcome:
    """What a purchase by `user` of `option` for `price` at `when` would pay. Writes nothing."""
    plan = plan_load()
    facts = purchase_facts(purchase_id=PREVIEW_ID, user_id=user.pk, path=user.path, option=option, price=price,
                           created_at=when)
    loaded = snapshot_load([facts], plan, lock=False)
    return rules.evaluate_many(loaded.snapshot, [facts], earlier=loaded.earlier)[0]
