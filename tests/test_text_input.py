"""Free text that is stored (names, references, reasons, notes): a NUL or another control character
is refused with a 400 / ValidationError `invalid_characters` (common.text), never a database error,
and nothing is written."""

import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from accounts.models import LedgerEntry, User
from accounts.services import NewMember, member_create, members_create_bulk, wallet_deposit
from common.text import invalid_characters, text_clean
from mlm.models import RankHistory
from mlm.services import rank_assign
from purchases.models import Refund
from purchases.services import purchase_create, purchase_refund
from tests.factories import OptionFactory, UserFactory
from tests.withdrawals.conftest import earn, trc20
from tokens.models import Revenue
from withdrawals.models import Withdrawal
from withdrawals.services import withdrawal_request

pytestmark = pytest.mark.django_db

HOSTILE = ["ref\x00", "\x00", "a\x1b[31mred", "bell\x07", "back\x08space", "del\x7f", "c1\x85", "lone\ud800"]


def codes(exc: ValidationError) -> dict:
    return {field: [e.code for e in errors] for field, errors in exc.error_dict.items()}


def test_the_rule():
    assert invalid_characters("plain text, émoji 🎉, tab\tand\nlines", multiline=True) == []
    assert invalid_characters("tab\there") == ["\t"]
    assert invalid_characters("a\x00b\x00c\x1b") == ["\x00", "\x1b"]
    assert invalid_characters("non\u00a0breaking and zero\u200bwidth") == []  # not control characters
    assert text_clean(None, field="x") == "" and text_clean(" kept ", field="x") == " kept "
    with pytest.raises(ValidationError) as exc:
        text_clean("x\x00", field="reference")
    assert codes(exc.value) == {"reference": ["invalid_characters"]} and "U+0000" in str(exc.value)


@pytest.fixture
def service():
    _, key = APIKey.objects.create_key(name="payments")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.parametrize("reference", HOSTILE)
def test_a_deposit_reference_with_control_characters_is_a_400(service, root, reference):
    member = UserFactory()
    body = json.dumps({"member_id": member.pk, "amount": "5", "reference": reference})  # \ud800 escaped
    r = service.post("/api/service/deposits/", body, content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["codes"] == {"reference": ["invalid_characters"]}
    assert not LedgerEntry.objects.filter(user=member).exists()


@pytest.mark.parametrize("field", ["first_name", "last_name", "referral_code"])
def test_registration_refuses_control_characters(api_client, root, field):
    body = {"email": "new@example.com", "password": "a-long-password-1", field: "Ann\x00"}
    r = api_client.post("/api/auth/register/", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["codes"] == {field: ["invalid_characters"]}
    assert not User.objects.filter(email="new@example.com").exists()


def test_revenue_and_withdrawal_texts_refuse_control_characters(service, member_client, root):
    r = service.post("/api/tokens/revenue/", {"source": "other", "amount": "10", "external_ref": "x\x00"},
                     format="json")
    assert r.status_code == 400 and r.json()["codes"] == {"external_ref": ["invalid_characters"]}
    assert not Revenue.objects.exists()
    member = earn(UserFactory(), "100")
    r = member_client(member).post("/api/me/withdrawals/", {"amount": "20", "destination": trc20(1) + "\x00"},
                                   format="json")
    assert r.status_code == 400 and r.json()["codes"] == {"destination": ["invalid_characters"]}
    w = withdrawal_request(user=member, amount="20", destination=trc20(1))
    staff = member_client(UserFactory(is_staff=True, is_superuser=True))
    r = staff.post(f"/api/withdrawals/{w.pk}/reject/", {"reason": "no\x00"}, format="json")
    assert r.status_code == 400 and r.json()["codes"] == {"reason": ["invalid_characters"]}
    r = staff.post(f"/api/withdrawals/{w.pk}/approve/", format="json")
    r = staff.post(f"/api/withdrawals/{w.pk}/mark-paid/", {"tx_ref": "0xab\x00"}, format="json")
    assert r.status_code == 400 and r.json()["codes"] == {"tx_ref": ["invalid_characters"]}
    w.refresh_from_db()
    assert w.status != Withdrawal.Status.PAID and w.reason == ""
    # Lines are fine in a reason.
    r = staff.post(f"/api/withdrawals/{w.pk}/reject/", {"reason": "Wrong network.\nSend again."}, format="json")
    assert r.status_code == 200, r.content


def test_the_services_refuse_them_too_and_write_nothing(root):
    member = UserFactory(balance="100")
    entries = LedgerEntry.objects.count()
    with pytest.raises(ValidationError) as exc:
        wallet_deposit(user=member, amount="5", reference="pay-1", description="note\x00")
    assert codes(exc.value) == {"description": ["invalid_characters"]}
    with pytest.raises(ValidationError) as exc:
        wallet_deposit(user=member, amount="5", reference="pay\x00")
    assert codes(exc.value) == {"reference": ["invalid_characters"]}
    assert LedgerEntry.objects.count() == entries
    with pytest.raises(ValidationError) as exc:
        member_create(email="x@example.com", first_name="X\x00")
    assert codes(exc.value) == {"first_name": ["invalid_characters"]}
    with pytest.raises(ValidationError) as exc:
        members_create_bulk(members=[NewMember(email="y@example.com"), NewMember(email="z@example.com",
                                                                                 last_name="Z\x1b")])
    assert codes(exc.value) == {"last_name": ["invalid_characters"]}
    assert not User.objects.filter(email__in=["x@example.com", "y@example.com", "z@example.com"]).exists()
    with pytest.raises(ValidationError) as exc:
        rank_assign(user=member, rank_code="builder", note="why\x00")
    assert codes(exc.value) == {"note": ["invalid_characters"]}
    assert not RankHistory.objects.filter(user=member).exists()
    purchase = purchase_create(user=member, option=OptionFactory(pack_price=Decimal("10")), packs=1)
    with pytest.raises(ValidationError) as exc:
        purchase_refund(purchase=purchase, reason="because\x00")
    assert codes(exc.value) == {"reason": ["invalid_characters"]}
    assert not Refund.objects.exists()
