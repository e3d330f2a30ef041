"""The import never aborts on one row, reads numbers strictly, and resolves sponsors across
the whole file (issue 8, items 7–9): one test per repro of the hostile run."""

import os
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import User
from accounts.selectors import ledger_mismatches, system_root
from accounts.services import member_create
from legacy_import.models import ImportRun, LegacyRecord
from legacy_import.services import legacy_file_import
from purchases.models import Purchase
from tests.legacy_import.conftest import csv_to_xlsx

pytestmark = pytest.mark.django_db

HEADER = "legacy_id,email,sponsor_email,first_name,last_name,project,quantity,cost_per_share,purchased_at"
REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, *rows: str, name: str = "file.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def row(legacy_id, email, *, sponsor="", first="", last="", quantity="10", cost="1",
        when="2024-01-01") -> str:
    return ",".join([legacy_id, email, sponsor, first, last, "JETUP", quantity, cost, when])


def counts(run):
    return run.read, run.imported, run.skipped, run.failed


def errors_by_cell(run):
    return {(e["line"], e["column"]): e["reason"] for e in run.errors}


def long_email(length: int) -> str:
    """A syntactically valid address of exactly `length` characters (labels ≤ 63)."""
    local, tld = "a" * 64, ".com"
    rest = length - len(local) - 1 - len(tld)
    labels = []
    while rest > 0:
        size = min(60, rest)
        if rest - size == 1:  # never leave a lone dot
            size -= 2
        labels.append("b" * size)
        rest -= size + 1  # the label and its dot
    address = f"{local}@{'.'.join(labels)}{tld}"
    assert len(address) == length, len(address)
    return address


# --- item 8: every field against its column --------------------------------------------------

def test_email_over_254_characters_is_a_row_error_and_the_run_goes_on(catalogue, tmp_path):
    too_long, longest = long_email(255), long_email(254)
    path = write(tmp_path,
                 row("E-1", too_long),
                 row("E-2", longest),
                 row("E-3", "ok@example.com", sponsor=too_long))
    for _attempt in range(2):  # a re-run stops at the same row no more
        run = legacy_file_import(path=path)
        errors = errors_by_cell(run)
        assert set(errors) == {(2, "email"), (4, "sponsor_email")}
        assert "longer than 254 characters (255)" in errors[(2, "email")]
        assert "longer than 254" in errors[(4, "sponsor_email")]
        assert run.status == ImportRun.Status.DONE
    assert User.objects.filter(email=longest).exists()  # 254 fits the column
    assert list(LegacyRecord.objects.values_list("legacy_id", flat=True)) == ["E-2"]


NUL_ROWS = [
    row("Z-1", "ok@example.com", first="An\x00na"),          # a name
    row("Z-2", "nul\x00@example.com"),                       # the e-mail (a bulk look-up value)
    row("Z-3\x00", "other@example.com"),                     # the legacy_id (a bulk look-up value)
    row("Z-4", "third@example.com", sponsor="ok@example.com\x00"),
    "Z-5,fourth@example.com,,,,JET\x00UP,10,1,2024-01-01",  # the project
    row("Z-6", "fifth@example.com", quantity="1\x000"),
    row("Z-7", "sixth@example.com", when="2024-01-01\x00"),
    row("Z-8", "good@example.com", first="Line\nbreak"),     # a quoted cell with a line break
]
NUL_CELLS = {(2, "first_name"), (3, "email"), (4, "legacy_id"), (5, "sponsor_email"),
             (6, "project"), (7, "quantity"), (8, "purchased_at")}


def nul_file(tmp_path) -> Path:
    rows = [r if "\n" not in r else r.replace("Line\nbreak", '"Line\nbreak"') for r in NUL_ROWS]
    return write(tmp_path, *rows, row("Z-9", "good@example.com", when="2024-02-01"))


@pytest.mark.parametrize("dry_run", [True, False])
def test_nul_byte_in_any_cell_is_a_row_error(catalogue, tmp_path, dry_run):
    run = legacy_file_import(path=nul_file(tmp_path), dry_run=dry_run)
    errors = errors_by_cell(run)
    # The quoted line break starts at line 9 and ends on line 10: Z-9 is line 11.
    assert set(errors) == NUL_CELLS | {(9, "first_name")}
    assert all("control character" in errors[cell] for cell in NUL_CELLS)
    assert "U+0000" in errors[(2, "first_name")] and "U+000A" in errors[(9, "first_name")]
    assert counts(run) == (9, 1, 0, 8)
    assert Purchase.objects.count() == (0 if dry_run else 1)
    assert ImportRun.objects.count() == (0 if dry_run else 1)
    if not dry_run:
        assert ImportRun.objects.get().errors == run.errors  # the report is storable as jsonb


