"""Importing historical purchases from the legacy spreadsheet.

`legacy_file_import` runs in two phases:

1. **Validate** every row, without writing anything:
   - each row alone (`_check_cells`): every column against its own rules and its model
     column (no control characters, lengths from the fields' `max_length`, e-mails as
     `member_create` checks them, strict ASCII numbers, dates from 2000 to now), and the
     projects and options loaded once;
   - then, in bulk, the values that passed (one query per 1,000 values): legacy_ids
     already imported, members that already exist — so a bad cell never reaches a query;
   - then the sponsors, across the whole file whatever the line order: a new member's
     sponsor is the one named on its first good row, and must be the root (blank), a
     member, or another new member whose own chain resolves. Unknown sponsors, sponsors
     whose rows are all refused, and cycles within the file refuse every row that
     depends on them, so a second run of the same file finds nothing more to import.
2. **Import** the good rows in `purchased_at` order (ties by line), CHUNK (500) rows per
   transaction: the chunk's new members (any sponsor the file introduces first — parents
   first, whatever the dates; `accounts.services.members_create_bulk`), its legacy purchases
   with their credits and debits (`purchases.services.purchase_grant_many`: one INSERT, ids
   in date order, one ledger batch) and their `LegacyRecord`s. After the commit
   `purchases_completed_bulk` carries the chunk to mlm (one task: processed in id order, in
   batches) and tokens (its pack-sale revenue in one INSERT) — never a task per purchase.
   A chunk the database or a service refuses (`DataError`/`IntegrityError`/`ValidationError`)
   rolls back whole and its rows are imported again one by one: a failing row rolls back
   alone and is reported; the others go on.

A file-level problem (unreadable, not a workbook, no header, not UTF-8) imports
nothing and leaves a `failed` run whose errors say why.

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
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import system_root
from accounts.services import NewMember as NewMemberSpec
from accounts.services import members_create_bulk
from common.money import MONEY_MAX
from legacy_import import parsing
from legacy_import.models import ImportRun, LegacyRecord
from legacy_import.parsing import CellError
from legacy_import.readers import file_checksum, read_rows
from purchases.models import Option, Project, Purchase
from purchases.services import Grant, purchase_grant_many

logger = logging.getLogger(__name__)

BULK = 1000
CHUNK = 500  # good rows per transaction in phase 2
LEGACY_ID_MAX = LegacyRecord._meta.get_field("legacy_id").max_length
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
    # A reason may quote a library's message: keep NUL out of it (jsonb refuses "\\u0000").
    return {"line": line, "column": column, "reason": reason.replace("\x00", "\\x00")}


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


@dataclass
class _Cells:
    """A row's cells after the checks that need no other row and no query (pass 1)."""

    line: int
    cells: dict
    legacy_id: str | None = None  # None: missing or refused
    email: str | None = None
    sponsor_email: str = ""
    first_name: str = ""
    last_name: str = ""
    option: Option | None = None
    shares: int | None = None
    unit_price: Decimal | None = None
    price: Decimal | None = None
    purchased_at: datetime | None = None
    errors: list[dict] = field(default_factory=list)


def _check_cells(line: int, cells: dict, *, catalogue: _Catalogue, root_email: str,
                 now: datetime) -> _Cells:
    """Pass 1: every column against its own rules (parsing) and the catalogue. No query."""
    row = _Cells(line=line, cells=cells)

    def fail(column: str, reason: str) -> None:
        row.errors.append(_issue(line, column, reason))

    def parse(column: str, parser, *, required: bool):
        value = cells.get(column)
        if parsing.text(value) == "":
            if required:
                fail(column, f"{column} is required")
            return None
        try:
            return parser(value)
        except CellError as exc:
            fail(column, f"{column} {exc.reason}")
            return None

    row.legacy_id = parse("legacy_id", lambda v: parsing.bounded_text(v, max_length=LEGACY_ID_MAX),
                          required=True)
    row.email = parse("email", parsing.email, required=True)
    row.sponsor_email = parse("sponsor_email", parsing.email, required=False) or ""
    row.first_name = parse("first_name", lambda v: parsing.name(v, column="first_name"), required=False) or ""
    row.last_name = parse("last_name", lambda v: parsing.name(v, column="last_name"), required=False) or ""
    project_name = parse("project", parsing.check_text, required=True)
    option_name = parse("option", parsing.check_text, required=False) or ""
    option_refused = any(e["column"] == "option" for e in row.errors)
    if project_name:
        try:
            project = catalogue.project(project_name)
        except CellError as exc:
            fail("project", exc.reason)
        else:
            if not option_refused:
                try:
                    row.option = catalogue.option(project, option_name)
                except CellError as exc:
                    fail("option", exc.reason)
    row.shares = parse("quantity", parsing.quantity, required=True)
    row.unit_price = parse("cost_per_share", parsing.price, required=True)
    row.purchased_at = parse("purchased_at", lambda v: parsing.moment(v, now=now), required=True)
    if row.shares is not None and row.unit_price is not None:
        row.price = row.shares * row.unit_price
        if row.price > MONEY_MAX:
            fail("cost_per_share", "price (quantity × cost_per_share) is too large")
    if row.email:
        if row.email == root_email:
            fail("email", "the system root does not buy")
        if row.sponsor_email == row.email:
            fail("sponsor_email", "a member cannot sponsor itself")
    return row


