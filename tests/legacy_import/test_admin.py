import pytest

from accounts.services import member_create
from legacy_import.models import ImportRun
from legacy_import.services import legacy_file_import
from purchases.models import Purchase
from tests.legacy_import.conftest import SAMPLE, csv_to_xlsx, dirty_text

pytestmark = pytest.mark.django_db

UPLOAD = "/admin/legacy_import/importrun/upload/"


@pytest.fixture
def operator(db, settings, tmp_path):
    settings.LEGACY_IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    return member_create(email="op@example.com", password="x", is_staff=True, is_superuser=True)


def test_run_pages_render(client, operator, catalogue, dirty_csv):
    run = legacy_file_import(path=dirty_csv, user=operator)
    client.force_login(operator)
    page = client.get("/admin/legacy_import/importrun/")
    assert page.status_code == 200 and b"dirty.csv" in page.content and UPLOAD.encode() in page.content
    detail = client.get(f"/admin/legacy_import/importrun/{run.pk}/change/")
    assert detail.status_code == 200
    assert b"unknown project" in detail.content and run.checksum.encode() in detail.content
    assert client.get("/admin/legacy_import/legacyrecord/").status_code == 200
    # read-only: no add, no delete
    assert client.get("/admin/legacy_import/importrun/add/").status_code == 403
    assert client.post(f"/admin/legacy_import/importrun/{run.pk}/delete/").status_code == 403


def test_upload_dry_run_then_import(client, operator, catalogue):
    client.force_login(operator)
    assert client.get(UPLOAD).status_code == 200
    with open(SAMPLE, "rb") as fh:
        page = client.post(UPLOAD, {"file": fh})
    assert page.status_code == 200
    assert b"Dry run of legacy_sample.csv" in page.content and b"Import 4 rows for real" in page.content
    assert not Purchase.objects.exists() and not ImportRun.objects.exists()

    confirm = page.context["confirm"].initial
    response = client.post(UPLOAD, {**confirm, "confirm": "1"})
    run = ImportRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{run.pk}/change/")
    assert (run.imported, run.created_by, run.file_name) == (4, operator, "legacy_sample.csv")
    assert Purchase.objects.count() == 4

    # a tampered or unknown checksum imports nothing
    response = client.post(UPLOAD, {**confirm, "checksum": "0" * 64, "confirm": "1"})
    assert response.status_code == 302 and ImportRun.objects.count() == 1


def test_upload_xlsx_with_errors_shows_them(client, operator, catalogue, tmp_path):
    client.force_login(operator)
    path = csv_to_xlsx(dirty_text(), tmp_path / "dirty.xlsx")
    with open(path, "rb") as fh:
        page = client.post(UPLOAD, {"file": fh, "sheet": "Purchases"})
    assert page.status_code == 200
    assert b"unknown project" in page.content and b"Import 4 rows for real" in page.content
    assert not Purchase.objects.exists()


def test_upload_refuses_other_files_and_non_operators(client, operator, catalogue, tmp_path):
    client.force_login(operator)
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"%PDF")
    with open(bad, "rb") as fh:
        page = client.post(UPLOAD, {"file": fh})
    assert page.status_code == 200 and b"Upload a .csv or .xlsx file" in page.content
    staff = member_create(email="staff@example.com", is_staff=True)
    client.force_login(staff)
    assert client.get(UPLOAD).status_code == 403


def test_upload_of_a_fake_xlsx_shows_the_file_error(client, operator, catalogue, tmp_path):
    client.force_login(operator)
    fake = tmp_path / "export.xlsx"
    fake.write_bytes(b"not a zip at all")
    with open(fake, "rb") as fh:
        page = client.post(UPLOAD, {"file": fh})
    assert page.status_code == 200
    assert b"Not a readable XLSX file: BadZipFile" in page.content and b"Nothing to import" in page.content
    assert not ImportRun.objects.exists()