@pytest.mark.parametrize("dry_run", [True, False])
def test_nul_byte_through_the_command(catalogue, tmp_path, capsys, dry_run):
    args = [str(nul_file(tmp_path))] + (["--dry-run"] if dry_run else [])
    with pytest.raises(CommandError) as excinfo:
        call_command("import_legacy", *args)
    assert excinfo.value.returncode == 1 and str(excinfo.value) == "8 row(s) failed"
    captured = capsys.readouterr()
    assert "line 3, column email: email contains a control character (U+0000)" in captured.err
    assert ("would import 1" if dry_run else "imported 1") in captured.out


def test_purchase_date_before_2000_is_a_row_error(catalogue, tmp_path):
    path = write(tmp_path,
                 row("Y-1", "a@example.com", when="0001-01-01"),
                 row("Y-2", "a@example.com", when="0001-01-01T00:00:00+02:00"),  # before year 1 in UTC
                 row("Y-3", "a@example.com", when="1999-12-31T23:59:59"),
                 row("Y-4", "a@example.com", when="9999-12-31T23:00:00-05:00"),  # after year 9999 in UTC
                 row("Y-5", "a@example.com", when="٢٠٢٤-٠١-٠١"),
                 row("Y-6", "a@example.com", when="2000-01-01"))
    run = legacy_file_import(path=path)
    errors = errors_by_cell(run)
    assert set(errors) == {(n, "purchased_at") for n in range(2, 7)}
    assert "before 2000-01-01" in errors[(2, "purchased_at")]
    assert "out of range" in errors[(3, "purchased_at")]
    assert "before 2000-01-01" in errors[(4, "purchased_at")]
    assert "out of range" in errors[(5, "purchased_at")]
    assert "not an ISO date" in errors[(6, "purchased_at")]
    assert list(LegacyRecord.objects.values_list("legacy_id", flat=True)) == ["Y-6"]


def test_names_over_150_characters_are_refused_not_cut(catalogue, tmp_path):
    path = write(tmp_path,
                 row("M-1", "long@example.com", first="F" * 151, last="Short"),
                 row("M-2", "last@example.com", first="Short", last="L" * 151),
                 row("M-3", "fits@example.com", first="F" * 150, last="L" * 150))
    run = legacy_file_import(path=path)
    errors = errors_by_cell(run)
    assert set(errors) == {(2, "first_name"), (3, "last_name")}
    assert "longer than 150 characters (151)" in errors[(2, "first_name")]
    assert not User.objects.filter(email__in=["long@example.com", "last@example.com"]).exists()
    fits = User.objects.get(email="fits@example.com")
    assert (fits.first_name, fits.last_name) == ("F" * 150, "L" * 150)


# --- item 7: strict numbers ------------------------------------------------------------------

STRANGE_NUMBERS = [("١٢٣", "1"), ("１２", "1"), ("1_000", "1"), ("۱۰", "1"),
                   ("10", "٠.٥"), ("10", "１"), ("10", "0_5"), ("10", "1e0")]


def test_non_ascii_and_underscored_digits_are_row_errors(catalogue, tmp_path):
    rows = [row(f"S-{i}", "s@example.com", quantity=q, cost=c) for i, (q, c) in enumerate(STRANGE_NUMBERS)]
    path = write(tmp_path, *rows, row("S-ok", "s@example.com", quantity='"1,000"', cost=" 0.5 "))
    run = legacy_file_import(path=path)
    errors = errors_by_cell(run)
    expected = {(i + 2, "quantity" if q != "10" else "cost_per_share") for i, (q, _c) in enumerate(STRANGE_NUMBERS)}
    assert set(errors) == expected
    assert all("not a number" in reason for reason in errors.values())
    purchase = Purchase.objects.get()
    assert (purchase.shares, purchase.price) == (1000, Decimal("500"))


def test_xlsx_text_cells_are_held_to_the_same_digits(catalogue, tmp_path):
    rows = [row(f"S-{i}", "s@example.com", quantity=q, cost=c) for i, (q, c) in enumerate(STRANGE_NUMBERS)]
    text = "\n".join([HEADER, *rows, row("S-ok", "s@example.com", quantity="1 000", cost="0.5")])
    path = csv_to_xlsx(text, tmp_path / "strange.xlsx", typed=False)  # every cell stays text
    run = legacy_file_import(path=path)
    assert counts(run) == (9, 1, 0, 8)
    assert all("not a number" in e["reason"] for e in run.errors)


# --- item 8: file-level errors ---------------------------------------------------------------