def _sponsor_outcomes(declared: dict[str, _Cells], users: dict[str, User],
                      buyer_lines: dict[str, list[int]]) -> dict[str, str | None]:
    """For each new member (its declaring row: its first good row), None when its sponsor
    chain reaches the root or an existing member, else why not: an unknown sponsor, a
    sponsor that is refused itself, or a cycle of sponsors within the file.

    Each new member names one sponsor, so the references form a functional graph: one
    walk up from each member, remembering the path, finds where it ends or loops. Linear.
    """
    outcome: dict[str, str | None] = {}
    for start in declared:
        path: list[str] = []
        on_path: dict[str, int] = {}
        current = start
        while current not in outcome:
            on_path[current] = len(path)
            path.append(current)
            sponsor = declared[current].sponsor_email
            if not sponsor or sponsor in users:
                outcome[current] = None
            elif sponsor in on_path:
                cycle = path[on_path[sponsor]:]
                loop = " → ".join([*cycle, sponsor])
                for member in cycle:
                    outcome[member] = f"the sponsors in this file form a cycle: {loop}"
            elif sponsor not in declared:
                outcome[current] = _unknown_sponsor(sponsor, buyer_lines)
            else:
                current = sponsor
        # Back down the path: a member is refused when its sponsor is.
        for member in reversed(path):
            if member not in outcome:
                sponsor = declared[member].sponsor_email
                outcome[member] = None if outcome[sponsor] is None else (
                    f"sponsor {sponsor!r} cannot be created: its first row "
                    f"(line {declared[sponsor].line}) is refused")
    return outcome


def plan_rows(rows: list[tuple[int, dict]], *, now: datetime) -> Plan:
    """Phase 1: validate every row and decide what would happen. Reads only, in bulk.

    Pass 1 checks each row alone; the look-ups (already imported legacy_ids, existing
    members) then take only values that passed, so a bad cell never reaches a query.
    Sponsors are resolved across the whole file, whatever the line order: a new member's
    sponsor is the one on its first good row, and must be the root (blank), a member, or
    another new member whose own chain resolves (cycles are refused).
    """
    plan = Plan(read=len(rows))
    catalogue = _Catalogue()
    root_email = system_root().email.lower()
    checked = [_check_cells(line, cells, catalogue=catalogue, root_email=root_email, now=now)
               for line, cells in rows]

    lines_by_id: dict[str, list[int]] = defaultdict(list)
    emails: set[str] = set()
    for row in checked:
        if row.legacy_id:
            lines_by_id[row.legacy_id].append(row.line)
        emails.update(e for e in (row.email, row.sponsor_email) if e)
    records = _existing_records(lines_by_id)
    plan.users = users = _existing_users(emails)

    candidates: list[_Cells] = []
    buyer_lines: dict[str, list[int]] = defaultdict(list)
    for row in checked:
        if row.email:
            buyer_lines[row.email].append(row.line)
        if row.legacy_id and len(lines_by_id[row.legacy_id]) > 1:
            others = ", ".join(str(n) for n in lines_by_id[row.legacy_id])
            row.errors.insert(0, _issue(row.line, "legacy_id", (
                f"duplicate legacy_id {row.legacy_id!r} on lines {others}: every occurrence is refused")))
        elif row.legacy_id in records:
            _note_skip(plan, row.line, row.legacy_id, records[row.legacy_id], row.cells)
            continue
        if row.errors:
            _refuse(plan, row.errors)
        else:
            candidates.append(row)

    declared: dict[str, _Cells] = {}
    for row in candidates:
        if row.email not in users:
            declared.setdefault(row.email, row)
    outcome = _sponsor_outcomes(declared, users, buyer_lines)

    for row in candidates:
        email, sponsor_email = row.email, row.sponsor_email
        first = declared.get(email)
        if first is not None and outcome[email] is not None:
            if first is row:
                _refuse(plan, [_issue(row.line, "sponsor_email", outcome[email])])
            else:
                _refuse(plan, [_issue(row.line, "email", (
                    f"{email} cannot be created: its first row (line {first.line}) is refused"))])
            continue
        if sponsor_email and sponsor_email not in users and outcome.get(sponsor_email, "") is not None:
            # The named sponsor of a known buyer, or of a later row of a new one, is refused.
            reason = outcome.get(sponsor_email) and (
                f"sponsor {sponsor_email!r} cannot be created: its first row "
                f"(line {declared[sponsor_email].line}) is refused")
            _refuse(plan, [_issue(row.line, "sponsor_email",
                                  reason or _unknown_sponsor(sponsor_email, buyer_lines))])
            continue
        if first is None:
            user = users[email]
            if sponsor_email and (user.sponsor is None or user.sponsor.email.lower() != sponsor_email):
                current = user.sponsor.email if user.sponsor else "none"
                plan.warnings.append(_issue(row.line, "sponsor_email", (
                    f"{email} is already a member sponsored by {current}; "
                    f"the file's sponsor {sponsor_email} is ignored")))
        elif first is not row and sponsor_email and sponsor_email != first.sponsor_email:
            plan.warnings.append(_issue(row.line, "sponsor_email", (
                f"{email} is introduced on line {first.line} with sponsor "
                f"{first.sponsor_email or 'the root'}; this line's sponsor {sponsor_email} is ignored")))
        plan.rows.append(GoodRow(line=row.line, legacy_id=row.legacy_id, email=email, option=row.option,
                                 shares=row.shares, unit_price=row.unit_price, price=row.price,
                                 purchased_at=row.purchased_at, new_member=first is not None))

    # New members, parents first: a member's sponsor is the root, a member, or one before it.
    for email in _parents_first(declared, outcome):
        row = declared[email]
        plan.new_members[email] = NewMember(email=email, sponsor_email=row.sponsor_email,
                                            first_name=row.first_name, last_name=row.last_name,
                                            line=row.line)
    plan.rows.sort(key=lambda r: (r.purchased_at, r.line))
    return plan


