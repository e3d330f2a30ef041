"""Rebuilding every member's volumes from the purchases (compensation-plan.md §3): a repair
after a tree change or a bulk import, and the check that incremental processing is right.

What is rebuilt, from the counted purchases (kind `regular` or `legacy`, not refunded; the
system root's own purchases never count):

- PV per member and monthly PV per (member, month);
- FV (everything bought below a member), TV (Σ over direct referrals of min(branch, cap)),
  the largest branch, the cap, the next rank and the gap to it;
- `ProcessedPurchase.fv_path` is emptied (= the buyer's path now: FV follows the tree as
  rebuilt, so a later refund takes it back from there).

Ranks, pioneer status and loyalty streaks are not changed. Missing stats rows are inserted.

On PostgreSQL everything is set-based SQL in one transaction; nothing is done per member in
Python, and the work is linear in the size of the network whatever its depth:

1. `lock` — one rebuild at a time (an advisory lock: a second one waits, or with
   `wait=False` is refused with `ConflictError` `rebuild_running`), then the stats and monthly
   tables in EXCLUSIVE mode: the rebuild first waits for processing, refunds and TV
   recalculations under way to commit; meanwhile they wait for the rebuild (their row locks
   and writes on those tables queue behind it). Plain reads (summaries, the admin) go on and
   see the volumes as they were until the rebuild commits.
2. `stats rows` — INSERT the missing stats rows (ON CONFLICT DO NOTHING).
3. `monthly PV` — one INSERT … SELECT … GROUP BY (member, month) into a temporary table.
4. `tree` — a temporary table of (member, sponsor, depth, PV, the sponsor's cap), indexed by
   depth and member; PV is the sum of the member's monthly rows.
5. `FV/TV by level` — deepest level first, one UPDATE per level: a member's FV, TV and
   largest branch are sums over its direct referrals, one level down, whose own FV is final
   by then: FV(m) = Σ (PV(c) + FV(c)), TV(m) = Σ min(PV(c) + FV(c), cap(m)).
6. `write stats` — one UPDATE of the stats rows that changed (or never had their TV set).
7. `write monthly` — delete the monthly rows that no longer exist, update the changed ones,
   insert the new ones: a rebuild that finds the volumes right writes almost nothing.
8. `fv_path` — one UPDATE emptying the paths sponsor changes recorded (= the buyer's path now).
9. `commit` — PostgreSQL checks the foreign keys of the rows written (deferred constraints).

The cap of each rank is computed in Python by `rules.PlanRules.member_cap` (the rule's one
home) and joined in; the TV sum in step 5 is `rules.team_volume` written in SQL.

Elsewhere (SQLite, which `make run` uses, or `method="python"`) the same result is computed
in Python with `rules.team_volume` itself: correct, and fast enough for a demo database.

Pause the workers and let the purchase backlog drain before rebuilding live data: a counted
purchase still waiting to be processed is counted by the rebuild, and would be counted again
when processed. The same for a refund whose clawback has not run yet.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from common.errors import ConflictError, field_error
from common.money import ZERO
from mlm import rules
from mlm.models import MemberStats, MonthlyVolume, ProcessedPurchase, month_start
from mlm.selectors import Plan, plan_load
from purchases.models import Purchase

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]

# pg_advisory_xact_lock key of the rebuild ("mlm-rebuild" folded into a bigint).
REBUILD_LOCK_KEY = 0x6D6C6D2D7262
# Memory PostgreSQL may use per sort/hash in the rebuild's transaction (SET LOCAL): the
# grouping of millions of purchases then stays in memory instead of temporary files.
WORK_MEM = "256MB"

_STATS = MemberStats._meta.db_table
_MONTHLY = MonthlyVolume._meta.db_table
_USERS = User._meta.db_table
_PURCHASES = Purchase._meta.db_table
_PROCESSED = ProcessedPurchase._meta.db_table


class _Timer:
    """Times the phases, tells `progress` (and the log) as each one ends."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.started = self.mark = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        seconds = self.timings[phase] = round(now - self.mark, 3)
        self.mark = now
        logger.info("rebuild_volumes: %s %.2f s", phase, seconds)
        if self.progress is not None:
            self.progress(phase, seconds)

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def volumes_rebuild(*, progress: Progress | None = None, wait: bool = True, method: str | None = None,
                    chunk: int = 2000) -> dict:
    """Recompute every member's PV, monthly PV, FV and TV from the counted, unrefunded purchases.

    `progress(phase, seconds)` is called as each phase ends. `wait=False` refuses to start
    while another rebuild runs (`ConflictError`, code `rebuild_running`) instead of waiting
    for it. `method`: `"sql"` (PostgreSQL; the default there) or `"python"` (the default
    elsewhere). `chunk`: rows per bulk write of the Python method.

    Returns `members` (stats rows), `purchases` (counted purchases), `monthly_rows`,
    `levels` (the deepest level), `timings` (seconds per phase) and `seconds` (the total).
    """
    method = method or ("sql" if connection.vendor == "postgresql" else "python")
    if method not in ("sql", "python"):
        raise field_error("method", f"Unknown rebuild method {method!r}: 'sql' or 'python'.", code="unknown_method")
    if method == "sql" and connection.vendor != "postgresql":
        raise field_error("method", "The SQL rebuild needs PostgreSQL.", code="postgresql_required")
    timer = _Timer(progress)
    plan = plan_load()
    with transaction.atomic(), connection.cursor() as cur:
        rebuild_lock(cur, wait=wait)
        timer.done("lock")
        _stats_insert_missing(cur, plan)
        timer.done("stats rows")
        if method == "sql":
            result = _rebuild_sql(cur, plan, timer)
        else:
            result = _rebuild_python(cur, plan, timer, chunk=chunk)
        _fv_path_reset(cur)
        timer.done("fv_path")
        cur.execute(f"SELECT COUNT(*) FROM {_STATS}")
        result["members"] = cur.fetchone()[0]
    timer.done("commit")  # deferred foreign-key checks of the rows written run here
    result["timings"] = timer.timings
    result["seconds"] = timer.total
    logger.info("rebuild_volumes: %s members in %.2f s", result["members"], result["seconds"])
    return result