def test_fake_xlsx_gives_a_failed_run_with_the_reason(catalogue, tmp_path):
    fake = tmp_path / "export.xlsx"
    fake.write_text(HEADER + "\n" + row("X-1", "x@example.com"))  # a CSV renamed
    run = legacy_file_import(path=fake)
    stored = ImportRun.objects.get()
    assert stored.pk == run.pk and stored.status == ImportRun.Status.FAILED
    assert stored.finished_at is not None and len(stored.checksum) == 64
    assert [e["line"] for e in stored.errors] == [None]
    assert "Not a readable XLSX file: BadZipFile" in stored.errors[0]["reason"]
    assert not stored.ok and not Purchase.objects.exists()

    assert legacy_file_import(path=fake, dry_run=True).status == ImportRun.Status.FAILED
    assert ImportRun.objects.count() == 1  # a dry run records nothing


def test_a_zip_that_is_not_a_workbook_is_a_file_error(catalogue, tmp_path):
    path = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    run = legacy_file_import(path=path)
    assert run.status == ImportRun.Status.FAILED
    assert run.errors[0]["reason"].startswith("Not a readable XLSX file")


def test_command_refuses_a_bad_file_in_one_line_and_records_it(catalogue, tmp_path, capsys):
    fake = tmp_path / "export.xlsx"
    fake.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CommandError) as excinfo:
        call_command("import_legacy", str(fake))
    message = str(excinfo.value)
    run = ImportRun.objects.get()
    assert excinfo.value.returncode == 1 and "\n" not in message
    assert message.startswith(f"{fake}: Not a readable XLSX file") and f"run #{run.pk}" in message
    assert run.status == ImportRun.Status.FAILED
    assert capsys.readouterr().out == ""  # no summary of rows that were never read

    missing = tmp_path / "nowhere.csv"
    with pytest.raises(CommandError, match="Cannot read the file: No such file or directory"):
        call_command("import_legacy", str(missing))
    assert ImportRun.objects.filter(file_name="nowhere.csv", status=ImportRun.Status.FAILED).exists()

    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(CommandError, match="no header row"):
        call_command("import_legacy", str(empty), "--dry-run")
    assert ImportRun.objects.count() == 2


