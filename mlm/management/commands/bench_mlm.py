"""Benchmark: build a synthetic network in bulk, process purchases, rebuild the volumes.

Writes bench data (members `bench…@bench.local`, a "Bench" project, purchases inserted
directly without a wallet debit): run it on a throwaway database.
"""

import random
import resource
import time
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from accounts.models import User, path_encode
from accounts.selectors import system_root
from mlm import tasks
from mlm.models import MemberStats, MonthlyVolume, Rank, month_start
from mlm.services import purchase_process, purchase_process_many, team_volume_drain, volumes_rebuild
from purchases.models import Option, Project, Purchase


class Command(BaseCommand):
    help = "Build a synthetic network, process purchases, print purchases/s, queries per purchase, rebuild time."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=10_000)
        parser.add_argument("--depth", type=int, default=200)
        parser.add_argument("--purchases", type=int, default=500)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--workers", type=int, default=1,
                            help="Processes processing the purchases at once (each takes every N-th batch).")
        parser.add_argument("--batch", type=int, default=100,
                            help="Purchases per purchase_process_many call (1 = purchase_process one by one).")

    def handle(self, *args, members, depth, purchases, seed, batch, workers, **options):
        rng = random.Random(seed)
        root = system_root()
        t0 = time.perf_counter()
        users = self._build(root, members, depth, rng)
        self.stdout.write(f"network: {members} members, max depth {depth}, built in {time.perf_counter() - t0:.2f} s")

        project, _ = Project.objects.get_or_create(name="Bench")
        option, _ = Option.objects.get_or_create(project=project, name="Bench pack",
                                                 defaults={"pack_shares": 20000, "pack_price": Decimal("1000")})
        deepest = users[depth - 1]
        buyers = [deepest if i % 2 == 0 else rng.choice(users) for i in range(purchases)]
        rows = Purchase.objects.bulk_create([
            Purchase(user_id=b.pk, project=project, option=option, kind=Purchase.Kind.REGULAR, packs=1,
                     shares=option.pack_shares, price=option.pack_price * rng.choice([1, 1, 2, 5]))
            for b in buyers])

        # Workers drain the TV queue and send e-mails asynchronously: here they run once at the end.
        saved = (tasks.team_volume_drain_task.delay_on_commit, tasks.notifications_email_task.delay_on_commit)
        tasks.team_volume_drain_task.delay_on_commit = lambda *a, **k: None
        tasks.notifications_email_task.delay_on_commit = lambda *a, **k: None
        counter = {"n": 0}

        def count(execute, sql, params, many, context):
            counter["n"] += 1
            return execute(sql, params, many, context)

        per_purchase = []
        try:
            t1 = time.perf_counter()
            if workers > 1:
                elapsed = self._parallel([p.pk for p in rows], batch=max(batch, 1), workers=workers)
            else:
                with connection.execute_wrapper(count):
                    if batch <= 1:
                        for p in rows:
                            before = counter["n"]
                            purchase_process(purchase_id=p.pk)
                            per_purchase.append((p.user_id == deepest.pk, counter["n"] - before))
                    else:
                        for i in range(0, len(rows), batch):
                            purchase_process_many(purchase_ids=[p.pk for p in rows[i:i + batch]])
                elapsed = time.perf_counter() - t1
        finally:
            tasks.team_volume_drain_task.delay_on_commit, tasks.notifications_email_task.delay_on_commit = saved
        t2 = time.perf_counter()
        drained = team_volume_drain()
        drain_time = time.perf_counter() - t2
        self.stdout.write(f"processed {len(rows)} purchases in {elapsed:.2f} s: {len(rows) / elapsed:.1f} purchases/s"
                          f" ({'one by one' if batch <= 1 else f'batches of {batch}'}, {workers} worker(s))")
        if workers > 1:
            self.stdout.write("queries: not counted across processes")
        elif batch <= 1:
            deep_q = sorted({n for deep, n in per_purchase if deep})
            other_q = sorted({n for deep, n in per_purchase if not deep})
            self.stdout.write(f"queries per purchase: buyer at depth {depth}: {deep_q}; random buyers: {other_q}")
        else:
            self.stdout.write(f"queries: {counter['n']} in all, {counter['n'] / len(rows):.2f} per purchase")
        self.stdout.write(f"TV recalculation of {drained} queued members: {drain_time:.2f} s")
        self.stdout.write(f"peak resident memory of this process: "
                          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        t3 = time.perf_counter()
        result = volumes_rebuild()
        self.stdout.write(f"rebuild_volumes ({result['members']} members): {time.perf_counter() - t3:.2f} s")

    def _parallel(self, ids, *, batch, workers):
        """`workers` processes at once, each taking every workers-th batch; returns the wall time."""
        import multiprocessing

        from django.db import connections

        chunks = [ids[i:i + batch] for i in range(0, len(ids), batch)]
        connections.close_all()  # each process opens its own connection
        ctx = multiprocessing.get_context("fork")
        t = time.perf_counter()
        with ctx.Pool(workers) as pool:
            done = sum(pool.map(_process_chunks, [chunks[w::workers] for w in range(workers)]))
        elapsed = time.perf_counter() - t
        assert done == len(ids), (done, len(ids))
        return elapsed

    def _build(self, root, members, depth, rng):
        """A spine of `depth` members (the deep line), the rest hung under random members."""
        start = (User.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
        ranks = {r.code: r for r in Rank.objects.all()}
        rank_choices = ["start"] * 12 + ["builder"] * 4 + ["growth"] * 2 + ["leadership", "director"]
        nodes = []  # (id, path, depth, sponsor_id)
        for i in range(members):
            uid = start + i
            if i == 0:
                parent = (root.pk, root.path, 0)
            elif i < depth:
                parent = nodes[i - 1][:3]
            else:
                parent = nodes[rng.randrange(len(nodes))][:3]
            nodes.append((uid, parent[1] + path_encode(uid), parent[2] + 1, parent[0]))
        month = month_start(time_now())
        with transaction.atomic():
            users = User.objects.bulk_create([
                User(pk=uid, email=f"bench{uid}@bench.local", password="!", sponsor_id=sponsor, path=path, depth=d,
                     referral_code=f"B{uid:012d}") for uid, path, d, sponsor in nodes], batch_size=2000)
            MemberStats.objects.bulk_create([
                MemberStats(user_id=uid, rank=ranks[rng.choice(rank_choices)], is_pioneer=rng.random() < 0.005)
                for uid, *_ in nodes], batch_size=2000)
            MonthlyVolume.objects.bulk_create([MonthlyVolume(user_id=uid, month=month, pv=Decimal("200"))
                                               for uid, *_ in nodes if rng.random() < 0.7], batch_size=2000)
            if connection.vendor == "postgresql":
                with connection.cursor() as cur:
                    cur.execute("SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), "
                                "(SELECT MAX(id) FROM accounts_user))")
        return users


def _process_chunks(chunks) -> int:
    from mlm import tasks

    tasks.team_volume_drain_task.delay_on_commit = lambda *a, **k: None
    tasks.notifications_email_task.delay_on_commit = lambda *a, **k: None
    return sum(purchase_process_many(purchase_ids=c) for c in chunks)


def time_now():
    from django.utils import timezone

    return timezone.now()
