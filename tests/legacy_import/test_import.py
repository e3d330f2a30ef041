from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import LedgerEntry, User
from accounts.selectors import ledger_mismatches, system_root
from accounts.services import member_create
from legacy_import.models import ImportRun, LegacyRecord
from legacy_import.services import legacy_file_import
from purchases.models import Purchase
from tests.legacy_import.conftest import DIRTY_BAD, DIRTY_GOOD, SAMPLE, csv_to_xlsx, dirty_text

pytestmark = pytest.mark.django_db


def counts(run):
    return run.read, run.imported, run.skipped, run.failed


def bad_cells(run):
    return {(e["line"], e["column"]) for e in run.errors}


def assert_ledger_ok():
    assert ledger_mismatches() == []
    call_command("check_ledger")


# --- the sample file ------------------------------------------------------------------------

def test_sample_imports_members_sponsors_and_purchases(catalogue):
    run = legacy_file_import(path=SAMPLE)
    assert counts(run) == (4, 4, 0, 0)
    assert run.pk and not run.dry_run and run.ok and run.members_created == 3
    assert len(run.checksum) == 64 and run.file_name == "legacy_sample.csv"

    root = system_root()
    thandi = User.objects.get(email="thandi@example.com")
    pieter = User.objects.get(email="pieter@example.com")
    naledi = User.objects.get(email="naledi@example.com")
    assert (thandi.sponsor, pieter.sponsor, naledi.sponsor) == (root, thandi, pieter)
    assert (pieter.first_name, pieter.last_name) == ("Pieter", "van Wyk")

    purchases = {p.legacy_record.legacy_id: p for p in Purchase.objects.select_related("legacy_record")}
    assert set(purchases) == {"L-0001", "L-0002", "L-0003", "L-0004"}
    assert all(p.kind == Purchase.Kind.LEGACY for p in purchases.values())
    expect = {
        "L-0001": (thandi, "JETUP", 20000, Decimal("1000"), datetime(2024, 3, 1, tzinfo=UTC)),
        "L-0002": (pieter, "JETUP", 10000, Decimal("500"), datetime(2024, 3, 4, 10, 15, tzinfo=UTC)),
        "L-0003": (naledi, "AQUIX", 50000, Decimal("1500"), datetime(2024, 4, 12, tzinfo=UTC)),
        "L-0004": (pieter, "JETUP", 4000, Decimal("200"), datetime(2024, 5, 2, tzinfo=UTC)),
    }
    for legacy_id, (user, project, shares, price, when) in expect.items():
        p = purchases[legacy_id]
        assert (p.user, p.project.name, p.shares, p.price, p.created_at) == (user, project, shares, price, when)
        assert p.option == (catalogue["jetup"] if project == "JETUP" else catalogue["aquix"])
        assert p.idempotency_key == f"legacy:{legacy_id}"
        rows = LedgerEntry.objects.filter(cause_id=str(p.pk), reason=LedgerEntry.Reason.LEGACY)
        assert sorted(r.amount for r in rows) == [-price, price]
    for user in (thandi, pieter, naledi):
        user.refresh_from_db()
        assert user.balance_active == 0 and user.balance_passive == 0
    assert_ledger_ok()


def test_rerun_imports_nothing_and_counts_skips(catalogue):
    first = legacy_file_import(path=SAMPLE)
    second = legacy_file_import(path=SAMPLE)
    assert counts(second) == (4, 0, 4, 0) and second.ok
    assert Purchase.objects.count() == 4 and User.objects.count() == 4  # root + 3
    assert ImportRun.objects.count() == 2
    assert set(LegacyRecord.objects.values_list("run", flat=True)) == {first.pk}
    assert second.warnings == []


def test_dry_run_writes_nothing(catalogue, django_assert_max_num_queries):
    before = (User.objects.count(), LedgerEntry.objects.count())
    run = legacy_file_import(path=SAMPLE, dry_run=True)
    assert counts(run) == (4, 4, 0, 0) and run.dry_run and run.pk is None
    assert run.members_created == 3
    assert [r.legacy_id for r in run.plan.rows] == ["L-0001", "L-0002", "L-0003", "L-0004"]
    assert (User.objects.count(), LedgerEntry.objects.count()) == before
    assert not Purchase.objects.exists() and not ImportRun.objects.exists()
    assert not LegacyRecord.objects.exists()