def test_manage_py_prints_one_line_and_no_traceback(tmp_path):
    """The real process: exit status 1, one line on stderr, nothing else (no database needed)."""
    fake = tmp_path / "export.xlsx"
    fake.write_bytes(b"this is not a zip")
    env = {**os.environ, "DJANGO_ALLOW_INSECURE_KEY": "1"}
    done = subprocess.run([sys.executable, "manage.py", "import_legacy", str(fake), "--dry-run"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("CommandError: ") and "Not a readable XLSX file: BadZipFile" in lines[0]


# --- item 8: a row the database refuses fails alone ------------------------------------------

@pytest.mark.postgres
def test_a_row_refused_by_the_database_does_not_stop_the_rest(catalogue, tmp_path):
    """Real database refusals (a trigger and a check constraint added for the test, rolled back
    with it) stand for any DataError/IntegrityError validation cannot foresee."""
    purchases, records = Purchase._meta.db_table, LegacyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("""CREATE FUNCTION legacy_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'value too long for type character varying(254)'
                  USING ERRCODE = 'string_data_right_truncation'; END $$""")
        cursor.execute(f"CREATE TRIGGER legacy_test_refuse BEFORE INSERT ON {purchases} "
                       "FOR EACH ROW WHEN (NEW.shares = 13) EXECUTE FUNCTION legacy_test_refuse()")
        cursor.execute(f"ALTER TABLE {records} ADD CONSTRAINT legacy_test_boom CHECK (legacy_id <> 'BOOM')")
    path = write(tmp_path,
                 row("D-1", "first@example.com", when="2024-01-01"),
                 row("D-2", "data@example.com", quantity="13", when="2024-01-02"),
                 row("BOOM", "integrity@example.com", when="2024-01-03"),
                 row("D-4", "last@example.com", sponsor="first@example.com", when="2024-01-04"))
    run = legacy_file_import(path=path)
    assert counts(run) == (4, 2, 0, 2) and run.status == ImportRun.Status.DONE
    errors = errors_by_cell(run)
    assert set(errors) == {(3, ""), (4, "")}
    assert "D-2: the database refused the row (data error: value too long" in errors[(3, "")]
    assert "BOOM: the database refused the row (integrity error" in errors[(4, "")]
    # all or nothing: the failed rows' new members and ledger rows are gone with them
    assert not User.objects.filter(email__in=["data@example.com", "integrity@example.com"]).exists()
    assert set(LegacyRecord.objects.values_list("legacy_id", flat=True)) == {"D-1", "D-4"}
    assert ledger_mismatches() == []

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending deferred checks on ALTER
        cursor.execute(f"DROP TRIGGER legacy_test_refuse ON {purchases}")
        cursor.execute(f"ALTER TABLE {records} DROP CONSTRAINT legacy_test_boom")
    again = legacy_file_import(path=path)
    assert counts(again) == (4, 2, 2, 0) and again.members_created == 2


# --- item 9: sponsors resolved across the whole file ----------------------------------------

def test_sponsor_later_in_the_file_first_run_imports_all_second_nothing(catalogue, tmp_path):
    path = write(tmp_path,
                 row("F-1", "kid@example.com", sponsor="mum@example.com", when="2024-03-01"),
                 row("F-2", "mum@example.com", sponsor="gran@example.com", when="2024-02-01"),
                 row("F-3", "cousin@example.com", sponsor="gran@example.com", when="2024-01-15"),
                 row("F-4", "gran@example.com", when="2024-04-01"))
    first = legacy_file_import(path=path)
    assert counts(first) == (4, 4, 0, 0) and first.ok and first.members_created == 4
    sponsor_of = dict(User.objects.filter(email__endswith="@example.com")
                      .values_list("email", "sponsor__email"))
    assert sponsor_of == {"kid@example.com": "mum@example.com", "mum@example.com": "gran@example.com",
                          "cousin@example.com": "gran@example.com",
                          "gran@example.com": system_root().email}
    assert list(first.plan.new_members) == ["gran@example.com", "mum@example.com",
                                            "kid@example.com", "cousin@example.com"]  # parents first

    users, purchases = User.objects.count(), Purchase.objects.count()
    second = legacy_file_import(path=path)
    assert counts(second) == (4, 0, 4, 0) and second.members_created == 0 and second.warnings == []
    assert (User.objects.count(), Purchase.objects.count()) == (users, purchases)


def test_sponsor_cycles_and_refused_sponsors_are_reported_and_stay_refused(catalogue, tmp_path):
    known = member_create(email="known@example.com")
    path = write(tmp_path,
                 row("C-1", "a@example.com", sponsor="b@example.com"),       # 2 cycle
                 row("C-2", "b@example.com", sponsor="a@example.com"),       # 3 cycle
                 row("C-3", "c@example.com", sponsor="a@example.com"),       # 4 hangs on the cycle
                 row("C-4", "a@example.com"),                               # 5 a's first row decides
                 row("C-5", "known@example.com", sponsor="b@example.com"),   # 6 names a refused sponsor
                 row("C-6", "kid@example.com", sponsor="bad@example.com"),   # 7 sponsor's rows all bad
                 row("C-7", "bad@example.com", quantity="0"),                # 8 bad quantity
                 row("C-8", "orphan@example.com", sponsor="ghost@example.com"),  # 9 unknown
                 row("C-9", "fine@example.com", sponsor="known@example.com"))    # 10 good
    for attempt in range(2):
        run = legacy_file_import(path=path)
        errors = errors_by_cell(run)
        assert counts(run) == (9, 1 - attempt, attempt, 8)
        assert set(errors) == {(2, "sponsor_email"), (3, "sponsor_email"), (4, "sponsor_email"),
                               (5, "email"), (6, "sponsor_email"), (7, "sponsor_email"),
                               (8, "quantity"), (9, "sponsor_email")}
        cycle = "the sponsors in this file form a cycle"
        assert cycle in errors[(2, "sponsor_email")] and cycle in errors[(3, "sponsor_email")]
        assert "a@example.com → b@example.com → a@example.com" in errors[(2, "sponsor_email")]
        assert "'a@example.com' cannot be created: its first row (line 2)" in errors[(4, "sponsor_email")]
        assert "a@example.com cannot be created: its first row (line 2) is refused" in errors[(5, "email")]
        assert "'b@example.com' cannot be created" in errors[(6, "sponsor_email")]
        assert "its own rows in this file (line 8) are refused" in errors[(7, "sponsor_email")]
        assert "unknown sponsor 'ghost@example.com'" in errors[(9, "sponsor_email")]
        assert set(User.objects.values_list("email", flat=True)) == {
            system_root().email, "known@example.com", "fine@example.com"}
    assert User.objects.get(email="fine@example.com").sponsor == known


def test_dry_run_plans_the_forward_references_too(catalogue, tmp_path):
    path = write(tmp_path,
                 row("P-1", "kid@example.com", sponsor="mum@example.com"),
                 row("P-2", "mum@example.com"))
    run = legacy_file_import(path=path, dry_run=True)
    assert counts(run) == (2, 2, 0, 0) and run.members_created == 2
    assert not User.objects.filter(email__endswith="@example.com").exists()
