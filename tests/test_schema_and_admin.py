import pytest
from django.core.management import call_command

from accounts.models import LedgerEntry
from purchases.models import Purchase
from tests.factories import OptionFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_openapi_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/auth/register/", "/api/purchases/", "/api/service/deposits/", "/api/me/ledger/"):
        assert path in text


def test_docs_page_serves(client):
    assert client.get("/api/docs/").status_code == 200


@pytest.fixture
def operator(db):
    return UserFactory(email="op@example.com", is_staff=True, is_superuser=True)


def test_every_admin_changelist_renders(client, operator):
    from django.contrib import admin

    from purchases.services import purchase_create

    purchase_create(user=UserFactory(balance="100"), option=OptionFactory())
    client.force_login(operator)
    for model in admin.site._registry:
        opts = model._meta
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        assert client.get(url).status_code == 200, url
        assert client.get(url + "?q=x").status_code == 200, url


def test_money_rows_are_read_only_in_admin(client, operator):
    from purchases.services import purchase_create

    purchase = purchase_create(user=UserFactory(balance="100"), option=OptionFactory())
    entry = LedgerEntry.objects.first()
    client.force_login(operator)
    for obj in (purchase, entry):
        opts = obj._meta
        assert client.get(f"/admin/{opts.app_label}/{opts.model_name}/add/").status_code == 403
        assert client.post(f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/delete/").status_code == 403


def test_admin_deposit_form(client, operator):
    member = UserFactory()
    client.force_login(operator)
    url = f"/admin/accounts/user/{member.pk}/deposit/"
    assert client.get(url).status_code == 200
    r = client.post(url, {"amount": "75.5", "reference": "cash-1", "description": "cash"})
    assert r.status_code == 302
    client.post(url, {"amount": "75.5", "reference": "cash-1"})  # same reference: once
    member.refresh_from_db()
    assert str(member.balance_active) == "75.50000000"
    assert LedgerEntry.objects.get(user=member).created_by == operator


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    counts = (Purchase.objects.count(), LedgerEntry.objects.count())
    call_command("seed_demo")
    assert (Purchase.objects.count(), LedgerEntry.objects.count()) == counts
    call_command("check_ledger")