def rebuild_lock(cur, *, wait: bool = True) -> None:
    """Take the rebuild's locks for the current transaction (see the module's docstring).

    PostgreSQL only; elsewhere (SQLite) the database's single writer serializes rebuilds.
    """
    if connection.vendor != "postgresql":
        return
    if wait:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [REBUILD_LOCK_KEY])
    else:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [REBUILD_LOCK_KEY])
        if not cur.fetchone()[0]:
            raise ConflictError("Another volume rebuild is running; try again when it has finished.",
                                code="rebuild_running")
    # EXCLUSIVE, not SHARE ROW EXCLUSIVE: processing locks stats rows (FOR NO KEY UPDATE,
    # a ROW SHARE table lock) before it updates them; under a lock that let those row locks
    # through, the rebuild's UPDATE and the processing's would deadlock.
    cur.execute(f"LOCK TABLE {_STATS} IN EXCLUSIVE MODE")
    cur.execute(f"LOCK TABLE {_MONTHLY} IN EXCLUSIVE MODE")


# --- shared steps ----------------------------------------------------------------------------

def _counted() -> list[str]:
    return [str(k) for k in Purchase.COUNTED_KINDS]


def _stats_insert_missing(cur, plan: Plan) -> None:
    cur.execute(
        f"INSERT INTO {_STATS} (user_id, rank_id, is_pioneer, pv, fv, tv, max_branch, cap, gap) "
        f"SELECT u.id, %s, %s, 0, 0, 0, 0, 0, 0 FROM {_USERS} u WHERE u.is_system_root = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {_STATS} s WHERE s.user_id = u.id) ORDER BY u.id "
        "ON CONFLICT (user_id) DO NOTHING",
        [plan.lowest.pk, False, False])


def _fv_path_reset(cur) -> None:
    """FV now follows the tree as rebuilt: every processed marker reads the buyer's path now
    again (an empty `fv_path`), so a later refund takes FV back from the current upline."""
    cur.execute(f"UPDATE {_PROCESSED} SET fv_path = '' WHERE fv_path <> ''")


