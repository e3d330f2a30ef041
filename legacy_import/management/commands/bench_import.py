"""`python manage.py bench_import --rows 50000`: generate a legacy file (a sponsor network,
several projects, dates in random order) and import it with full processing.

Celery runs eagerly for the benchmark, so each chunk's `purchases_completed_bulk` is
processed by the mlm app inline (its task: `purchase_process_many`, then the team-volume
drain) and tokens records the chunk's revenue, right after the chunk commits. The time spent
inside the signals is measured apart: the figures are rows/s for the import alone,
purchases/s for processing, rows/s end to end, SQL statements per row, and `check_ledger`.
Bonus e-mails go to the dummy backend (a worker sends them in production). Each run uses
fresh e-mails and legacy_ids (a random tag), so it can be repeated on the same database.
Do not run it on a production database.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from legacy_import.management.commands.import_legacy import report_lines
from legacy_import.services import legacy_file_import
from purchases.models import Option, Project, Purchase
from purchases.signals import purchase_completed, purchases_completed_bulk

PROJECTS = [("BENCH-ALPHA", Decimal("0.05")), ("BENCH-BETA", Decimal("0.03")),
            ("BENCH-GAMMA", Decimal("0.10")), ("BENCH-DELTA", Decimal("0.02"))]


class Command(BaseCommand):
    help = "Benchmark import_legacy with full processing on a generated file."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=50_000)
        parser.add_argument("--members", type=int, default=None, help="default: rows / 5")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--no-processing", action="store_true",
                            help="import only: the signal is not sent (purchases stay unprocessed "
                                 "until mlm's sweep picks them up)")

    def handle(self, *args, rows, members, seed, no_processing, **options):
        if rows < 1:
            raise CommandError("--rows must be at least 1.")
        members = max(1, min(members or rows // 5, rows))
        rng = random.Random(seed)
        tag = secrets.token_hex(3)
        options_by_project = self._catalogue()
        path = self._generate(rng, tag, rows, members, options_by_project)
        self.stdout.write(f"generated {path} ({rows} rows, {members} members, "
                          f"{len(PROJECTS)} projects) on {connection.vendor}")

        from config.celery import app as celery_app

        eager = celery_app.conf.task_always_eager
        celery_app.conf.task_always_eager = True
        in_signal = [0.0, 0]
        signals = [purchase_completed, purchases_completed_bulk]
        originals = [sig.send_robust for sig in signals]

        def timed(original, many: bool):
            def send(*a, **kw):
                if no_processing:
                    return []
                start = time.perf_counter()
                try:
                    return original(*a, **kw)
                finally:
                    in_signal[0] += time.perf_counter() - start
                    in_signal[1] += len(kw["purchases"]) if many else 1
            return send

        for sig, original in zip(signals, originals, strict=True):
            sig.send_robust = timed(original, sig is purchases_completed_bulk)
        statements = [0]

        def count(execute, sql, params, many, context):
            statements[0] += 1
            return execute(sql, params, many, context)

        def progress(total):
            from tqdm import tqdm

            return tqdm(total=total, unit="row", desc="importing", file=sys.stderr,
                        disable=not sys.stderr.isatty())

        try:
            # E-mails of the bonus notifications go nowhere (a worker sends them in production).
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"), \
                    connection.execute_wrapper(count):
                started = time.perf_counter()
                run = legacy_file_import(path=path, progress=progress)
                total = time.perf_counter() - started
        finally:
            for sig in signals:
                del sig.send_robust  # back to the class method
            celery_app.conf.task_always_eager = eager
        for line in report_lines(run, limit=10):
            self.stdout.write(line)
        processing, processed = in_signal
        importing = total - processing
        self.stdout.write(f"import:     {run.imported} rows in {importing:.2f} s = "
                          f"{run.imported / importing:.0f} rows/s (validation + writes, processing excluded)")
        if processed:
            from mlm.models import Bonus

            bonuses = Bonus.objects.filter(purchase__legacy_record__run=run).count()
            self.stdout.write(f"processing: {processed} purchases in {processing:.2f} s = "
                              f"{processed / processing:.0f} purchases/s ({bonuses} bonuses; mlm tasks run "
                              "eagerly, pack-sale revenue included)")
        self.stdout.write(f"end to end: {run.read} rows in {total:.2f} s = {run.read / total:.0f} rows/s")
        self.stdout.write(f"statements: {statements[0]} = {statements[0] / max(run.read, 1):.1f} per row")
        depth = Purchase.objects.filter(legacy_record__run=run).values_list("user__depth", flat=True)
        depths = list(depth)
        if depths:
            self.stdout.write(f"network depth of buyers: max {max(depths)}, mean {sum(depths) / len(depths):.1f}")
        out = io.StringIO()
        try:
            call_command("check_ledger", stdout=out, stderr=out)
        except (CommandError, SystemExit):
            self.stdout.write("check_ledger: FAILED\n" + out.getvalue())
            raise CommandError("check_ledger failed after the import.") from None
        self.stdout.write("check_ledger: OK")

    def _catalogue(self) -> dict[str, tuple[Option, Decimal]]:
        result = {}
        for name, unit in PROJECTS:
            project, _ = Project.objects.get_or_create(name=name)
            option, _ = Option.objects.get_or_create(
                project=project, name="Pack 1000",
                defaults={"pack_shares": 1000, "pack_price": unit * 1000})
            result[name] = (option, option.unit_price)
        return result

    def _generate(self, rng, tag, rows, members, catalogue) -> Path:
        directory = Path(settings.LEGACY_IMPORT_UPLOAD_DIR) / "bench"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"bench-{tag}.csv"
        now = timezone.now().replace(microsecond=0)
        names = list(catalogue)

        def email(i):
            return f"bench-{tag}-{i}@example.com"

        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["legacy_id", "email", "sponsor_email", "first_name", "last_name",
                             "project", "option", "quantity", "cost_per_share", "purchased_at"])
            for n in range(rows):
                if n < members:  # each member's first row, in sponsor order
                    buyer = n
                    sponsor = "" if n == 0 or rng.random() < 0.02 else email(rng.randrange(n))
                else:
                    buyer, sponsor = rng.randrange(members), ""
                project = rng.choice(names)
                unit = catalogue[project][1]
                quantity = rng.choice([1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000])
                when = now - timedelta(days=rng.randrange(1, 730), seconds=rng.randrange(86_400))
                writer.writerow([f"BENCH-{tag}-{n}", email(buyer), sponsor, "Bench", str(buyer),
                                 project, "", f"{quantity:,}", str(unit), when.isoformat()])
        return path
