"""The tokens API: revenue with an API key; staff endpoints."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework_api_key.models import APIKey

from tests.factories import UserFactory
from tokens.models import BuyOrder, BuyOrderConfigChange, Revenue
from tokens.services import exchange_rate_set, revenue_track

pytestmark = pytest.mark.django_db
URL = "/api/tokens/revenue/"


@pytest.fixture
def service_client(api_client):
    _, key = APIKey.objects.create_key(name="payments")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api_client


@pytest.fixture
def staff_client(api_client):
    api_client.force_authenticate(UserFactory(is_staff=True, is_superuser=True))
    return api_client


# --- Revenue (API key) ------------------------------------------------------------------------


def test_revenue_needs_a_valid_api_key(api_client, member_client):
    body = {"source": "course_sale", "amount": "100"}

    assert api_client.post(URL, body, format="json").status_code in (401, 403)
    api_client.credentials(HTTP_AUTHORIZATION="Api-Key not.a-key")
    assert api_client.post(URL, body, format="json").status_code in (401, 403)
    # A member's login is not a service's key.
    assert member_client(UserFactory()).post(URL, body, format="json").status_code in (401, 403)
    assert Revenue.objects.count() == 0


def test_revenue_is_recorded_and_a_duplicate_reference_returns_the_first(service_client):
    body = {"source": "subscription", "amount": "199.99", "external_ref": "sub-42"}

    first = service_client.post(URL, body, format="json")
    again = service_client.post(URL, body, format="json")

    assert first.status_code == 201, first.json()
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["amount_zar"] == "199.99000000" and first.json()["currency"] == "ZAR"
    assert Revenue.objects.count() == 1
    # The same reference with another amount is not a retry: refused.
    other = service_client.post(URL, {**body, "amount": "5"}, format="json")
    assert other.status_code == 400 and "sub-42" in other.json()["message"]


def test_revenue_in_another_currency_uses_the_newest_rate(service_client):
    exchange_rate_set(currency="EUR", rate_to_zar="19")
    exchange_rate_set(currency="EUR", rate_to_zar="20.5")

    response = service_client.post(URL, {"source": "other", "amount": "10", "currency": "eur"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["amount_zar"] == "205.00000000" and response.json()["currency"] == "EUR"


@pytest.mark.parametrize("body", [
    {"source": "course_sale", "amount": "0"},
    {"source": "course_sale", "amount": "-5"},
    {"source": "course_sale", "amount": "abc"},
    {"source": "course_sale", "amount": "NaN"},
    {"source": "course_sale", "amount": "Infinity"},
    {"source": "course_sale", "amount": "-Infinity"},
    {"source": "course_sale", "amount": "1.123456789"},
    {"source": "course_sale", "amount": True},
    {"source": "course_sale"},
    {"source": "refund", "amount": "10"},
    {"source": "course_sale", "amount": "10", "currency": "XYZ"},
    {"source": "course_sale", "amount": "10", "currency": "US"},
    {"source": "course_sale", "amount": "10", "currency": "12$"},
])
def test_bad_revenue_is_refused_with_a_message_and_nothing_written(service_client, body):
    response = service_client.post(URL, body, format="json")

    assert response.status_code == 400
    error = response.json()
    # The first error's own code (e.g. required, invalid_choice, max_decimal_places), per field too.
    assert error["message"] and error["code"] == next(iter(error["codes"].values()))[0]
    assert Revenue.objects.count() == 0


def test_nan_and_infinity_as_raw_json_numbers_are_refused(service_client):
    for raw in (b'{"source": "other", "amount": NaN}', b'{"source": "other", "amount": Infinity}'):
        response = service_client.post(URL, raw, content_type="application/json")
        assert response.status_code == 400
    assert Revenue.objects.count() == 0


# --- Staff endpoints ---------------------------------------------------------------------------


STAFF_URLS = ["/api/tokens/settings/", "/api/tokens/buy-orders/", "/api/tokens/metrics/",
              "/api/tokens/available-revenue/", "/api/tokens/buy-orders/preview/"]


def test_staff_endpoints_refuse_members_and_services(member_client, service_client):
    member = member_client(UserFactory())
    for url in STAFF_URLS:
        assert member.get(url).status_code == 403, url
        assert service_client.get(url).status_code in (401, 403), url
    assert member.post("/api/tokens/buy-orders/execute/", {}, format="json").status_code == 403
    assert member.patch("/api/tokens/settings/", {"enabled": False}, format="json").status_code == 403


def test_settings_get_and_update_with_audit(staff_client):
    assert staff_client.get("/api/tokens/settings/").json()["revenue_percentage"] == "0.1000"

    response = staff_client.patch("/api/tokens/settings/", {"revenue_percentage": "0.25", "timezone":
                                                           "Africa/Johannesburg"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["revenue_percentage"] == "0.2500"
    change = BuyOrderConfigChange.objects.get()
    assert change.changes["revenue_percentage"] == {"old": "0.1000", "new": "0.2500"}
    assert change.changed_by.is_staff
    bad = staff_client.patch("/api/tokens/settings/", {"min_buy_amount": "2000000"}, format="json")
    assert bad.status_code == 400 and "minimum" in bad.json()["message"]
    bad = staff_client.patch("/api/tokens/settings/", {"execution_schedule": "every day"}, format="json")
    assert bad.status_code == 400


def test_available_revenue_metrics_and_preview(staff_client, chain):
    revenue_track(source="course_sale", amount="5000")
    revenue_track(source="subscription", amount="2000")

    assert staff_client.get("/api/tokens/available-revenue/").json()["available_revenue"] == "700.00"
    preview = staff_client.get("/api/tokens/buy-orders/preview/").json()
    assert preview["would_execute"] and preview["amount"] == "700.00000000"
    assert BuyOrder.objects.count() == 0
    assert staff_client.get("/api/tokens/metrics/").json()["execution_count"] == 0


def test_execute_and_history(staff_client, chain):
    revenue_track(source="other", amount="10000")

    done = staff_client.post("/api/tokens/buy-orders/execute/", {}, format="json")
    small = staff_client.post("/api/tokens/buy-orders/execute/", {"amount": "50"}, format="json")
    bad = staff_client.post("/api/tokens/buy-orders/execute/", {"price_per_token": "0"}, format="json")

    assert done.status_code == 200 and done.json()["success"], done.json()
    assert Decimal(done.json()["tokens_acquired"]) > 0 and done.json()["rand_spent"] == "1000.00000000"
    assert small.status_code == 409 and small.json()["code"] == "below_minimum"
    assert bad.status_code == 400
    history = staff_client.get("/api/tokens/buy-orders/?limit=10&offset=0&status=completed").json()
    assert history["count"] == 1 and history["results"][0]["tx_hash"] == done.json()["transaction_hash"]
    assert history["results"][0]["executed_by"]
    assert staff_client.get("/api/tokens/buy-orders/?status=failed").json()["count"] == 0
    today = BuyOrder.objects.get().created_at.date().isoformat()
    assert staff_client.get(f"/api/tokens/buy-orders/?date_from={today}&date_to={today}").json()["count"] == 1
    assert staff_client.get("/api/tokens/buy-orders/?date_to=2000-01-01").json()["count"] == 0
    assert staff_client.get("/api/tokens/buy-orders/?limit=0").status_code == 400
    metrics = staff_client.get("/api/tokens/metrics/").json()
    assert metrics["execution_count"] == 1 and metrics["success_rate"] == "1.0000"


def test_a_manipulated_spot_defers_the_buy_with_a_409_and_spends_nothing(staff_client, chain):
    from tokens.models import BuyOrderDeferral

    from .conftest import move_spot

    revenue_track(source="other", amount="10000")
    move_spot(chain, "0.10")  # someone moved the pool 10% just before
    before = chain.client().balances()

    deferred = staff_client.post("/api/tokens/buy-orders/execute/", {}, format="json")

    assert deferred.status_code == 409 and deferred.json()["code"] == "price_deviation", deferred.json()
    assert not deferred.json()["result"]["success"] and BuyOrder.objects.count() == 0
    assert BuyOrderDeferral.objects.get().code == "price_deviation"
    assert chain.client().balances() == before
