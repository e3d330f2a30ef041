"""Benchmark `rebuild_volumes` at scale: generate a deep network and purchases fast, rebuild.

PostgreSQL only. Writes bench data (members `rb…@bench.local`, a "Bench rebuild" project,
purchases inserted directly, with no wallet money and no processing): run it on a throwaway
database.

The network: member i (in id order) hangs under one of the W members registered just before
it (W chosen from `--depth`), so the tree is bushy at every level and its depth grows evenly
to about `--depth` (mean depth about half of it). Members are streamed to the database with
COPY, their paths built on the fly (only the last few W paths are kept in memory).
Purchases: one INSERT … SELECT over generate_series — random buyers, prices and dates over
`--months` months; 10% legacy, 5% bonus auto-purchases (never counted), 1% refunded.

Each run (after the first unless `--warm`) starts cold: the volumes zeroed and the monthly
rows deleted, so every run writes every row, as after a bulk import. Printed per run: the
time of each phase, the total, and the temporary files PostgreSQL wrote (pg_stat_database
temp_bytes delta); at the end the medians, this process's peak RSS and the machine's load.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import deque
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from accounts.models import PATH_STEP, User, path_encode
from accounts.selectors import system_root
from mlm.management.commands.rebuild_volumes import peak_rss_mb
from mlm.models import MemberStats, MonthlyVolume, ProcessedPurchase, Rank
from mlm.rebuild import volumes_rebuild
from purchases.models import Option, Project, Purchase

MAX_PATH = User._meta.get_field("path").max_length


class Command(BaseCommand):
    help = "Generate N members (depth up to D) and M purchases with set-based SQL, then time rebuild_volumes."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=100_000)
        parser.add_argument("--purchases", type=int, default=500_000)
        parser.add_argument("--depth", type=int, default=300, help="Depth the network grows to.")
        parser.add_argument("--months", type=int, default=12, help="Purchases are spread over this many months.")
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--markers", action="store_true",
                            help="Mark every counted purchase processed (a ProcessedPurchase with its fv_path), "
                                 "as on a live database.")
        parser.add_argument("--reuse", action="store_true", help="Do not generate: rebuild the data already there.")
        parser.add_argument("--warm", action="store_true",
                            help="Do not reset the volumes between runs (later runs find them right).")

    def handle(self, *args, members, purchases, depth, months, runs, seed, markers, reuse, warm, **options):
        if connection.vendor != "postgresql":
            raise CommandError("bench_rebuild needs PostgreSQL.")
        if (depth + 1) * PATH_STEP > MAX_PATH:
            raise CommandError(f"--depth at most {MAX_PATH // PATH_STEP - 1}: a path holds {MAX_PATH} characters.")
        self.stdout.write(f"load average at start: {_load()}")
        if not reuse:
            t0 = time.perf_counter()
            first, depths = self._members(members, depth, seed)
            t1 = time.perf_counter()
            self.stdout.write(f"members: {members:,} in {t1 - t0:.1f} s; depth max {max(depths)}, "
                              f"mean {statistics.fmean(depths):.1f}")
            self._purchases(first, members, purchases, months, seed)
            t2 = time.perf_counter()
            self.stdout.write(f"purchases: {purchases:,} in {t2 - t1:.1f} s")
            if markers:
                self._markers()
                self.stdout.write(f"processed markers in {time.perf_counter() - t2:.1f} s")
            self._analyze()
        self.stdout.write(f"peak RSS after generating: {peak_rss_mb():.0f} MB")

        totals, phases = [], {}
        for run in range(1, runs + 1):
            if run > 1 and not warm:
                self._reset()
            temp_before = _temp_bytes()

            def progress(phase, seconds):
                self.stdout.write(f"    {phase}: {seconds:.2f} s")

            self.stdout.write(f"run {run}:")
            result = volumes_rebuild(progress=progress)
            temp = (_temp_bytes() - temp_before) / 2**20
            totals.append(result["seconds"])
            for phase, seconds in result["timings"].items():
                phases.setdefault(phase, []).append(seconds)
            self.stdout.write(f"  total {result['seconds']:.2f} s ({result['members']:,} members, "
                              f"{result['purchases']:,} counted purchases, {result['monthly_rows']:,} monthly rows, "
                              f"{result['levels']} levels); temp files {temp:.0f} MB")
        self.stdout.write("medians: " + ", ".join(f"{p} {statistics.median(s):.2f} s" for p, s in phases.items()))
        self.stdout.write(f"rebuild total: median {statistics.median(totals):.2f} s "
                          f"(runs: {', '.join(f'{t:.2f}' for t in totals)}); peak RSS {peak_rss_mb():.0f} MB; "
                          f"load average at end: {_load()}")

    # --- generation --------------------------------------------------------------------------

    def _members(self, n: int, depth: int, seed: int) -> tuple[int, list[int]]:
        """COPY n members into the users table, each under one of the `window` members just
        before it; paths are built here, keeping only the recent ones."""
        rng = random.Random(seed)
        root = system_root()
        first = (User.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
        window = max(1, round(2 * n / max(depth, 1)) - 1)
        keep = 3 * window
        paths = {root.pk: (root.path, 0)}
        order = deque()  # ids whose paths are kept, oldest first
        depths = []
        ranks = list(Rank.objects.order_by("position").values_list("id", flat=True))
        weights = [60, 20, 10, 6, 4][:len(ranks)] + [1] * max(0, len(ranks) - 5)
        columns = ("id, password, is_superuser, email, first_name, last_name, is_staff, is_active, date_joined, "
                   "is_system_root, path, depth, referral_code, balance_active, balance_passive, sponsor_id, "
                   "clawback_debt")
        with transaction.atomic(), connection.cursor() as cur:
            with cur.cursor.copy(f"COPY {User._meta.db_table} ({columns}) FROM STDIN") as copy:
                for i in range(n):
                    uid = first + i
                    sponsor = first + i - rng.randint(1, window) if i else root.pk
                    if sponsor < first:
                        sponsor = root.pk
                    spath, sdepth = paths.get(sponsor, (None, depth))
                    if sdepth >= depth:  # the line is as deep as allowed: hang it under the root
                        sponsor, (spath, sdepth) = root.pk, paths[root.pk]
                    path = spath + path_encode(uid)
                    paths[uid] = (path, sdepth + 1)
                    order.append(uid)
                    if len(order) > keep:  # forget the oldest paths: nothing hangs that far back
                        paths.pop(order.popleft())
                    depths.append(sdepth + 1)
                    copy.write_row((uid, "!", False, f"rb{uid}@bench.local", "", "", False, True,
                                    "2024-01-01 00:00:00+00", False, path, sdepth + 1, f"R{uid:012d}",
                                    0, 0, sponsor, 0))
            # Stats rows with random ranks (60% the lowest … 4% the top): caps differ.
            cumulative, whens = 0, []
            for rank_id, weight in zip(ranks, weights, strict=True):
                cumulative += weight
                whens.append(f"WHEN r < {cumulative / sum(weights)} THEN {int(rank_id)}")
            cur.execute(f"INSERT INTO {MemberStats._meta.db_table} (user_id, rank_id, is_pioneer, pv, fv, tv, "
                        f"max_branch, cap, gap) SELECT id, CASE {' '.join(whens)} ELSE {int(ranks[-1])} END, "
                        f"false, 0, 0, 0, 0, 0, 0 FROM (SELECT id, random() AS r FROM {User._meta.db_table} "
                        "WHERE id >= %s) u", [first])
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{User._meta.db_table}', 'id'), "
                        f"(SELECT MAX(id) FROM {User._meta.db_table}))")
        return first, depths

    def _purchases(self, first: int, n_members: int, n: int, months: int, seed: int) -> None:
        project, _ = Project.objects.get_or_create(name="Bench rebuild")
        option, _ = Option.objects.get_or_create(project=project, name="Bench rebuild pack",
                                                 defaults={"pack_shares": 20000, "pack_price": Decimal("1000")})
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT setseed(%s)", [(seed % 1000) / 1000])
            cur.execute(
                f"INSERT INTO {Purchase._meta.db_table} (kind, packs, shares, price, created_at, option_id, "
                "project_id, user_id, refunded_at) "
                "SELECT CASE WHEN r1 < 0.05 THEN 'bonus' WHEN r1 < 0.15 THEN 'legacy' ELSE 'regular' END, 1, 20000, "
                "(ARRAY[50, 250, 1000, 1000, 2500, 5000])[1 + floor(r2 * 6)::int], "
                "date_trunc('month', now()) - make_interval(days => floor(r3 * %s * 30.4)::int) "
                "+ make_interval(secs => floor(r4 * 86399)::int), %s, %s, %s + floor(r5 * %s)::bigint, "
                "CASE WHEN r4 < 0.01 THEN now() END "
                "FROM (SELECT random() r1, random() r2, random() r3, random() r4, random() r5 "
                "FROM generate_series(1, %s)) g",
                [months, option.pk, project.pk, first, n_members, n])

    def _markers(self) -> None:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {ProcessedPurchase._meta.db_table} (purchase_id, processed_at, fv_path) "
                f"SELECT p.id, now(), '' FROM {Purchase._meta.db_table} p JOIN {User._meta.db_table} u "
                "ON u.id = p.user_id WHERE p.kind IN ('regular', 'legacy') AND p.refunded_at IS NULL "
                f"ON CONFLICT DO NOTHING")

    def _reset(self) -> None:
        """Cold volumes, as after a bulk import (not timed)."""
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"UPDATE {MemberStats._meta.db_table} SET pv = 0, fv = 0, tv = 0, max_branch = 0, cap = 0, "
                        "gap = 0, next_rank_id = NULL, tv_updated_at = NULL")
            cur.execute(f"TRUNCATE {MonthlyVolume._meta.db_table}")
        self._analyze()

    def _analyze(self) -> None:
        with connection.cursor() as cur:  # autocommit: VACUUM cannot run in a transaction
            for model in (User, MemberStats, MonthlyVolume, Purchase, ProcessedPurchase):
                cur.execute(f"VACUUM ANALYZE {model._meta.db_table}")
            cur.execute("CHECKPOINT")


def _temp_bytes() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
        return int(cur.fetchone()[0])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