def _unknown_sponsor(sponsor: str, buyer_lines: dict[str, list[int]]) -> str:
    if sponsor in buyer_lines:
        lines = ", ".join(str(n) for n in buyer_lines[sponsor][:10])
        return (f"sponsor {sponsor!r} is not a member, and its own rows in this file "
                f"(line {lines}) are refused")
    return f"unknown sponsor {sponsor!r}: not a member and not the buyer of any row in this file"


def _refuse(plan: Plan, errors: list[dict]) -> None:
    plan.errors.extend(errors)
    plan.failed_lines.add(errors[0]["line"])


def _parents_first(declared: dict[str, _Cells], outcome: dict[str, str | None]) -> list[str]:
    """The accepted new members in a topological order of their sponsor references."""
    order: list[str] = []
    placed: set[str] = set()
    for start in declared:
        chain = []
        current = start
        while current in declared and current not in placed and outcome[current] is None:
            chain.append(current)
            current = declared[current].sponsor_email
        for email in reversed(chain):
            placed.add(email)
            order.append(email)
    return order


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
    """Phase 2: the good rows in purchased_at order, CHUNK rows per transaction.

    A chunk is one transaction: its new members (parents first, `members_create_bulk`), its
    purchases with their credits and debits (`purchase_grant_many`: one INSERT, one ledger
    batch, `purchases_completed_bulk` after the commit — mlm processes the chunk in id order,
    tokens records its revenue), and its `LegacyRecord`s. When the database (or a service)
    refuses anything in a chunk, the chunk rolls back whole and its rows are imported again
    one by one (chunks of one), so only the bad row fails and the good ones still go in.
    """

    def __init__(self, plan: Plan, run: ImportRun, chunk_size: int | None = None):
        self.plan = plan
        self.run = run
        self.users = dict(plan.users)
        self.chunk_size = chunk_size or CHUNK

    def _new_members(self, rows: list[GoodRow]) -> list[NewMemberSpec]:
        """The members these rows need that do not exist yet, parents first (a missing sponsor
        the file introduces comes before its downline, whatever the dates)."""
        wanted: list[NewMemberSpec] = []
        placed: set[str] = set()
        for row in rows:
            chain: list[NewMember] = []
            cursor = row.email
            while cursor and cursor not in self.users and cursor not in placed:
                spec = self.plan.new_members[cursor]
                chain.append(spec)
                cursor = spec.sponsor_email
            for spec in reversed(chain):
                placed.add(spec.email)
                sponsor = spec.sponsor_email
                wanted.append(NewMemberSpec(email=spec.email,
                                            sponsor=(self.users.get(sponsor) or sponsor) if sponsor else None,
                                            first_name=spec.first_name, last_name=spec.last_name))
        return wanted

    def import_chunk(self, rows: list[GoodRow]) -> list[str]:
        """'imported' or 'skipped' per row; raises on failure (the chunk rolled back whole)."""
        with transaction.atomic():
            fresh = {u.email: u for u in members_create_bulk(members=self._new_members(rows))}
            users = {**self.users, **fresh}
            granted = purchase_grant_many(grants=[
                Grant(user_id=users[row.email].pk, option=row.option, shares=row.shares, price=row.price,
                      kind=Purchase.Kind.LEGACY, idempotency_key=f"legacy:{row.legacy_id}",
                      purchased_at=row.purchased_at,
                      description=f"Legacy {row.legacy_id}: {row.shares} × {row.option} at {row.unit_price}")
                for row in rows])
            LegacyRecord.objects.bulk_create([
                LegacyRecord(legacy_id=row.legacy_id, purchase=purchase, run=self.run, line=row.line)
                for row, (purchase, _) in zip(rows, granted, strict=True)])
        self.users.update(fresh)
        self.run.members_created += len(fresh)
        outcomes = []
        for row, (purchase, created) in zip(rows, granted, strict=True):
            if not created:
                # The purchase was there without its record (recorded now): nothing new was bought.
                self.run.warnings.append(_issue(row.line, "legacy_id", (
                    f"purchase #{purchase.pk} with key legacy:{row.legacy_id} already existed; "
                    "linked to this legacy_id and skipped")))
            outcomes.append("imported" if created else "skipped")
        return outcomes

    def import_row(self, row: GoodRow) -> str:
        """One row alone (a chunk of one): 'imported', 'skipped' or 'failed' (reported)."""
        try:
            return self.import_chunk([row])[0]
        except (IntegrityError, DataError) as exc:
            # The row's transaction rolled back whole; the connection is usable again.
            if (isinstance(exc, IntegrityError)
                    and LegacyRecord.objects.filter(legacy_id=row.legacy_id).exists()):
                return "skipped"  # imported meanwhile by a concurrent run
            logger.warning("legacy row %s (line %s) refused by the database: %s", row.legacy_id, row.line, exc)
            self._fail(row, f"the database refused the row ({_db_reason(exc)}); nothing of it was written")
        except ValidationError as exc:
            self._fail(row, "; ".join(exc.messages))
        return "failed"

    def run_all(self, progress=None) -> None:
        bar = progress(len(self.plan.rows)) if progress else None
        try:
            for rows in _chunks(self.plan.rows, self.chunk_size):
                try:
                    outcomes = self.import_chunk(rows) if len(rows) > 1 else [self.import_row(rows[0])]
                except (IntegrityError, DataError, ValidationError) as exc:
                    logger.info("legacy chunk of lines %s…%s refused (%s): importing its rows one by one",
                                rows[0].line, rows[-1].line, type(exc).__name__)
                    outcomes = [self.import_row(row) for row in rows]
                for outcome in outcomes:
                    setattr(self.run, outcome, getattr(self.run, outcome) + 1)
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()

    def _fail(self, row: GoodRow, reason: str) -> None:
        self.run.errors.append(_issue(row.line, "", f"{row.legacy_id}: {reason}"))


