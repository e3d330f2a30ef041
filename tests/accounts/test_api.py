from decimal import Decimal

import pytest
from rest_framework_api_key.models import APIKey

from accounts.models import LedgerEntry, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_register_without_sponsor_goes_under_root(api_client, root):
    r = api_client.post("/api/auth/register/", {"email": "zo@example.com", "password": "s3cure-Passw0rd"},
                        format="json")
    assert r.status_code == 201, r.content
    assert r.json()["token"]
    assert User.objects.get(email="zo@example.com").sponsor_id == root.pk
    assert r.json()["user"]["sponsor"] is None


def test_register_with_referral_code_and_login(api_client):
    sponsor = UserFactory()
    r = api_client.post("/api/auth/register/", {"email": "kid@example.com", "password": "s3cure-Passw0rd",
                                                "referral_code": sponsor.referral_code.lower()},
                        format="json")
    assert r.status_code == 201, r.content
    assert User.objects.get(email="kid@example.com").sponsor_id == sponsor.pk
    assert r.json()["user"]["sponsor"] == sponsor.email
    r = api_client.post("/api/auth/token/", {"email": "kid@example.com", "password": "s3cure-Passw0rd"},
                        format="json")
    assert r.status_code == 200 and r.json()["token"]
    bad = api_client.post("/api/auth/token/", {"email": "kid@example.com", "password": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["message"]


@pytest.mark.parametrize("payload, field", [
    ({"email": "x@example.com", "password": "s3cure-Passw0rd", "referral_code": "NOPE1234"}, "referral_code"),
    ({"email": "not-an-email", "password": "s3cure-Passw0rd"}, "email"),
    ({"email": "x@example.com", "password": "123"}, "password"),
    ({"email": "x@example.com", "password": "password123"}, "password"),
])
def test_register_bad_input_is_400_with_message(api_client, payload, field):
    r = api_client.post("/api/auth/register/", payload, format="json")
    assert r.status_code == 400
    body = r.json()
    assert body["message"] and field in body["errors"]
    assert not User.objects.filter(email="x@example.com").exists()


def test_register_duplicate_email(api_client):
    UserFactory(email="taken@example.com")
    r = api_client.post("/api/auth/register/", {"email": "taken@example.com", "password": "s3cure-Passw0rd"},
                        format="json")
    assert r.status_code == 400 and "already exists" in r.json()["message"]


def test_me_requires_auth_and_shows_own_balances(api_client, member_client):
    assert api_client.get("/api/me/").status_code == 401
    user = UserFactory(balance="12.34")
    body = member_client(user).get("/api/me/").json()
    assert body["email"] == user.email and Decimal(body["balance_active"]) == Decimal("12.34")
    assert body["referral_code"] == user.referral_code


def test_ledger_is_own_and_paginated(member_client):
    alice, bob = UserFactory(balance="10"), UserFactory(balance="20")
    for i in range(3):
        from accounts.services import wallet_deposit

        wallet_deposit(user=alice, amount=1, reference=f"a{i}")
    body = member_client(alice).get("/api/me/ledger/?limit=2").json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    assert all(Decimal(r["amount"]) in (Decimal(1), Decimal(10)) for r in body["results"])
    bob_ids = set(LedgerEntry.objects.filter(user=bob).values_list("id", flat=True))
    all_ids = {r["id"] for r in member_client(alice).get("/api/me/ledger/?limit=100").json()["results"]}
    assert not (bob_ids & all_ids)
    assert member_client(alice).get("/api/me/ledger/?wallet=nope").status_code == 400


def test_transfer_api(member_client):
    from accounts.models import Wallet
    from accounts.services import Posting, wallet_post

    user = UserFactory()
    wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=Decimal("40"), reason="bonus",
                         idempotency_key="earn")])
    client = member_client(user)
    r = client.post("/api/me/transfer/", {"amount": "15"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    assert r.status_code == 201, r.content
    client.post("/api/me/transfer/", {"amount": "15"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    user.refresh_from_db()
    # 15 moved, plus the 2% transfer bonus (0.30) on the active wallet.
    assert (user.balance_active, user.balance_passive) == (Decimal("15.30"), Decimal("25"))
    r = client.post("/api/me/transfer/", {"amount": "100"}, format="json")
    assert r.status_code == 400 and "Insufficient" in r.json()["message"]
    for bad in ("-1", "0", "abc", "NaN"):
        assert client.post("/api/me/transfer/", {"amount": bad}, format="json").status_code == 400


@pytest.fixture
def api_key():
    _, key = APIKey.objects.create_key(name="payments")
    return key


def test_service_deposit_needs_a_valid_api_key(api_client, member_client, api_key):
    user = UserFactory()
    payload = {"email": user.email, "amount": "100", "reference": "psp-1"}
    assert api_client.post("/api/service/deposits/", payload, format="json").status_code == 403
    r = api_client.post("/api/service/deposits/", payload, format="json", HTTP_AUTHORIZATION="Api-Key wrong.key")
    assert r.status_code == 403
    # a member's token is not an API key
    assert member_client(user).post("/api/service/deposits/", payload, format="json").status_code == 403
    user.refresh_from_db()
    assert user.balance_active == 0


def test_service_deposit_is_idempotent(api_client, api_key):
    user = UserFactory()
    payload = {"email": user.email, "amount": "100.25", "reference": "psp-2"}
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {api_key}"}
    first = api_client.post("/api/service/deposits/", payload, format="json", **headers)
    again = api_client.post("/api/service/deposits/", payload, format="json", **headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    user.refresh_from_db()
    assert user.balance_active == Decimal("100.25")
    bad = api_client.post("/api/service/deposits/", {**payload, "amount": "-3", "reference": "psp-3"},
                          format="json", **headers)
    assert bad.status_code == 400 and bad.json()["errors"]["amount"]
    unknown = api_client.post("/api/service/deposits/", {**payload, "email": "ghost@example.com",
                                                         "reference": "psp-4"}, format="json", **headers)
    assert unknown.status_code == 400 and "Unknown member" in unknown.json()["message"]
