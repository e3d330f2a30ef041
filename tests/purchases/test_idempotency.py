"""purchase_create_with_status: created-or-replayed decided under the buyer's lock, the same
key with another body refused (422), error codes on every refusal."""

from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.services import InsufficientFunds
from common.errors import IdempotencyConflict
from purchases.models import Purchase
from purchases.services import purchase_create, purchase_create_with_status
from tests.concurrency import run_concurrently
from tests.factories import OptionFactory, UserFactory

URL = "/api/purchases/"


def field_codes(exc: ValidationError) -> dict[str, list[str]]:
    return {field: [e.code for e in errors] for field, errors in exc.error_dict.items()}


@pytest.mark.django_db
def test_with_status_says_whether_it_bought():
    user = UserFactory(balance="200")
    option = OptionFactory()
    first, created = purchase_create_with_status(user=user, option=option, packs=2, idempotency_key="k")
    again, created_again = purchase_create_with_status(user=user, option=option.pk, packs=2, idempotency_key=" k ")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert purchase_create(user=user, option=option, packs=2, idempotency_key="k").pk == first.pk
    _, no_key = purchase_create_with_status(user=user, option=option)
    assert no_key is True
    user.refresh_from_db()
    assert user.balance_active == Decimal("50")


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["option", "packs"])
def test_the_same_key_with_another_body_is_an_idempotency_conflict(change):
    user = UserFactory(balance="500")
    option, other = OptionFactory(), OptionFactory()
    purchase_create(user=user, option=option, packs=2, idempotency_key="k-1")
    with pytest.raises(IdempotencyConflict) as exc:
        purchase_create_with_status(user=user, option=other if change == "option" else option,
                                    packs=2 if change == "option" else 3, idempotency_key="k-1")
    assert field_codes(exc.value) == {"idempotency_key": ["idempotency_conflict"]}
    assert "already used for another purchase" in exc.value.messages[0]
    assert Purchase.objects.filter(user=user).count() == 1
    user.refresh_from_db()
    assert user.balance_active == Decimal("400")


@pytest.mark.django_db
def test_a_short_balance_is_a_purchase_error_not_an_amount_error():
    user = UserFactory(balance="30")
    option = OptionFactory()  # 50 a pack
    with pytest.raises(InsufficientFunds) as exc:
        purchase_create(user=user, option=option, packs=2)
    assert not hasattr(exc.value, "error_dict")  # not keyed to a field the purchase does not have
    assert [e.code for e in exc.value.error_list] == ["insufficient_funds"]
    assert exc.value.messages == [f"Insufficient active balance for 2 × {option}: 30.00 USD available, "
                                  "100.00 USD needed."]
    assert not Purchase.objects.exists()


@pytest.mark.django_db
def test_every_refusal_has_its_code():
    user = UserFactory(balance="100")
    option = OptionFactory()
    inactive = OptionFactory(is_active=False)
    cases = [
        ({"option": 10**9}, {"option": ["unknown_option"]}),
        ({"option": "1"}, {"option": ["unknown_option"]}),
        ({"option": inactive}, {"option": ["inactive_option"]}),
        ({"option": option, "packs": 0}, {"packs": ["invalid_packs"]}),
        ({"option": option, "packs": 1.5}, {"packs": ["invalid_packs"]}),
        ({"option": option, "idempotency_key": "k" * 201}, {"idempotency_key": ["invalid_idempotency_key"]}),
    ]
    for kwargs, codes in cases:
        with pytest.raises(ValidationError) as exc:
            purchase_create(user=user, **kwargs)
        assert field_codes(exc.value) == codes, kwargs
    assert not Purchase.objects.exists()


# --- over the API ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_api_says_422_for_a_key_reused_with_another_body(member_client):
    user = UserFactory(balance="500")
    option = OptionFactory()
    client = member_client(user)
    first = client.post(URL, {"option": option.pk, "packs": 1}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    other = client.post(URL, {"option": option.pk, "packs": 4}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    assert (first.status_code, other.status_code) == (201, 422), other.content
    assert "already used for another purchase" in other.json()["message"]
    user.refresh_from_db()
    assert user.balance_active == Decimal("450")


@pytest.mark.django_db
def test_the_api_reports_a_short_balance_without_an_amount_field(member_client):
    option = OptionFactory()
    r = member_client(UserFactory(balance="10")).post(URL, {"option": option.pk, "packs": 1}, format="json")
    assert r.status_code == 400
    body = r.json()
    assert "amount" not in body["errors"]
    assert body["message"].startswith("Insufficient active balance") and "10.00 USD available" in body["message"]
    assert NON_FIELD_ERRORS not in body["errors"]  # the API's name for it is non_field_errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_same_key_purchases_over_the_api_answer_one_201():
    from rest_framework.authtoken.models import Token

    user = UserFactory(balance="1000")
    option = OptionFactory()
    token = Token.objects.create(user=user).key

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        r = client.post(URL, {"option": option.pk, "packs": 2}, format="json", HTTP_IDEMPOTENCY_KEY="same")
        return r.status_code, r.json()["id"]

    answers, errors = run_concurrently(post, 20)
    assert errors == []
    assert sorted(status for status, _ in answers) == [200] * 19 + [201]
    assert len({pid for _, pid in answers}) == 1
    assert Purchase.objects.filter(user=user).count() == 1
    user.refresh_from_db()
    assert user.balance_active == Decimal("900")
    call_command("check_ledger")
