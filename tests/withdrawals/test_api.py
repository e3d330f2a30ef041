from decimal import Decimal

import pytest

from accounts.models import User
from tests.factories import UserFactory
from tests.withdrawals.conftest import earn, trc20
from withdrawals.models import Withdrawal
from withdrawals.services import withdrawal_approve, withdrawal_request

pytestmark = pytest.mark.django_db

URL = "/api/me/withdrawals/"


@pytest.fixture
def member():
    return earn(UserFactory(), "100")


@pytest.fixture
def staff(member_client):
    return member_client(UserFactory(is_staff=True, is_superuser=True))


def passive(user) -> Decimal:
    return User.objects.values_list("balance_passive", flat=True).get(pk=user.pk)


def test_request_retry_and_reused_key(member, member_client):
    client = member_client(member)
    body = {"amount": "25.50", "destination": trc20(1)}
    r = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="req-1")
    assert r.status_code == 201, r.content
    data = r.json()
    assert (data["status"], data["method"], data["amount"], data["fee"], data["net_amount"]) == (
        "requested", "USDT-TRC20", "25.50000000", "1.00000000", "24.50000000")
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="req-1")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    conflict = client.post(URL, {**body, "amount": "26"}, format="json", HTTP_IDEMPOTENCY_KEY="req-1")
    assert conflict.status_code == 422
    assert "idempotency key" in conflict.json()["message"].lower()
    assert passive(member) == Decimal("74.50")
    no_key = client.post(URL, body, format="json")
    assert no_key.status_code == 201 and no_key.json()["id"] != data["id"]


@pytest.mark.parametrize(("body", "needle"), [
    ({"amount": "5", "destination": trc20(1)}, "smallest withdrawal"),
    ({"amount": "500", "destination": trc20(1)}, "Insufficient"),
    ({"amount": "20", "destination": "T" + "1" * 33}, "not a TRON address"),
    ({"amount": "20", "destination": trc20(1)[:-2] + "OO"}, "base58"),
    ({"amount": "20", "destination": trc20(1), "method": "BTC"}, "method"),
    ({"amount": "-20", "destination": trc20(1)}, "amount"),
    ({"amount": "abc", "destination": trc20(1)}, "amount"),
    ({"destination": trc20(1)}, "amount"),
])
def test_bad_requests_are_400_and_write_nothing(member, member_client, body, needle):
    r = member_client(member).post(URL, body, format="json")
    assert r.status_code == 400, r.content
    assert needle in r.json()["message"] or needle in str(r.json()["errors"])
    assert Withdrawal.objects.count() == 0 and passive(member) == Decimal("100")


def test_overlong_idempotency_key_is_a_clear_400(member, member_client):
    r = member_client(member).post(URL, {"amount": "20", "destination": trc20(1)}, format="json",
                                   HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert r.status_code == 400
    assert "idempotency key is too long" in r.json()["message"]


def test_list_is_mine_only_and_paginated(member, member_client):
    other = earn(UserFactory(), "100")
    for i in range(3):
        withdrawal_request(user=member, amount="10", destination=trc20(i))
    withdrawal_request(user=other, amount="10", destination=trc20(9))
    body = member_client(member).get(URL + "?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert member_client(member).get(URL + "?status=paid").json()["count"] == 0
    assert member_client(member).get(URL + "?status=nope").status_code == 400


def test_detail_shows_the_history(member, member_client):
    w = withdrawal_request(user=member, amount="10", destination=trc20(1))
    r = member_client(member).get(f"{URL}{w.pk}/")
    assert r.status_code == 200
    assert [e["status"] for e in r.json()["events"]] == ["requested"]
    assert member_client(UserFactory()).get(f"{URL}{w.pk}/").status_code == 404


def test_cancel_mine_while_requested(member, member_client):
    w = withdrawal_request(user=member, amount="30", destination=trc20(1))
    stranger = member_client(earn(UserFactory(), "10"))
    assert stranger.post(f"{URL}{w.pk}/cancel/").status_code == 404
    client = member_client(member)
    r = client.post(f"{URL}{w.pk}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert passive(member) == Decimal("100")
    again = client.post(f"{URL}{w.pk}/cancel/")
    assert again.status_code == 409
    assert "cancelled" in again.json()["message"]
    assert passive(member) == Decimal("100")


def test_staff_queue_and_transitions(member, member_client, staff):
    w = withdrawal_request(user=member, amount="30", destination=trc20(1))
    other = withdrawal_request(user=member, amount="20", destination=trc20(2))
    member_api = member_client(member)
    assert member_api.get("/api/withdrawals/").status_code == 403
    assert member_api.post(f"/api/withdrawals/{w.pk}/approve/").status_code == 403

    queue = staff.get("/api/withdrawals/?status=requested").json()
    assert [row["id"] for row in queue["results"]] == [w.pk, other.pk]  # oldest first
    assert queue["results"][0]["member_email"] == member.email

    assert staff.post(f"/api/withdrawals/{w.pk}/approve/").json()["status"] == "approved"
    assert staff.post(f"/api/withdrawals/{w.pk}/approve/").status_code == 409
    assert staff.post(f"/api/withdrawals/{w.pk}/mark-paid/", {}, format="json").status_code == 400
    paid = staff.post(f"/api/withdrawals/{w.pk}/mark-paid/", {"tx_ref": "0xabc"}, format="json")
    assert paid.status_code == 200 and paid.json()["tx_ref"] == "0xabc"
    assert staff.post(f"/api/withdrawals/{w.pk}/mark-paid/", {"tx_ref": "0xabc"}, format="json").status_code == 409
    assert staff.post(f"/api/withdrawals/{w.pk}/reject/", {"reason": "x"}, format="json").status_code == 409

    assert staff.post(f"/api/withdrawals/{other.pk}/reject/", {}, format="json").status_code == 400
    rejected = staff.post(f"/api/withdrawals/{other.pk}/reject/", {"reason": "Wrong network"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["reason"] == "Wrong network"
    assert staff.get("/api/withdrawals/?status=paid").json()["count"] == 1
    assert staff.post("/api/withdrawals/999999/approve/").status_code == 404
    assert passive(member) == Decimal("70")  # 30 paid out, 20 back


def test_schema_documents_the_endpoints(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/me/withdrawals/", "/api/me/withdrawals/{id}/cancel/", "/api/withdrawals/{id}/mark-paid/",
                 "/api/me/transfers/"):
        assert path in text
    assert "'409':" in text and "'422':" in text


def test_an_operator_never_approves_or_pays_their_own_withdrawal(member_client):
    operator = earn(UserFactory(is_staff=True, is_superuser=True), "100")
    own = withdrawal_request(user=operator, amount="30", destination=trc20(1))
    api = member_client(operator)

    refused = api.post(f"/api/withdrawals/{own.pk}/approve/")

    assert refused.status_code == 403 and refused.json()["code"] == "own_withdrawal"
    own.refresh_from_db()
    assert own.status == "requested"
    withdrawal_approve(withdrawal=own, approved_by=UserFactory(is_staff=True))  # another operator may
    refused = api.post(f"/api/withdrawals/{own.pk}/mark-paid/", {"tx_ref": "0xabc"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "own_withdrawal"
    own.refresh_from_db()
    assert own.status == "approved" and own.tx_ref == ""
