"""`manage.py bench_export [--rows 100000] [--format csv|xlsx|both]`: time and peak memory of
the admin's ledger export (common.exports) over N ledger rows.

The rows (one member, alternating credits and debits) are written inside a transaction that is
rolled back at the end: the database is left as it was. The export runs through the admin's own
view (the ChangeList's queryset, the streaming response), read to the end as a client would.
Peak memory is measured twice: the Python heap (tracemalloc, a separate pass) and the process's
resident set (Linux VmHWM, reset before the export)."""

from __future__ import annotations

import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

from django.contrib import admin
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import RequestFactory

from accounts.models import LedgerEntry, User, Wallet
from accounts.services import member_create

BATCH = 10_000
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


class _Rollback(Exception):
    pass


def _rss_peak_reset() -> bool:
    try:
        CLEAR_REFS.write_text("5")  # Linux: reset VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _seed(rows: int) -> User:
    member = member_create(email="bench-export@example.invalid", password=None)
    balance = Decimal(0)
    for start in range(0, rows, BATCH):
        batch = []
        for i in range(start, min(start + BATCH, rows)):
            amount = Decimal("12.34567891") if i % 2 == 0 else Decimal("-2.5")
            balance += amount
            batch.append(LedgerEntry(user_id=member.pk, wallet=Wallet.ACTIVE, amount=amount, balance_after=balance,
                                     reason=LedgerEntry.Reason.ADJUSTMENT, description=f"bench row {i}",
                                     idempotency_key=f"bench-export:{i}"))
        LedgerEntry.objects.bulk_create(batch)
    return member


def _export(fmt: str, operator: User, query: str) -> tuple[int, int]:
    model_admin = admin.site._registry[LedgerEntry]
    request = RequestFactory().get(f"/admin/accounts/ledgerentry/export/?format={fmt}&{query}")
    request.user = operator
    response = model_admin.export_view(request)
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n") if fmt == "csv" else 0
    # Not response.close(): its request_finished signal would close the connection (and so
    # the transaction holding the rows).
    return size, lines


class Command(BaseCommand):
    help = "Time and peak memory of the admin's ledger export over N rows (rolled back afterwards)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--format", choices=("csv", "xlsx", "both"), default="both")

    def handle(self, *args, rows: int, format: str, **options):  # noqa: A002 - the option's name
        if not 1 <= rows <= 5_000_000:
            raise CommandError("--rows: 1 to 5,000,000.")
        formats = ("csv", "xlsx") if format == "both" else (format,)
        self.stdout.write(f"database: {connection.vendor}; {rows:,} ledger rows (rolled back afterwards)")
        try:
            with transaction.atomic():
                started = time.perf_counter()
                member = _seed(rows)
                operator = member_create(email="bench-export-operator@example.invalid", is_staff=True,
                                         is_superuser=True)
                self.stdout.write(f"seeded in {time.perf_counter() - started:.1f} s")
                query = f"q={member.email}"  # the list's search: the export has the page's filters
                for fmt in formats:
                    self._measure(fmt, operator, query, rows)
                raise _Rollback
        except _Rollback:
            pass

    def _measure(self, fmt: str, operator: User, query: str, rows: int) -> None:
        has_rss = _rss_peak_reset()
        rss_before = _rss_peak_mb() if has_rss else None
        started = time.perf_counter()
        size, lines = _export(fmt, operator, query)
        seconds = time.perf_counter() - started
        rss = _rss_peak_mb() if has_rss else None
        if fmt == "csv" and lines != rows + 1:
            raise CommandError(f"The CSV has {lines - 1:,} rows, not {rows:,}.")
        tracemalloc.start()
        _export(fmt, operator, query)
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_text = f"{rss:.0f} MB (was {rss_before:.0f} MB before)" if rss is not None else "n/a"
        self.stdout.write(f"{fmt}: {rows:,} rows, {size / 1e6:.1f} MB in {seconds:.2f} s "
                          f"({rows / seconds:,.0f} rows/s); peak Python heap {heap_peak / 1e6:.1f} MB, "
                          f"peak RSS of the process {rss_text}")
