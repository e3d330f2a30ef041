"""Benchmark the buy-order metrics and history pages at scale.

PostgreSQL only. Writes bench data -- buy-orders inserted directly (no chain), marked with the
error text ``bench_buy_orders``, and ``--revenue-rows`` revenue rows (source ``other``, reference
``bench_buy_orders:<n>``) -- so run it on a throwaway database; with `--cleanup` they are deleted
again (and the running totals rebuilt from what is left).

The rows: one INSERT … SELECT over generate_series, one a minute going back from now (so ~1.9
years for a million); 90% completed, 9.99% failed, a handful pending. The running totals are
then rebuilt from the rows (the bench bypasses the settle path) and the table vacuumed and
analysed, as autovacuum would.

Timed, each `--runs` times, median printed (milliseconds):
- metrics: ``buy_order_metrics()`` (the running totals), and the old full aggregate for comparison;
- revenue: ``unspent_revenue()`` (the revenue's running total), and the old SUM over the rows;
- history: the first page, the deepest offset the API accepts, a keyset page by cursor at the
  middle of the set (``--depth``), and the old OFFSET page at the same depth for comparison.
"""

from __future__ import annotations

import statistics
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Sum

from tokens.models import BuyOrder, Revenue
from tokens.selectors import (
    HISTORY_MAX_OFFSET,
    buy_order_history_page,
    buy_order_metrics,
    encode_cursor,
    unspent_revenue,
)
from tokens.totals import buy_order_totals_rebuild, totals_from_rows

MARK = "bench_buy_orders"
LIMIT = 50

INSERT = """
INSERT INTO tokens_buyorder (status, trigger, period_key, amount, quoted_price, expected_tokens, min_tokens,
    max_slippage, disposition, tokens_received, tokens_received_exact, price_per_token, tx_hash, block_number,
    gas_used, burn_tx_hash, attempts, error, warning, executed_by_id, created_at, completed_at)
SELECT s.status, 'scheduled', NULL, s.amount, 0.5, s.amount * 2, s.amount * 1.98, 0.01, 'hold',
    CASE WHEN s.status = 'completed' THEN s.amount * 2 END, '',
    CASE WHEN s.status = 'completed' THEN 0.5 END,
    CASE WHEN s.status <> 'pending' THEN '0xbe' || lpad(to_hex(s.g + %(base)s), 62, '0') END,
    CASE WHEN s.status = 'completed' THEN 1000 + s.g END,
    CASE WHEN s.status = 'completed' THEN 150000 END, '', 1, %(mark)s, '', NULL,
    s.created_at, CASE WHEN s.status <> 'pending' THEN s.created_at + interval '20 seconds' END
FROM (SELECT g, now() - (%(rows)s - g) * interval '1 minute' AS created_at,
             (100 + (g %% 9901))::numeric AS amount,
             CASE WHEN g %% 200000 = 7 THEN 'pending' WHEN g %% 10 = 3 THEN 'failed' ELSE 'completed' END AS status
      FROM generate_series(1, %(rows)s) g) s
"""

INSERT_REVENUE = """
INSERT INTO tokens_revenue (source, amount, currency, rate_to_zar, amount_zar, recorded_at, external_ref,
    reverses_id, created_at)
SELECT 'other', a, 'ZAR', 1, a, t, %(mark)s || ':' || (g + %(base)s), NULL, t
FROM (SELECT g, (10 + (g %% 4991))::numeric AS a, now() - (%(rows)s - g) * interval '1 minute' AS t
      FROM generate_series(1, %(rows)s) g) s
"""