def test_validation_reads_in_bulk_not_per_row(catalogue, tmp_path, django_assert_max_num_queries):
    lines = ["legacy_id,email,sponsor_email,project,quantity,cost_per_share,purchased_at"]
    lines += [f"B-{i},m{i}@example.com,{f'm{i - 1}@example.com' if i else ''},JETUP,10,0.05,2024-01-01"
              for i in range(300)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines))
    with django_assert_max_num_queries(10):
        run = legacy_file_import(path=path, dry_run=True)
    assert counts(run) == (300, 300, 0, 0)


# --- the dirty file -------------------------------------------------------------------------

def check_dirty_result(run):
    assert counts(run) == (14, 4, 0, 10)
    assert bad_cells(run) == DIRTY_BAD
    assert set(LegacyRecord.objects.values_list("legacy_id", flat=True)) == DIRTY_GOOD
    assert Purchase.objects.count() == 4
    reasons = {(e["line"], e["column"]): e["reason"] for e in run.errors}
    assert "NOPE" in reasons[(4, "project")]
    assert "greater than zero" in reasons[(5, "quantity")]
    assert "future" in reasons[(6, "purchased_at")]
    assert "not a number" in reasons[(7, "quantity")]
    assert "9, 10" in reasons[(9, "legacy_id")] and "9, 10" in reasons[(10, "legacy_id")]
    assert "ghost@example.com" in reasons[(11, "sponsor_email")]
    assert "required" in reasons[(12, "email")]

    anna, ben, carl, eve = (User.objects.get(email=f"{n}@example.com") for n in ("anna", "ben", "carl", "eve"))
    assert (anna.sponsor, ben.sponsor, carl.sponsor, eve.sponsor) == (system_root(), anna, anna, ben)
    assert not User.objects.filter(email__in=["dora@example.com", "fay@example.com"]).exists()
    carl_purchase = Purchase.objects.get(user=carl)
    assert (carl_purchase.shares, carl_purchase.price, carl_purchase.project.name) == (
        2500, Decimal("2501250.00"), "AQUIX")
    ben_purchase = Purchase.objects.get(user=ben)  # dated before his sponsor's first purchase
    assert ben_purchase.created_at == datetime(2024, 1, 5, 6, 0, tzinfo=UTC)
    assert Purchase.objects.get(user=eve).option.name == "Big"
    assert Purchase.objects.get(user=anna).shares == 1000
    assert_ledger_ok()


def test_dirty_csv_imports_exactly_the_good_rows(catalogue, dirty_csv):
    run = legacy_file_import(path=dirty_csv)
    check_dirty_result(run)
    assert ImportRun.objects.get(pk=run.pk).errors == run.errors  # kept for the admin

    again = legacy_file_import(path=dirty_csv)
    assert counts(again) == (14, 0, 4, 10)
    assert Purchase.objects.count() == 4


def test_dirty_xlsx_gives_the_same_result(catalogue, tmp_path):
    path = csv_to_xlsx(dirty_text(), tmp_path / "dirty.xlsx")
    check_dirty_result(legacy_file_import(path=path))


def test_xlsx_sheet_choice_and_typed_cells(catalogue, tmp_path):
    text = SAMPLE.read_text(encoding="utf-8-sig")
    path = csv_to_xlsx(text, tmp_path / "sample.xlsx", sheet="Purchases", extra_first_sheet=True)
    refused = legacy_file_import(path=path, dry_run=True)  # the first sheet has no such columns
    assert refused.errors and "required column" in refused.errors[0]["reason"] and not refused.ok
    missing = legacy_file_import(path=path, dry_run=True, sheet="Nope")
    assert "No sheet named" in missing.errors[0]["reason"]
    run = legacy_file_import(path=path, sheet="Purchases")
    assert counts(run) == (4, 4, 0, 0)
    assert Purchase.objects.get(legacy_record__legacy_id="L-0002").created_at == datetime(
        2024, 3, 4, 10, 15, tzinfo=UTC)
    assert legacy_file_import(path=SAMPLE).skipped == 4  # the CSV of the same rows: all done


def test_rows_are_imported_in_date_order(catalogue, tmp_path):
    # (A sponsor introduced on a later line is fine too: see test_hardening.)
    path = tmp_path / "order.csv"
    path.write_text("legacy_id,email,sponsor_email,project,quantity,cost_per_share,purchased_at\n"
                    "P-0,gran@example.com,,JETUP,1,1,2024-07-01\n"
                    "P-1,dad@example.com,gran@example.com,JETUP,1,1,2024-06-01\n"
                    "P-2,dad@example.com,,JETUP,1,1,2024-05-01T12:00\n")
    run = legacy_file_import(path=path)
    assert counts(run) == (3, 3, 0, 0)
    order = list(Purchase.objects.filter(legacy_record__run=run).order_by("id")
                 .values_list("legacy_record__legacy_id", flat=True))
    assert order == ["P-2", "P-1", "P-0"]
    assert User.objects.get(email="dad@example.com").sponsor.email == "gran@example.com"