def _db_reason(exc: Exception) -> str:
    """The first line of a database error: what was refused, without the SQL."""
    kind = "integrity error" if isinstance(exc, IntegrityError) else "data error"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{kind}: {first[:200]}" if first else kind


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
    run = ImportRun(file_name=(file_name or path.name)[:255], checksum="",
                    sheet=(sheet or "")[:100], dry_run=dry_run, created_by=user, started_at=now)
    run.plan = None
    try:
        try:
            run.checksum = file_checksum(path)
            if not dry_run:
                run.save()
            rows = list(read_rows(path, sheet=sheet))
        except (ValidationError, OSError) as exc:
            # A file-level refusal: nothing imported, the run kept as failed with the reason.
            run.errors = [_issue(None, "", message) for message in _file_messages(exc)]
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
    except BaseException as exc:
        # A bug or an interruption: the run says so (rows already committed stay committed).
        run.status = ImportRun.Status.FAILED
        run.errors.append(_issue(None, "", f"stopped by an unexpected error: {type(exc).__name__}: {exc}"))
        raise
    finally:
        run.finished_at = timezone.now()
        run.errors = sorted(run.errors, key=lambda e: (e["line"] or 0))[:MAX_REPORTED]
        run.warnings = run.warnings[:MAX_REPORTED]
        if not dry_run:
            run.save()
    return run


def _file_messages(exc: ValidationError | OSError) -> list[str]:
    if isinstance(exc, ValidationError):
        return exc.messages
    return [f"Cannot read the file: {exc.strerror or exc}."]