def rank_caps(plan: Plan) -> list[tuple[int, Decimal, int | None, Decimal | None]]:
    """Per rank: (rank id, its members' cap, the next rank's id and TV requirement) — from
    `rules.PlanRules.member_cap`, the cap's one home."""
    prules = plan.rules
    out = []
    for rank in prules.ranks:
        nxt = prules.next_rank(rank)
        out.append((rank.id, prules.member_cap(rank), nxt.id if nxt else None, nxt.tv_required if nxt else None))
    return out


# --- PostgreSQL: set-based -------------------------------------------------------------------

def _rebuild_sql(cur, plan: Plan, timer: _Timer) -> dict:
    cur.execute("SELECT set_config('work_mem', %s, true)", [WORK_MEM])
    caps = rank_caps(plan)
    ranks_sql = "(VALUES " + ", ".join(["(%s::bigint, %s::numeric, %s::bigint, %s::numeric)"] * len(caps)) \
        + ") AS r(rank_id, cap, next_id, next_tv)"
    ranks_params = [x for row in caps for x in row]
    lowest = plan.lowest.pk
    counted = _counted()

    # Dropped at commit; dropped first too, for a rebuild inside a caller's transaction.
    cur.execute("DROP TABLE IF EXISTS rb_month, rb_node")
    cur.execute(
        "CREATE TEMPORARY TABLE rb_month ON COMMIT DROP AS "
        "SELECT p.user_id, (date_trunc('month', p.created_at AT TIME ZONE 'UTC'))::date AS month, "
        "SUM(p.price) AS pv, COUNT(*) AS n "
        f"FROM {_PURCHASES} p WHERE p.kind IN (%s, %s) AND p.refunded_at IS NULL "
        f"AND p.user_id NOT IN (SELECT id FROM {_USERS} WHERE is_system_root) "
        "GROUP BY 1, 2", counted)
    cur.execute("ANALYZE rb_month")
    timer.done("monthly PV")

    # The sponsor's cap rides on each member's row, so a level's UPDATE reads one table.
    cur.execute(
        "CREATE TEMPORARY TABLE rb_node WITH (fillfactor = 70) ON COMMIT DROP AS "
        "SELECT u.id AS user_id, u.sponsor_id, u.depth, COALESCE(o.pv, 0)::numeric AS pv, 0::numeric AS fv, "
        "0::numeric AS tv, 0::numeric AS mb, r.cap AS pcap "
        f"FROM {_USERS} u "
        "LEFT JOIN (SELECT user_id, SUM(pv) AS pv FROM rb_month GROUP BY user_id) o ON o.user_id = u.id "
        f"LEFT JOIN {_STATS} ps ON ps.user_id = u.sponsor_id "
        f"LEFT JOIN {ranks_sql} ON r.rank_id = COALESCE(ps.rank_id, %s) "
        "WHERE NOT u.is_system_root", [*ranks_params, lowest])
    cur.execute("CREATE INDEX rb_node_depth ON rb_node (depth)")
    cur.execute("CREATE INDEX rb_node_user ON rb_node (user_id)")
    cur.execute("ANALYZE rb_node")
    cur.execute("SELECT COALESCE(MAX(depth), 0) FROM rb_node")
    levels = cur.fetchone()[0]
    timer.done("tree")

    # Level 1 hangs under the root, which has no stats: it is never a sponsor here.
    for depth in range(levels, 1, -1):
        cur.execute(
            "UPDATE rb_node AS n SET fv = s.fv, tv = s.tv, mb = s.mb FROM ("
            "SELECT sponsor_id, SUM(pv + fv) AS fv, SUM(LEAST(pv + fv, pcap)) AS tv, MAX(pv + fv) AS mb "
            "FROM rb_node WHERE depth = %s GROUP BY sponsor_id) AS s WHERE n.user_id = s.sponsor_id", [depth])
    timer.done("FV/TV by level")

    gap = "CASE WHEN r.next_id IS NULL THEN 0 ELSE GREATEST(0, r.next_tv - n.tv) END"
    cur.execute(
        f"UPDATE {_STATS} AS s SET pv = n.pv, fv = n.fv, tv = n.tv, max_branch = n.mb, cap = r.cap, "
        f"next_rank_id = r.next_id, gap = {gap}, tv_updated_at = %s "
        f"FROM rb_node n, {ranks_sql} "
        "WHERE s.user_id = n.user_id AND r.rank_id = COALESCE(s.rank_id, %s) AND ("
        "s.tv_updated_at IS NULL OR (s.pv, s.fv, s.tv, s.max_branch, s.cap, s.next_rank_id, s.gap) "
        f"IS DISTINCT FROM (n.pv, n.fv, n.tv, n.mb, r.cap, r.next_id, {gap}))",
        [timezone.now(), *ranks_params, lowest])
    timer.done("write stats")

    cur.execute(f"DELETE FROM {_MONTHLY} AS mv WHERE NOT EXISTS "
                "(SELECT 1 FROM rb_month m WHERE m.user_id = mv.user_id AND m.month = mv.month)")
    cur.execute(f"UPDATE {_MONTHLY} AS mv SET pv = m.pv FROM rb_month m "
                "WHERE mv.user_id = m.user_id AND mv.month = m.month AND mv.pv <> m.pv")
    cur.execute(f"INSERT INTO {_MONTHLY} (user_id, month, pv) SELECT m.user_id, m.month, m.pv FROM rb_month m "
                f"WHERE NOT EXISTS (SELECT 1 FROM {_MONTHLY} mv WHERE mv.user_id = m.user_id AND mv.month = m.month) "
                "ORDER BY m.user_id, m.month")
    cur.execute("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM rb_month")
    monthly_rows, purchases = cur.fetchone()
    timer.done("write monthly")
    return {"purchases": int(purchases), "monthly_rows": monthly_rows, "levels": levels}