class Command(BaseCommand):
    help = "Insert N buy-orders with set-based SQL, then time the metrics and history pages (medians)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--revenue-rows", type=int, default=None, help="Revenue rows to insert (default: --rows).")
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument("--depth", type=int, default=None, help="Rows deep for the cursor page (default: half).")
        parser.add_argument("--reuse", action="store_true", help="Do not insert: time the rows already there.")
        parser.add_argument("--cleanup", action="store_true", help="Delete the bench rows at the end.")

    def handle(self, *args, rows, revenue_rows, runs, depth, reuse, cleanup, **options):
        if connection.vendor != "postgresql":
            raise CommandError("bench_buy_orders needs PostgreSQL.")
        revenue_rows = rows if revenue_rows is None else revenue_rows
        if rows < 1 or runs < 1 or revenue_rows < 0:
            raise CommandError("--rows and --runs must be at least 1, --revenue-rows at least 0.")
        if not reuse:
            t0 = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SELECT coalesce(max(id), 0) FROM tokens_buyorder")
                base = cursor.fetchone()[0]
                cursor.execute(INSERT, {"rows": rows, "mark": MARK, "base": base})
                if revenue_rows:
                    cursor.execute("SELECT coalesce(max(id), 0) FROM tokens_revenue")
                    cursor.execute(INSERT_REVENUE, {"rows": revenue_rows, "mark": MARK,
                                                    "base": cursor.fetchone()[0]})
            t1 = time.perf_counter()
            buy_order_totals_rebuild()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE tokens_buyorder")
                cursor.execute("VACUUM ANALYZE tokens_revenue")
            self.stdout.write(f"inserted {rows:,} buy-orders and {revenue_rows:,} revenue rows in {t1 - t0:.1f} s; "
                              f"totals rebuilt, vacuumed and analysed in {time.perf_counter() - t1:.1f} s")
        total = BuyOrder.objects.count()
        self.stdout.write(f"{Revenue.objects.count():,} revenue rows")
        depth = min(total - 1, depth if depth is not None else total // 2)
        self.stdout.write(f"{total:,} buy-orders; {runs} runs each, median (min–max) in ms:")

        after = (BuyOrder.objects.order_by("-created_at", "-id").values_list("created_at", "id")[depth - 1]
                 if depth > 0 else None)
        cursor_at_depth = encode_cursor(*after) if after else None
        cases = [
            ("metrics: buy_order_metrics() (running totals)", buy_order_metrics),
            ("metrics: the old full aggregates over the rows (orders and revenue)", totals_from_rows),
            ("revenue: unspent_revenue() (running total)", unspent_revenue),
            ("revenue: the old SUM(amount_zar) over the rows",
             lambda: Revenue.objects.aggregate(total=Sum("amount_zar"))),
            ("history: first page", lambda: buy_order_history_page(limit=LIMIT)),
            (f"history: offset {HISTORY_MAX_OFFSET:,} (the deepest accepted)",
             lambda: buy_order_history_page(limit=LIMIT, offset=HISTORY_MAX_OFFSET)),
            (f"history: cursor {depth:,} rows deep", lambda: buy_order_history_page(limit=LIMIT,
                                                                                  cursor=cursor_at_depth)),
            (f"history: cursor {depth:,} rows deep, status=completed",
             lambda: buy_order_history_page(limit=LIMIT, cursor=cursor_at_depth, status="completed")),
            (f"history: the old OFFSET {depth:,} + exact COUNT + user join", lambda: _old_page(depth)),
        ]
        for label, func in cases:
            times = _time(func, runs)
            self.stdout.write(f"  {label}: {statistics.median(times):.1f} ({min(times):.1f}–{max(times):.1f})")
        page = buy_order_history_page(limit=LIMIT, cursor=cursor_at_depth)
        self.stdout.write(f"  (cursor page: {len(page.rows)} rows, count {page.count:,}, "
                          f"exact={page.count_exact})")
        if cleanup:
            deleted, _ = BuyOrder.objects.filter(error=MARK).delete()
            deleted += Revenue.objects.filter(source="other", external_ref__startswith=f"{MARK}:").delete()[0]
            buy_order_totals_rebuild()
            self.stdout.write(f"deleted {deleted:,} bench rows; totals rebuilt")


def _old_page(depth: int):
    rows = BuyOrder.objects.select_related("executed_by").order_by("-created_at", "-id")
    return list(rows[depth:depth + LIMIT]), rows.count()


def _time(func, runs: int) -> list[float]:
    func()  # warm the caches once, untimed
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        func()
        times.append((time.perf_counter() - t) * 1000)
    return times
