"""Transfers (money-lifecycle §4): passive → active with the transfer bonus, member → member."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts.models import LedgerEntry, User, Wallet, WalletSettings
from accounts.selectors import system_root
from accounts.services import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    MEMBER_TRANSFER_KEY_PREFIX,
    TRANSFER_KEY_PREFIX,
    InsufficientFunds,
    Posting,
    wallet_post,
    wallet_transfer_to_active,
    wallet_transfer_to_active_with_status,
    wallet_transfer_to_member,
)
from common.errors import IdempotencyConflict
from tests.concurrency import run_concurrently
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def earn(user, amount):
    wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=Decimal(amount),
                         reason=LedgerEntry.Reason.BONUS, idempotency_key=f"earn:{user.pk}:{amount}")])
    user.refresh_from_db()
    return user


def balances(user) -> tuple[Decimal, Decimal]:
    return tuple(User.objects.values_list("balance_active", "balance_passive").get(pk=user.pk))


def code_of(exc, field):
    return exc.error_dict[field][0].code


# --- passive → active --------------------------------------------------------------------------

def test_transfer_pays_the_bonus_on_its_own_row():
    user = earn(UserFactory(), "100")
    rows = wallet_transfer_to_active(user=user, amount="50", idempotency_key="t1")
    assert [(r.wallet, r.amount, r.reason) for r in rows] == [
        ("passive", Decimal("-50"), "transfer"), ("active", Decimal("50"), "transfer"),
        ("active", Decimal("1.00"), "transfer_bonus")]
    assert balances(user) == (Decimal("51"), Decimal("50"))
    assert (user.balance_active, user.balance_passive) == (Decimal("51"), Decimal("50"))  # the caller's instance
    call_command("check_ledger")


def test_bonus_is_rounded_to_cents_and_follows_the_setting():
    user = earn(UserFactory(), "100")
    wallet_transfer_to_active(user=user, amount="12.345")  # 2% = 0.2469 → 0.25
    assert LedgerEntry.objects.get(user=user, reason="transfer_bonus").amount == Decimal("0.25")
    WalletSettings.objects.filter(pk=1).update(transfer_bonus_rate=Decimal("0.05"))
    WalletSettings.load()  # the row exists (or is created) either way
    wallet_transfer_to_active(user=user, amount="10")
    assert list(LedgerEntry.objects.filter(user=user, reason="transfer_bonus").order_by("id")
                .values_list("amount", flat=True)) == [Decimal("0.25"), Decimal("0.50")]


def test_rate_zero_turns_the_bonus_off():
    settings_row = WalletSettings.load()
    settings_row.transfer_bonus_rate = Decimal("0")
    settings_row.save()
    user = earn(UserFactory(), "100")
    rows = wallet_transfer_to_active(user=user, amount="40")
    assert len(rows) == 2
    assert not LedgerEntry.objects.filter(reason="transfer_bonus").exists()
    assert balances(user) == (Decimal("40"), Decimal("60"))


def test_same_key_transfers_once_and_a_different_amount_conflicts():
    user = earn(UserFactory(), "100")
    first, created = wallet_transfer_to_active_with_status(user=user, amount="30", idempotency_key="k")
    again, created_again = wallet_transfer_to_active_with_status(user=user, amount="30", idempotency_key="k")
    assert (created, created_again) == (True, False)
    assert [r.pk for r in again] == [r.pk for r in first]
    with pytest.raises(IdempotencyConflict) as exc_info:
        wallet_transfer_to_active(user=user, amount="31", idempotency_key="k")
    assert code_of(exc_info.value, "idempotency_key") == "idempotency_conflict"
    assert exc_info.value.http_status == 422
    assert balances(user) == (Decimal("30.60"), Decimal("70"))


def test_short_balance_moves_nothing():
    user = earn(UserFactory(), "10")
    with pytest.raises(InsufficientFunds):
        wallet_transfer_to_active(user=user, amount="10.01")
    assert balances(user) == (0, Decimal("10"))
    assert not LedgerEntry.objects.filter(reason__in=["transfer", "transfer_bonus"]).exists()


def test_idempotency_key_length_is_bounded_with_room_for_the_prefixes():
    user = earn(UserFactory(), "100")
    with pytest.raises(ValidationError) as exc_info:
        wallet_transfer_to_active(user=user, amount="1", idempotency_key="k" * 195)
    assert code_of(exc_info.value, "idempotency_key") == "invalid_idempotency_key"
    assert "too long" in exc_info.value.messages[0]
    with pytest.raises(ValidationError):
        wallet_transfer_to_active(user=user, amount="1", idempotency_key="bad\nkey")
    # The longest key that is accepted fits the ledger's column with the largest member id.
    column = LedgerEntry._meta.get_field("idempotency_key").max_length
    biggest_id = str(2**63 - 1)
    for prefix in (TRANSFER_KEY_PREFIX, MEMBER_TRANSFER_KEY_PREFIX):
        assert len(f"{prefix}:{biggest_id}:{'k' * IDEMPOTENCY_KEY_MAX_LENGTH}:bonus") <= column
    rows = wallet_transfer_to_active(user=user, amount="1", idempotency_key="k" * IDEMPOTENCY_KEY_MAX_LENGTH)
    assert len(rows) == 3


def test_transfer_api_status_retry_conflict_and_long_key(member_client):
    user = earn(UserFactory(), "100")
    client = member_client(user)
    r = client.post("/api/me/transfer/", {"amount": "20"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert r.status_code == 201
    assert [row["reason"] for row in r.json()] == ["transfer", "transfer", "transfer_bonus"]
    retry = client.post("/api/me/transfer/", {"amount": "20"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert retry.status_code == 200 and [x["id"] for x in retry.json()] == [x["id"] for x in r.json()]
    assert client.post("/api/me/transfer/", {"amount": "21"}, format="json",
                       HTTP_IDEMPOTENCY_KEY="a1").status_code == 422
    long_key = client.post("/api/me/transfer/", {"amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 195)
    assert long_key.status_code == 400
    assert "idempotency key is too long" in long_key.json()["message"]
    assert balances(user) == (Decimal("20.40"), Decimal("80"))


# --- member → member ---------------------------------------------------------------------------

@pytest.fixture
def pair():
    alice = UserFactory(email="alice@example.com", balance="100")
    earn(alice, "50")
    bob = UserFactory(email="bob@example.com")
    return alice, bob


def test_member_transfer_from_active_and_passive(pair):
    alice, bob = pair
    rows = wallet_transfer_to_member(sender=alice, receiver=bob, amount="30")
    assert [(r.user_id, r.wallet, r.amount, r.reason) for r in rows] == [
        (alice.pk, "active", Decimal("-30"), "member_transfer"), (bob.pk, "active", Decimal("30"), "member_transfer")]
    wallet_transfer_to_member(sender=alice, receiver=bob, amount="20", wallet="passive")
    assert balances(alice) == (Decimal("70"), Decimal("30"))
    assert balances(bob) == (Decimal("50"), 0)
    assert not LedgerEntry.objects.filter(reason="transfer_bonus").exists()  # no bonus between members
    call_command("check_ledger")


def test_member_transfer_refusals_write_nothing(pair):
    alice, bob = pair
    before = LedgerEntry.objects.count()
    cases = [
        (dict(receiver=alice), "receiver", "self_transfer"),
        (dict(receiver=system_root()), "receiver", "root_receiver"),
        (dict(receiver=bob, wallet="savings"), "wallet", "invalid_wallet"),
    ]
    for kwargs, field, code in cases:
        with pytest.raises(ValidationError) as exc_info:
            wallet_transfer_to_member(sender=alice, amount="1", **kwargs)
        assert code_of(exc_info.value, field) == code, kwargs
    with pytest.raises(InsufficientFunds):
        wallet_transfer_to_member(sender=alice, receiver=bob, amount="100.01")
    with pytest.raises(InsufficientFunds):
        wallet_transfer_to_member(sender=alice, receiver=bob, amount="50.01", wallet="passive")
    User.objects.filter(pk=bob.pk).update(is_active=False)
    with pytest.raises(ValidationError) as exc_info:
        wallet_transfer_to_member(sender=alice, receiver=bob, amount="1")
    assert code_of(exc_info.value, "receiver") == "inactive_receiver"
    assert LedgerEntry.objects.count() == before
    assert balances(alice) == (Decimal("100"), Decimal("50")) and balances(bob) == (0, 0)


def test_member_transfer_is_idempotent_by_key(pair):
    alice, bob = pair
    carol = UserFactory()
    first = wallet_transfer_to_member(sender=alice, receiver=bob, amount="10", idempotency_key="gift")
    again = wallet_transfer_to_member(sender=alice, receiver=bob, amount="10", idempotency_key="gift")
    assert [r.pk for r in again] == [r.pk for r in first]
    for kwargs in (dict(receiver=carol, amount="10"), dict(receiver=bob, amount="11"),
                   dict(receiver=bob, amount="10", wallet="passive")):
        with pytest.raises(IdempotencyConflict):
            wallet_transfer_to_member(sender=alice, idempotency_key="gift", **kwargs)
    # The key is the sender's: bob may use "gift" too.
    wallet_transfer_to_member(sender=bob, receiver=alice, amount="1", idempotency_key="gift")
    assert balances(alice) == (Decimal("91"), Decimal("50")) and balances(bob) == (Decimal("9"), 0)


def test_member_transfer_api_by_email_and_referral_code(pair, member_client):
    alice, bob = pair
    client = member_client(alice)
    r = client.post("/api/me/transfers/", {"email": "BOB@example.com", "amount": "15"}, format="json",
                    HTTP_IDEMPOTENCY_KEY="m1")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["receiver"], body["wallet"], body["amount"]) == ("bob@example.com", "active", "15.00000000")
    assert [e["amount"] for e in body["entries"]] == ["-15.00000000"]  # only my side, not bob's balance
    retry = client.post("/api/me/transfers/", {"email": "bob@example.com", "amount": "15"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="m1")
    assert retry.status_code == 200 and retry.json()["entries"][0]["id"] == body["entries"][0]["id"]
    assert client.post("/api/me/transfers/", {"email": "bob@example.com", "amount": "16"}, format="json",
                       HTTP_IDEMPOTENCY_KEY="m1").status_code == 422

    r = client.post("/api/me/transfers/", {"referral_code": bob.referral_code.lower(), "amount": "5",
                                           "wallet": "passive"}, format="json")
    assert r.status_code == 201 and r.json()["wallet"] == "passive"
    assert balances(bob) == (Decimal("20"), 0)
    assert balances(alice) == (Decimal("85"), Decimal("45"))


@pytest.mark.parametrize(("body", "needle"), [
    ({"email": "alice@example.com", "amount": "1"}, "yourself"),
    ({"email": "root@system.local", "amount": "1"}, "system root"),
    ({"email": "nobody@example.com", "amount": "1"}, "No member"),
    ({"referral_code": "NOPE1234", "amount": "1"}, "No member"),
    ({"amount": "1"}, "email or by referral_code"),
    ({"email": "bob@example.com", "referral_code": "X", "amount": "1"}, "email or by referral_code"),
    ({"email": "bob@example.com", "amount": "1000"}, "Insufficient"),
    ({"email": "bob@example.com", "amount": "-1"}, "amount"),
    ({"email": "bob@example.com", "amount": "1", "wallet": "savings"}, "wallet"),
])
def test_member_transfer_api_refusals(pair, member_client, body, needle):
    alice, _ = pair
    before = LedgerEntry.objects.count()
    r = member_client(alice).post("/api/me/transfers/", body, format="json")
    assert r.status_code == 400, r.content
    assert needle in r.json()["message"] or needle in str(r.json()["errors"])
    assert LedgerEntry.objects.count() == before


def test_admin_member_transfer_page(pair, client):
    alice, bob = pair
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    url = f"/admin/accounts/user/{alice.pk}/transfer/"
    assert client.get(url).status_code == 200
    form = {"receiver": bob.referral_code, "wallet": "passive", "amount": "12.5", "reference": "ticket-7"}
    assert client.post(url, form).status_code == 302
    client.post(url, form)  # the same reference: moved once
    assert balances(bob) == (Decimal("12.5"), 0) and balances(alice) == (Decimal("100"), Decimal("37.5"))
    assert LedgerEntry.objects.get(user=bob, reason="member_transfer").created_by == operator
    # The service's refusal is shown on the form.
    r = client.post(url, {**form, "receiver": alice.email, "reference": "ticket-8"})
    assert r.status_code == 200 and "yourself" in r.content.decode()
    r = client.post(url, {**form, "amount": "999", "reference": "ticket-9"})
    assert r.status_code == 200 and "Insufficient" in r.content.decode()


def test_admin_edits_the_wallet_settings(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    assert client.get("/admin/accounts/walletsettings/").status_code == 200
    r = client.post("/admin/accounts/walletsettings/1/change/",
                    {"transfer_bonus_rate": "0.03", "withdrawal_min": "20", "withdrawal_fee": "1.5"})
    assert r.status_code == 302
    row = WalletSettings.load()
    assert (row.transfer_bonus_rate, row.withdrawal_min, row.withdrawal_fee) == (
        Decimal("0.03"), Decimal("20"), Decimal("1.5"))
    assert client.get("/admin/accounts/walletsettings/add/").status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_crossing_member_transfers_do_not_deadlock_or_overspend():
    alice, bob = UserFactory(balance="100"), UserFactory(balance="100")
    calls = [(alice, bob) if i % 2 else (bob, alice) for i in range(20)]

    def send(sender, receiver):
        try:
            wallet_transfer_to_member(sender=sender, receiver=receiver, amount="15")
        except InsufficientFunds:
            return "refused"
        return "ok"

    results, errors = run_concurrently(send, calls)
    assert errors == []
    total = sum(balances(alice)) + sum(balances(bob))
    assert total == Decimal("200") and min(balances(alice) + balances(bob)) >= 0
    call_command("check_ledger")
