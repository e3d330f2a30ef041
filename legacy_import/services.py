"""Importing historical purchases from the legacy spreadsheet.

`legacy_file_import` runs in two phases:

1. **Validate** every row, in file order, against data loaded in bulk up front
   (projects and options once, existing members and already-imported
   legacy_ids with one query per 1,000 values). File order matters for
   sponsors: a `sponsor_email` must be a member already, or the buyer of a
   *good* row on an earlier line. Nothing is written in this phase.
2. **Import** the good rows in `purchased_at` order (ties by line). Each row is
   one transaction: the buyer (and, first, any sponsor the file introduces that
   does not exist yet — dependency order, whatever the dates), the legacy
   purchase through `purchases.services.purchase_grant` (credit + debit on the
   active wallet, `purchase_completed` after commit) and its `LegacyRecord`.
   A failing row rolls back alone; the others go on.

A dry run does phase 1 only and writes nothing at all — not even its
`ImportRun`: the returned run is unsaved and carries the plan.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import system_root
from accounts.services import member_create
from common.money import MONEY_MAX
from legacy_import import parsing
from legacy_import.models import ImportRun, LegacyRecord
from legacy_import.parsing import CellError
from legacy_import.readers import file_checksum, read_rows
from purchases.models import Option, Project, Purchase
from purchases.services import purchase_grant

logger = logging.getLogger(__name__)

BULK = 1000
LEGACY_ID_MAX = 100
MAX_REPORTED = 10_000  # errors/warnings kept on a run (a whole bad file must not bloat the row)


@dataclass
class GoodRow:
    line: int
    legacy_id: str
    email: str
    option: Option
    shares: int
    unit_price: Decimal
    price: Decimal
    purchased_at: datetime
    new_member: bool  # the buyer does not exist yet (created by the row that first needs it)


@dataclass
class NewMember:
    email: str
    sponsor_email: str  # "" → the system root
    first_name: str
    last_name: str
    line: int


@dataclass
class Plan:
    rows: list[GoodRow] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, legacy_id)
    new_members: dict[str, NewMember] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)  # existing members by lower-case e-mail
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    failed_lines: set[int] = field(default_factory=set)
    read: int = 0


def _issue(line: int | None, column: str, reason: str) -> dict:
    return {"line": line, "column": column, "reason": reason}


def _chunks(values: Iterable, size: int = BULK):
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i:i + size]


class _Catalogue:
    """Projects and options, loaded once."""

    def __init__(self):
        self.projects: dict[str, Project] = {}
        by_lower: dict[str, list[Project]] = defaultdict(list)
        for project in Project.objects.all():
            self.projects[project.name] = project
            by_lower[project.name.lower()].append(project)
        self.by_lower = by_lower
        self.options: dict[int, dict[str, list[Option]]] = defaultdict(lambda: defaultdict(list))
        cheapest: dict[int, Option] = {}
        for option in Option.objects.select_related("project"):
            self.options[option.project_id][option.name.lower()].append(option)
            if option.is_active:
                best = cheapest.get(option.project_id)
                if best is None or (option.unit_price, option.pk) < (best.unit_price, best.pk):
                    cheapest[option.project_id] = option
        self.cheapest = cheapest

    def project(self, name: str) -> Project:
        if name in self.projects:
            return self.projects[name]
        found = self.by_lower.get(name.lower(), [])
        if len(found) == 1:
            return found[0]
        if found:
            raise CellError(f"project {name!r} is ambiguous (names differ only by case): use the exact name")
        raise CellError(f"unknown project {name!r}")

    def option(self, project: Project, name: str) -> Option:
        if not name:
            option = self.cheapest.get(project.pk)
            if option is None:
                raise CellError(f"project {project.name!r} has no active option: name the option")
            return option
        found = self.options[project.pk].get(name.lower(), [])
        exact = [o for o in found if o.name == name]
        if len(exact) == 1 or len(found) == 1:
            return (exact or found)[0]
        if found:
            raise CellError(f"option {name!r} is ambiguous in project {project.name!r}: use the exact name")
        raise CellError(f"unknown option {name!r} in project {project.name!r}")


def _existing_users(emails: set[str]) -> dict[str, User]:
    users: dict[str, User] = {}
    for chunk in _chunks(emails):
        for user in User.objects.filter(email__in=chunk).select_related("sponsor"):
            users[user.email.lower()] = user
    return users


def _existing_records(legacy_ids: Iterable[str]) -> dict[str, LegacyRecord]:
    records: dict[str, LegacyRecord] = {}
    for chunk in _chunks(legacy_ids):
        for record in LegacyRecord.objects.filter(legacy_id__in=chunk).select_related("purchase__user"):
            records[record.legacy_id] = record
    return records


def plan_rows(rows: list[tuple[int, dict]], *, now: datetime) -> Plan:
    """Phase 1: validate every row (file order) and decide what would happen. Reads only."""
    plan = Plan(read=len(rows))
    lines_by_id: dict[str, list[int]] = defaultdict(list)
    emails: set[str] = set()
    for line, cells in rows:
        legacy_id = parsing.text(cells.get("legacy_id"))
        if legacy_id:
            lines_by_id[legacy_id].append(line)
        for column in ("email", "sponsor_email"):
            value = parsing.text(cells.get(column)).lower()
            if value:
                emails.add(value)
    records = _existing_records(lines_by_id)
    plan.users = users = _existing_users(emails)
    catalogue = _Catalogue()
    root_email = system_root().email.lower()

    for line, cells in rows:
        row_errors: list[dict] = []

        def fail(column: str, reason: str, _errors=row_errors, _line=line) -> None:
            _errors.append(_issue(_line, column, reason))

        def parse(column: str, parser, *, required: bool, _cells=cells):
            value = _cells.get(column)
            if parsing.text(value) == "":
                if required:
                    fail(column, f"{column} is required")
                return None
            try:
                return parser(value)
            except CellError as exc:
                fail(column, f"{column} {exc.reason}")
                return None

        legacy_id = parsing.text(cells.get("legacy_id"))
        if not legacy_id:
            fail("legacy_id", "legacy_id is required")
        elif len(legacy_id) > LEGACY_ID_MAX:
            fail("legacy_id", f"legacy_id is longer than {LEGACY_ID_MAX} characters")
        elif len(lines_by_id[legacy_id]) > 1:
            others = ", ".join(str(n) for n in lines_by_id[legacy_id])
            fail("legacy_id", f"duplicate legacy_id {legacy_id!r} on lines {others}: "
                              "every occurrence is refused")
        elif legacy_id in records:
            _note_skip(plan, line, legacy_id, records[legacy_id], cells)
            continue

        email = parse("email", parsing.email, required=True)
        sponsor_email = parse("sponsor_email", parsing.email, required=False) or ""
        first_name = parsing.text(cells.get("first_name"))[:150]
        last_name = parsing.text(cells.get("last_name"))[:150]
        project_name = parsing.text(cells.get("project"))
        option = None
        if not project_name:
            fail("project", "project is required")
        else:
            try:
                project = catalogue.project(project_name)
            except CellError as exc:
                fail("project", exc.reason)
            else:
                try:
                    option = catalogue.option(project, parsing.text(cells.get("option")))
                except CellError as exc:
                    fail("option", exc.reason)
        shares = parse("quantity", parsing.quantity, required=True)
        unit_price = parse("cost_per_share", parsing.price, required=True)
        purchased_at = parse("purchased_at", lambda v: parsing.moment(v, now=now), required=True)
        price = None
        if shares is not None and unit_price is not None:
            price = shares * unit_price
            if price > MONEY_MAX:
                fail("cost_per_share", "price (quantity × cost_per_share) is too large")

        if email:
            if email == root_email:
                fail("email", "the system root does not buy")
            if sponsor_email and sponsor_email == email:
                fail("sponsor_email", "a member cannot sponsor itself")
            elif sponsor_email and sponsor_email not in users and sponsor_email not in plan.new_members:
                fail("sponsor_email", f"unknown sponsor {sponsor_email!r}: not a member and not the "
                                      "buyer of a good row on an earlier line")

        if row_errors:
            plan.errors.extend(row_errors)
            plan.failed_lines.add(line)
            continue

        if email in users:
            user = users[email]
            if sponsor_email and (user.sponsor is None or user.sponsor.email.lower() != sponsor_email):
                current = user.sponsor.email if user.sponsor else "none"
                plan.warnings.append(_issue(line, "sponsor_email", (
                    f"{email} is already a member sponsored by {current}; "
                    f"the file's sponsor {sponsor_email} is ignored")))
            new_member = False
        elif email in plan.new_members:
            first = plan.new_members[email]
            if sponsor_email and sponsor_email != first.sponsor_email:
                plan.warnings.append(_issue(line, "sponsor_email", (
                    f"{email} is introduced on line {first.line} with sponsor "
                    f"{first.sponsor_email or 'the root'}; this line's sponsor {sponsor_email} is ignored")))
            new_member = True
        else:
            plan.new_members[email] = NewMember(email=email, sponsor_email=sponsor_email,
                                                first_name=first_name, last_name=last_name, line=line)
            new_member = True
        plan.rows.append(GoodRow(line=line, legacy_id=legacy_id, email=email, option=option,
                                 shares=shares, unit_price=unit_price, price=price,
                                 purchased_at=purchased_at, new_member=new_member))

    plan.rows.sort(key=lambda r: (r.purchased_at, r.line))
    return plan


def _note_skip(plan: Plan, line: int, legacy_id: str, record: LegacyRecord, cells: dict) -> None:
    plan.skipped.append((line, legacy_id))
    purchase = record.purchase
    email = parsing.text(cells.get("email")).lower()
    try:
        shares = parsing.quantity(cells.get("quantity"))
        price = shares * parsing.price(cells.get("cost_per_share"))
    except CellError:
        shares = price = None
    if email != purchase.user.email.lower() or shares != purchase.shares or price != purchase.price:
        plan.warnings.append(_issue(line, "legacy_id", (
            f"{legacy_id} was already imported (purchase #{purchase.pk}: {purchase.user.email}, "
            f"{purchase.shares} shares for {purchase.price}) and this row differs; skipped")))


class _Importer:
    """Phase 2: one transaction per good row, in purchased_at order."""

    def __init__(self, plan: Plan, run: ImportRun):
        self.plan = plan
        self.run = run
        self.users = dict(plan.users)
        self.root = system_root()

    def _member(self, email: str, fresh: dict[str, User]) -> User:
        """The buyer, creating it — after any sponsor the file introduces that is missing."""
        chain: list[NewMember] = []
        cursor = email
        while cursor and cursor not in self.users and cursor not in fresh:
            spec = self.plan.new_members[cursor]
            chain.append(spec)
            cursor = spec.sponsor_email
        for spec in reversed(chain):
            sponsor_email = spec.sponsor_email
            sponsor = (self.users.get(sponsor_email) or fresh.get(sponsor_email)) if sponsor_email else self.root
            fresh[spec.email] = member_create(email=spec.email, sponsor=sponsor,
                                              first_name=spec.first_name, last_name=spec.last_name)
        return self.users.get(email) or fresh[email]

    def import_row(self, row: GoodRow) -> str:
        """'imported' or 'skipped'; raises on failure (the row's transaction rolled back)."""
        fresh: dict[str, User] = {}
        with transaction.atomic():
            user = self._member(row.email, fresh)
            purchase, created = purchase_grant(
                user=user, option=row.option, shares=row.shares, price=row.price,
                kind=Purchase.Kind.LEGACY, idempotency_key=f"legacy:{row.legacy_id}",
                purchased_at=row.purchased_at,
                description=f"Legacy {row.legacy_id}: {row.shares} × {row.option} at {row.unit_price}")
            LegacyRecord.objects.create(legacy_id=row.legacy_id, purchase=purchase, run=self.run,
                                        line=row.line)
        self.users.update(fresh)
        self.run.members_created += len(fresh)
        if not created:
            # The purchase was there without its record (recorded now): nothing new was bought.
            self.run.warnings.append(_issue(row.line, "legacy_id", (
                f"purchase #{purchase.pk} with key legacy:{row.legacy_id} already existed; "
                "linked to this legacy_id and skipped")))
            return "skipped"
        return "imported"

    def run_all(self, progress=None) -> None:
        bar = progress(len(self.plan.rows)) if progress else None
        try:
            for row in self.plan.rows:
                try:
                    outcome = self.import_row(row)
                except IntegrityError:
                    if LegacyRecord.objects.filter(legacy_id=row.legacy_id).exists():
                        outcome = "skipped"  # imported meanwhile by a concurrent run
                    else:
                        logger.exception("legacy row %s (line %s) failed", row.legacy_id, row.line)
                        self._fail(row, "database refused the row (integrity error); nothing was written")
                        outcome = "failed"
                except ValidationError as exc:
                    self._fail(row, "; ".join(exc.messages))
                    outcome = "failed"
                setattr(self.run, outcome, getattr(self.run, outcome) + 1)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    def _fail(self, row: GoodRow, reason: str) -> None:
        self.run.errors.append(_issue(row.line, "", f"{row.legacy_id}: {reason}"))


def legacy_file_import(*, path: str | Path, dry_run: bool = False, sheet: str | None = None,
                       user: User | None = None, file_name: str | None = None,
                       progress: Callable | None = None, now: datetime | None = None) -> ImportRun:
    """Import the legacy export at `path` (CSV or XLSX; `sheet` picks an XLSX sheet, default
    the first). Returns the `ImportRun` with `read`, `imported`, `skipped`, `failed`,
    `errors` ([{line, column, reason}]) and `warnings`; `run.plan` is the validation plan.

    `dry_run=True` validates and reports what would happen (imported/skipped are "would
    import"/"would skip") and writes nothing, not even the run (returned unsaved).
    `progress(total)` may return a tqdm-like object (`update(n)`, `close()`).
    """
    path = Path(path)
    now = now or timezone.now()
    run = ImportRun(file_name=(file_name or path.name)[:255], checksum=file_checksum(path),
                    sheet=sheet or "", dry_run=dry_run, created_by=user, started_at=now)
    if not dry_run:
        run.save()
    run.plan = None
    try:
        try:
            rows = list(read_rows(path, sheet=sheet))
        except ValidationError as exc:
            run.errors = [_issue(None, "", message) for message in exc.messages]
            run.status = ImportRun.Status.FAILED
            return run
        plan = run.plan = plan_rows(rows, now=now)
        run.read = plan.read
        run.errors = list(plan.errors)
        run.warnings = list(plan.warnings)
        run.failed = len(plan.failed_lines)
        run.skipped = len(plan.skipped)
        if dry_run:
            run.imported = len(plan.rows)
            run.members_created = len(plan.new_members)
        else:
            _Importer(plan, run).run_all(progress)
        run.status = ImportRun.Status.DONE
    except BaseException:
        run.status = ImportRun.Status.FAILED
        raise
    finally:
        run.finished_at = timezone.now()
        run.errors = sorted(run.errors, key=lambda e: (e["line"] or 0))[:MAX_REPORTED]
        run.warnings = run.warnings[:MAX_REPORTED]
        if not dry_run:
            run.save()
    return run