# --- elsewhere: in Python, with the rules themselves -----------------------------------------

def _rebuild_python(cur, plan: Plan, timer: _Timer, *, chunk: int) -> dict:
    """The same result from plain rows: exact Decimals (SQLite sums money as floats)."""
    prules = plan.rules
    pv: dict[int, Decimal] = defaultdict(lambda: ZERO)
    monthly: dict[tuple[int, object], Decimal] = defaultdict(lambda: ZERO)
    purchases = 0
    for user_id, created_at, price in (Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS,
                                                                refunded_at__isnull=True)
                                       .exclude(user__is_system_root=True)
                                       .values_list("user_id", "created_at", "price").iterator(chunk_size=chunk)):
        pv[user_id] += price
        monthly[(user_id, month_start(created_at))] += price
        purchases += 1
    timer.done("monthly PV")

    nodes = list(User.objects.filter(is_system_root=False).values_list("id", "sponsor_id", "depth"))
    nodes.sort(key=lambda n: -n[2])  # deepest first: a member's referrals are done before it
    timer.done("tree")

    fv: dict[int, Decimal] = defaultdict(lambda: ZERO)
    branches: dict[int, list[Decimal]] = defaultdict(list)
    for uid, sponsor_id, _ in nodes:
        branch = pv[uid] + fv[uid]
        fv[sponsor_id] += branch
        branches[sponsor_id].append(branch)
    timer.done("FV/TV by level")

    now = timezone.now()
    rows = list(MemberStats.objects.filter(user__is_system_root=False))
    for s in rows:
        team = rules.team_volume(prules, prules.rank(s.rank_id), branches.get(s.user_id, ()))
        s.pv, s.fv = pv[s.user_id], fv[s.user_id]
        s.tv, s.max_branch, s.cap, s.gap = team.tv, team.max_branch, team.cap, team.gap
        s.next_rank_id = team.next_rank.id if team.next_rank else None
        s.tv_updated_at = now
    MemberStats.objects.bulk_update(rows, ["pv", "fv", "tv", "max_branch", "cap", "next_rank", "gap",
                                           "tv_updated_at"], batch_size=chunk)
    timer.done("write stats")

    MonthlyVolume.objects.all().delete()
    MonthlyVolume.objects.bulk_create([MonthlyVolume(user_id=uid, month=month, pv=v)
                                       for (uid, month), v in sorted(monthly.items())], batch_size=chunk)
    timer.done("write monthly")
    return {"purchases": purchases, "monthly_rows": len(monthly), "levels": nodes[0][2] if nodes else 0}
