"""Numbers in API bodies are ASCII (issue 8 item 7): other scripts' digits, fullwidth digits,
underscores and exponents are refused with a 400 and write nothing; plain digits, in a JSON
number or a string, are accepted."""

from decimal import Decimal

import pytest
from rest_framework_api_key.models import APIKey

from accounts.models import LedgerEntry
from purchases.models import Purchase
from tests.factories import OptionFactory, UserFactory

pytestmark = pytest.mark.django_db

NOT_ASCII = ["١٢", "１２", "1_2", "1e1", "٣.٥", "1 2", "NaN", "Infinity"]


@pytest.mark.parametrize("packs", NOT_ASCII)
def test_packs_must_be_ascii_digits(member_client, packs):
    client = member_client(UserFactory(balance="10000"))
    r = client.post("/api/purchases/", {"option": OptionFactory().pk, "packs": packs}, format="json")
    assert r.status_code == 400, (packs, r.json())
    assert r.json()["code"] == "invalid" and "packs" in r.json()["errors"]
    assert not Purchase.objects.exists()


def test_packs_as_a_plain_string_or_number_are_accepted(member_client):
    client = member_client(UserFactory(balance="10000"))
    option = OptionFactory()
    assert client.post("/api/purchases/", {"option": option.pk, "packs": "2"}, format="json").status_code == 201
    assert client.post("/api/purchases/", {"option": option.pk, "packs": 3}, format="json").status_code == 201


@pytest.mark.parametrize("amount", NOT_ASCII + ["1,000"])
def test_deposit_amounts_must_be_ascii_numbers(api_client, amount):
    _, key = APIKey.objects.create_key(name="payments")
    user = UserFactory()
    r = api_client.post("/api/service/deposits/", {"member_id": user.pk, "amount": amount, "reference": "r-1"},
                        format="json", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert r.status_code == 400, (amount, r.json())
    assert "amount" in r.json()["errors"]
    assert not LedgerEntry.objects.filter(user=user).exists()


def test_a_plain_decimal_string_deposits(api_client):
    _, key = APIKey.objects.create_key(name="payments")
    user = UserFactory()
    r = api_client.post("/api/service/deposits/", {"member_id": user.pk, "amount": "12.50", "reference": "r-2"},
                        format="json", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert r.status_code == 201
    user.refresh_from_db()
    assert user.balance_active == Decimal("12.50")
