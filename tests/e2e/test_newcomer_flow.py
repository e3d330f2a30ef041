"""The foundation's "done when": log into the admin, register over the API, deposit, buy a
pack and see the ledger — through the real URLs, on the demo data."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

pytestmark = pytest.mark.django_db


def test_newcomer_flow(client, django_capture_on_commit_callbacks):
    call_command("seed_demo")
    # The operator logs into the admin with the printed login.
    assert client.login(email="admin@example.com", password="admin12345")
    assert client.get("/admin/").status_code == 200

    api = APIClient()
    alice_code = api.post("/api/auth/token/", {"email": "alice@example.com", "password": "demo-pass-123"},
                          format="json")
    assert alice_code.status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {alice_code.json()['token']}")
    referral_code = api.get("/api/me/").json()["referral_code"]

    anon = APIClient()
    reg = anon.post("/api/auth/register/", {"email": "newbie@example.com", "password": "N3wbie-pass!",
                                            "referral_code": referral_code}, format="json")
    assert reg.status_code == 201
    member = APIClient()
    member.credentials(HTTP_AUTHORIZATION=f"Token {reg.json()['token']}")

    _, key = APIKey.objects.create_key(name="payments")
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    dep = service.post("/api/service/deposits/", {"email": "newbie@example.com", "amount": "1000",
                                                  "reference": "psp-777"}, format="json")
    assert dep.status_code == 201

    projects = member.get("/api/projects/").json()
    jetup = next(p for p in projects if p["name"] == "JETUP")
    starter = next(o for o in jetup["options"] if o["name"] == "Starter")
    with django_capture_on_commit_callbacks(execute=True):
        buy = member.post("/api/purchases/", {"option": starter["id"], "packs": 2}, format="json",
                          HTTP_IDEMPOTENCY_KEY="first-buy")
    assert buy.status_code == 201, buy.content
    assert buy.json()["shares"] == 4000

    me = member.get("/api/me/").json()
    assert Decimal(me["balance_active"]) == Decimal("1000") - 2 * Decimal(starter["pack_price"])
    active_rows = member.get("/api/me/ledger/?wallet=active").json()["results"]
    assert [r["reason"] for r in active_rows] == ["purchase", "deposit"]
    assert Decimal(active_rows[0]["balance_after"]) == Decimal(me["balance_active"])
    call_command("check_ledger")