def test_known_member_keeps_sponsor_with_a_warning(catalogue, tmp_path):
    boss = member_create(email="boss@example.com", first_name="B", last_name="oss")
    member_create(email="known@example.com", sponsor=boss)
    path = tmp_path / "k.csv"
    path.write_text("legacy_id,email,sponsor_email,project,quantity,cost_per_share,purchased_at\n"
                    "K-0,other@example.com,,JETUP,1,1,2024-07-01\n"
                    "K-1,KNOWN@example.com,other@example.com,JETUP,2,1,2024-07-02\n")
    run = legacy_file_import(path=path)
    assert counts(run) == (2, 2, 0, 0) and run.ok
    assert User.objects.get(email="known@example.com").sponsor == boss
    assert [(w["line"], w["column"]) for w in run.warnings] == [(3, "sponsor_email")]


def test_numbers_dates_and_headers_are_parsed_strictly(catalogue, tmp_path):
    path = tmp_path / "n.csv"
    path.write_text(" LEGACY_ID ,Email,Project,Quantity,Cost_Per_Share,Purchased_At\n"
                    "N-1,a@example.com,jetup, 1 000 ,\" 1,000.50 \",2024-01-01T10:00:00\n"
                    "N-2,a@example.com,JETUP,1.5,1,2024-01-01\n"
                    "N-3,a@example.com,JETUP,\"1,00\",1,2024-01-01\n"
                    "N-4,a@example.com,JETUP,1,0,2024-01-01\n"
                    "N-5,a@example.com,JETUP,1,1e3,2024-01-01\n"
                    "N-6,a@example.com,JETUP,1,1,2024-13-01\n"
                    "N-7,not-an-email,JETUP,1,1,2024-01-01\n"
                    "N-8,a@example.com,JETUP,1,10000000000000,2024-01-01\n"
                    "N-9,a@example.com,JETUP,1,NaN,2024-01-01\n")
    run = legacy_file_import(path=path)
    assert bad_cells(run) == {(3, "quantity"), (4, "quantity"), (5, "cost_per_share"),
                              (6, "cost_per_share"), (7, "purchased_at"), (8, "email"),
                              (9, "cost_per_share"), (10, "cost_per_share")}
    purchase = Purchase.objects.get()
    assert (purchase.shares, purchase.price) == (1000, Decimal("1000500"))
    assert purchase.created_at == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_file_level_problems(catalogue, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes("legacy_id,email\nX,é\n".encode("latin-1"))
    run = legacy_file_import(path=bad)
    assert not run.ok and run.errors[0]["line"] is None and run.status == ImportRun.Status.FAILED
    weird = tmp_path / "data.json"
    weird.write_text("{}")
    assert "Unsupported" in legacy_file_import(path=weird, dry_run=True).errors[0]["reason"]


def test_system_root_cannot_buy(catalogue, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(f"legacy_id,email,project,quantity,cost_per_share,purchased_at\n"
                    f"R-1,{system_root().email},JETUP,1,1,2024-01-01\n")
    assert bad_cells(legacy_file_import(path=path)) == {(2, "email")}


# --- the command ----------------------------------------------------------------------------

def test_command_exit_status_and_summary(catalogue, dirty_csv, capsys):
    call_command("import_legacy", str(SAMPLE), "--dry-run")
    assert "would import 4" in capsys.readouterr().out and not Purchase.objects.exists()
    call_command("import_legacy", str(SAMPLE))
    assert "imported 4" in capsys.readouterr().out
    with pytest.raises(CommandError) as excinfo:
        call_command("import_legacy", str(dirty_csv))
    assert excinfo.value.returncode == 1
    captured = capsys.readouterr()
    assert "failed 10" in captured.out and "line 4, column project" in captured.err
    assert "importing" not in captured.err  # no progress bar when stderr is not a terminal
    with pytest.raises(CommandError):
        call_command("import_legacy", str(dirty_csv) + ".missing")


def test_command_records_the_operator(catalogue):
    op = member_create(email="op@example.com", is_staff=True)
    call_command("import_legacy", str(SAMPLE), "--user", "OP@example.com")
    assert ImportRun.objects.get().created_by == op
