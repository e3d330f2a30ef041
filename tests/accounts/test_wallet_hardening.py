"""wallet_post and deposits under hostile input and concurrency: balances that would not fit
a money column, keys that would not fit the ledger, one deposit reference raced for many
members, and created-or-replayed decided under the member's lock."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from accounts.models import LedgerEntry, User, Wallet
from accounts.services import (
    InsufficientFunds,
    Posting,
    wallet_deposit,
    wallet_deposit_with_status,
    wallet_post,
)
from common.errors import IdempotencyConflict
from common.money import MONEY_MAX
from tests.concurrency import run_concurrently
from tests.factories import UserFactory

URL = "/api/service/deposits/"


def field_codes(exc: ValidationError) -> dict[str, list[str]]:
    """{field: [code, …]} as Django forms and DRF read them."""
    return {field: [e.code for e in errors] for field, errors in exc.error_dict.items()}


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    cache.clear()  # the anonymous throttle's counters live in the cache


@pytest.fixture
def service_headers(db):
    _, key = APIKey.objects.create_key(name="payments")
    return {"HTTP_AUTHORIZATION": f"Api-Key {key}"}


# --- balances that would not fit ---------------------------------------------------------------

@pytest.mark.django_db
def test_a_deposit_past_the_largest_balance_is_refused_and_writes_nothing():
    user = UserFactory(balance="1")
    with pytest.raises(ValidationError) as exc:
        wallet_deposit(user=user, amount="999999999999.99999999", reference="huge")
    assert field_codes(exc.value) == {"amount": ["balance_overflow"]}
    assert "999,999,999,999.99999999 USD" in exc.value.messages[0]
    user.refresh_from_db()
    assert user.balance_active == Decimal("1")
    assert not LedgerEntry.objects.filter(idempotency_key="deposit:huge").exists()


@pytest.mark.postgres  # SQLite keeps 20-digit decimals as floats: it cannot read this balance back exactly
@pytest.mark.django_db
def test_a_balance_up_to_the_largest_amount_is_fine():
    user = UserFactory(balance="1")
    wallet_deposit(user=user, amount=MONEY_MAX - 1, reference="max")
    user.refresh_from_db()
    assert user.balance_active == MONEY_MAX


@pytest.mark.django_db
def test_an_intermediate_balance_past_the_limit_is_refused_too():
    """Every ledger row stores its balance_after: a credit then a debit in one batch must fit at each step."""
    user = UserFactory(balance="10")
    with pytest.raises(ValidationError) as exc:
        wallet_post([
            Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=MONEY_MAX, reason="adjustment",
                    idempotency_key="o:1"),
            Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=-MONEY_MAX, reason="adjustment",
                    idempotency_key="o:2"),
        ])
    assert field_codes(exc.value) == {"amount": ["balance_overflow"]}
    assert not LedgerEntry.objects.filter(idempotency_key__startswith="o:").exists()


@pytest.mark.django_db
def test_the_deposit_api_answers_400_not_500_for_a_balance_that_would_overflow(service_headers):
    user = UserFactory(balance="5")
    r = APIClient().post(URL, {"member_id": user.pk, "amount": "999999999999.99999999", "reference": "psp-huge"},
                         format="json", **service_headers)
    assert r.status_code == 400, r.content
    assert "largest amount a wallet holds" in r.json()["message"]
    user.refresh_from_db()
    assert user.balance_active == Decimal("5")


@pytest.mark.django_db
@pytest.mark.parametrize(("amount", "key", "field", "code"), [
    (Decimal("0.000000001"), "k", "amount", "invalid_amount"),  # a 9th decimal the column would round away
    (MONEY_MAX + 1, "k", "amount", "invalid_amount"),
    (Decimal("1"), "k" * 201, "idempotency_key", "invalid_idempotency_key"),
    (Decimal("1"), "", "idempotency_key", "invalid_idempotency_key"),
    (Decimal("1"), "a\x00b", "idempotency_key", "invalid_idempotency_key"),
])
def test_postings_that_would_not_fit_the_ledger_are_refused(amount, key, field, code):
    user = UserFactory()
    with pytest.raises(ValidationError) as exc:
        wallet_post([Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=amount, reason="adjustment",
                             idempotency_key=key)])
    assert field_codes(exc.value) == {field: [code]}
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_insufficient_funds_names_the_amounts_in_money_format():
    user = UserFactory()
    with pytest.raises(InsufficientFunds) as exc:
        wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=Decimal("-12.5"), reason="adjustment",
                             idempotency_key="short")])
    assert exc.value.messages == ["Insufficient passive balance: 0.00 USD available, 12.50 USD needed."]
    assert field_codes(exc.value) == {"amount": ["insufficient_funds"]}


# --- created or replayed, and conflicts ----------------------------------------------------------

@pytest.mark.django_db
def test_deposit_with_status_says_whether_it_credited():
    user = UserFactory()
    first, created = wallet_deposit_with_status(user=user, amount="10", reference="pay-1")
    again, created_again = wallet_deposit_with_status(user=user, amount=Decimal("10.00"), reference=" pay-1 ")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert wallet_deposit(user=user, amount=10, reference="pay-1").pk == first.pk  # the python-api name
    user.refresh_from_db()
    assert user.balance_active == Decimal("10")


@pytest.mark.django_db
@pytest.mark.parametrize("other", ["amount", "member"])
def test_a_reference_reused_with_another_body_is_an_idempotency_conflict(other):
    user, someone = UserFactory(), UserFactory()
    wallet_deposit(user=user, amount="10", reference="pay-2")
    with pytest.raises(IdempotencyConflict) as exc:
        wallet_deposit_with_status(user=someone if other == "member" else user,
                                   amount="10" if other == "member" else "11", reference="pay-2")
    assert field_codes(exc.value) == {"reference": ["reference_conflict"]}
    assert "pay-2" in exc.value.messages[0]
    assert LedgerEntry.objects.filter(idempotency_key="deposit:pay-2").count() == 1
    someone.refresh_from_db()
    assert someone.balance_active == 0


@pytest.mark.django_db
def test_the_deposit_api_says_422_for_a_reference_reused_with_another_amount(service_headers):
    user = UserFactory()
    client = APIClient()
    body = {"member_id": user.pk, "amount": "10", "reference": "psp-9"}
    assert client.post(URL, body, format="json", **service_headers).status_code == 201
    r = client.post(URL, {**body, "amount": "12"}, format="json", **service_headers)
    assert r.status_code == 422, r.content
    assert "psp-9" in r.json()["message"]
    unknown = client.post(URL, {**body, "member_id": 10**9, "reference": "psp-10"}, format="json", **service_headers)
    assert unknown.status_code == 400 and "Unknown member" in unknown.json()["message"]


# --- concurrency (PostgreSQL row locks) ----------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_reference_for_twenty_members_at_once_credits_one_and_refuses_the_rest():
    members = [UserFactory() for _ in range(20)]
    results, errors = run_concurrently(
        lambda user: wallet_deposit_with_status(user=user, amount="25", reference="race-1"), [(m,) for m in members])
    assert len(results) == 1 and results[0][1] is True
    assert len(errors) == 19 and all(isinstance(e, IdempotencyConflict) for e in errors), errors
    assert LedgerEntry.objects.filter(idempotency_key="deposit:race-1").count() == 1
    assert sum(User.objects.get(pk=m.pk).balance_active for m in members) == Decimal("25")
    call_command("check_ledger")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_deposit_api_under_a_reference_race_never_answers_500(service_headers):
    members = [UserFactory() for _ in range(20)]

    def post(user):
        r = APIClient().post(URL, {"member_id": user.pk, "amount": "25", "reference": "race-api"}, format="json",
                             **service_headers)
        return r.status_code

    statuses, errors = run_concurrently(post, [(m,) for m in members])
    assert errors == []
    assert sorted(statuses) == [201] + [422] * 19
    assert LedgerEntry.objects.filter(idempotency_key="deposit:race-api").count() == 1
    call_command("check_ledger")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_same_reference_deposits_over_the_api_create_once_and_say_so_once(service_headers):
    user = UserFactory()

    def post():
        r = APIClient().post(URL, {"member_id": user.pk, "amount": "40", "reference": "same-api"}, format="json",
                             **service_headers)
        return r.status_code, r.json().get("id")

    answers, errors = run_concurrently(post, 20)
    assert errors == []
    assert sorted(status for status, _ in answers) == [200] * 19 + [201]
    assert len({entry_id for _, entry_id in answers}) == 1
    user.refresh_from_db()
    assert user.balance_active == Decimal("40")
