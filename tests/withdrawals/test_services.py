from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import LedgerEntry, User, WalletSettings
from accounts.selectors import system_root
from accounts.services import InsufficientFunds
from common.errors import ConflictError, IdempotencyConflict
from tests.factories import UserFactory
from tests.withdrawals.conftest import earn, trc20
from withdrawals.models import Withdrawal, WithdrawalEvent
from withdrawals.services import (
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_mark_paid,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_request_with_status,
)
from withdrawals.signals import withdrawal_changed

pytestmark = pytest.mark.django_db


def code_of(exc: ValidationError, field: str) -> str:
    return exc.error_dict[field][0].code


@pytest.fixture
def member():
    return earn(UserFactory(), "100")


def passive(user) -> Decimal:
    return User.objects.values_list("balance_passive", flat=True).get(pk=user.pk)


def test_request_reserves_the_amount_at_once(member):
    w = withdrawal_request(user=member, amount="25", destination=trc20(1))
    assert (w.status, w.method, w.amount, w.fee, w.net_amount) == (
        "requested", "USDT-TRC20", Decimal("25"), Decimal("1"), Decimal("24"))
    assert passive(member) == Decimal("75") == member.balance_passive
    entry = LedgerEntry.objects.get(reason=LedgerEntry.Reason.WITHDRAWAL)
    assert (entry.user_id, entry.wallet, entry.amount, entry.cause) == (member.pk, "passive", Decimal("-25"), w)
    call_command("check_ledger")


def test_minimum_and_fee_come_from_the_settings(member):
    with pytest.raises(ValidationError) as exc_info:
        withdrawal_request(user=member, amount="9.99", destination=trc20(1))
    assert code_of(exc_info.value, "amount") == "below_minimum"
    assert "10.00 USD" in exc_info.value.messages[0]
    withdrawal_request(user=member, amount="10", destination=trc20(1))  # the minimum itself is fine

    WalletSettings.objects.filter(pk=1).update(withdrawal_min=Decimal("2"), withdrawal_fee=Decimal("2.50"))
    w = withdrawal_request(user=member, amount="20", destination=trc20(1))
    assert (w.fee, w.net_amount) == (Decimal("2.50"), Decimal("17.50"))
    with pytest.raises(ValidationError) as exc_info:  # nothing would be left after the fee
        withdrawal_request(user=member, amount="2.50", destination=trc20(1))
    assert code_of(exc_info.value, "amount") == "below_fee"
    assert Withdrawal.objects.count() == 2


def test_above_the_balance_writes_nothing(member):
    with pytest.raises(InsufficientFunds):
        withdrawal_request(user=member, amount="100.01", destination=trc20(1))
    assert Withdrawal.objects.count() == 0
    assert not LedgerEntry.objects.filter(reason=LedgerEntry.Reason.WITHDRAWAL).exists()
    assert passive(member) == Decimal("100")
    withdrawal_request(user=member, amount="100", destination=trc20(1))  # all of it is fine
    assert passive(member) == 0


@pytest.mark.parametrize(("amount", "field", "code"), [
    ("12.345", "amount", "invalid_amount"), ("-5", "amount", None), ("0", "amount", None),
])
def test_bad_amounts(member, amount, field, code):
    with pytest.raises(ValidationError) as exc_info:
        withdrawal_request(user=member, amount=amount, destination=trc20(1))
    assert field in exc_info.value.error_dict
    if code:
        assert code_of(exc_info.value, field) == code
    assert Withdrawal.objects.count() == 0


def test_bad_address_writes_nothing(member):
    good = trc20(4)
    for bad in ("X" + good[1:], good[:-1], good[:3] + "0" + good[4:], good[:-1] + ("1" if good[-1] != "1" else "2")):
        with pytest.raises(ValidationError) as exc_info:
            withdrawal_request(user=member, amount="20", destination=bad)
        assert code_of(exc_info.value, "destination") == "invalid_address"
    with pytest.raises(ValidationError) as exc_info:
        withdrawal_request(user=member, amount="20", destination=good, method="PAYPAL")
    assert code_of(exc_info.value, "method") == "invalid_method"
    assert Withdrawal.objects.count() == 0 and passive(member) == Decimal("100")


def test_same_key_same_request_different_body_conflict(member):
    first, created = withdrawal_request_with_status(user=member, amount="30", destination=trc20(1),
                                                    idempotency_key="k-1")
    again, created_again = withdrawal_request_with_status(user=member, amount="30.00", destination=trc20(1),
                                                          idempotency_key=" k-1 ")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert passive(member) == Decimal("70")
    for body in ({"amount": "31", "destination": trc20(1)}, {"amount": "30", "destination": trc20(2)}):
        with pytest.raises(IdempotencyConflict) as exc_info:
            withdrawal_request(user=member, idempotency_key="k-1", **body)
        assert code_of(exc_info.value, "idempotency_key") == "idempotency_conflict"
    # The key is per member.
    other = earn(UserFactory(), "50")
    assert withdrawal_request(user=other, amount="30", destination=trc20(1), idempotency_key="k-1").pk != first.pk
    assert Withdrawal.objects.count() == 2


def test_idempotency_key_is_bounded(member):
    with pytest.raises(ValidationError) as exc_info:
        withdrawal_request(user=member, amount="20", destination=trc20(1), idempotency_key="k" * 101)
    assert code_of(exc_info.value, "idempotency_key") == "invalid_idempotency_key"
    withdrawal_request(user=member, amount="20", destination=trc20(1), idempotency_key="k" * 100)


def test_the_system_root_does_not_withdraw():
    root = earn(system_root(), "50")
    with pytest.raises(ValidationError) as exc_info:
        withdrawal_request(user=root, amount="20", destination=trc20(1))
    assert code_of(exc_info.value, "user") == "root_withdrawal"


def test_approve_then_pay(member):
    operator = UserFactory(is_staff=True)
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    withdrawal_approve(withdrawal=w, approved_by=operator)
    assert (w.status, w.approved_by_id) == ("approved", operator.pk) and w.approved_at
    with pytest.raises(ValidationError) as exc_info:
        withdrawal_mark_paid(withdrawal=w, tx_ref="  ")
    assert code_of(exc_info.value, "tx_ref") == "required"
    paid = withdrawal_mark_paid(withdrawal=w, tx_ref=" abc123 ", paid_by=operator)
    assert (paid.status, paid.tx_ref, paid.paid_by_id) == ("paid", "abc123", operator.pk)
    assert passive(member) == Decimal("60")  # paid out: the reserve is gone for good
    assert not LedgerEntry.objects.filter(reason=LedgerEntry.Reason.WITHDRAWAL_RETURN).exists()
    call_command("check_ledger")


@pytest.mark.parametrize("path", ["approve", "pay", "reject_requested", "reject_approved", "cancel"])
def test_each_transition_happens_once(member, path):
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    steps = {
        "approve": [lambda: withdrawal_approve(withdrawal=w)],
        "pay": [lambda: withdrawal_approve(withdrawal=w), lambda: withdrawal_mark_paid(withdrawal=w, tx_ref="tx")],
        "reject_requested": [lambda: withdrawal_reject(withdrawal=w, reason="bad")],
        "reject_approved": [lambda: withdrawal_approve(withdrawal=w),
                            lambda: withdrawal_reject(withdrawal=w, reason="x")],
        "cancel": [lambda: withdrawal_cancel(withdrawal=w)],
    }[path]
    for step in steps:
        step()
    balance, rows = passive(member), LedgerEntry.objects.count()
    with pytest.raises(ConflictError) as exc_info:
        steps[-1]()  # the same transition again
    assert code_of(exc_info.value, "status") == "invalid_transition"
    assert exc_info.value.http_status == 409
    assert (passive(member), LedgerEntry.objects.count()) == (balance, rows)
    call_command("check_ledger")


def test_wrong_state_transitions_are_conflicts(member):
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    with pytest.raises(ConflictError):
        withdrawal_mark_paid(withdrawal=w, tx_ref="tx")  # not approved yet
    withdrawal_approve(withdrawal=w)
    with pytest.raises(ConflictError, match="approved"):
        withdrawal_cancel(withdrawal=w)  # the member cannot cancel once an operator approved it
    withdrawal_mark_paid(withdrawal=w, tx_ref="tx")
    for attempt in (lambda: withdrawal_reject(withdrawal=w, reason="late"), lambda: withdrawal_cancel(withdrawal=w),
                    lambda: withdrawal_approve(withdrawal=w)):
        with pytest.raises(ConflictError):
            attempt()
    w.refresh_from_db()
    assert w.status == "paid"


def test_stale_instance_is_checked_against_the_row(member):
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    stale = Withdrawal.objects.get(pk=w.pk)
    withdrawal_cancel(withdrawal=w)
    with pytest.raises(ConflictError):
        withdrawal_approve(withdrawal=stale)  # its in-memory status still says requested


@pytest.mark.parametrize("undo", ["reject", "cancel"])
def test_reject_and_cancel_give_the_money_back(member, undo):
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    assert passive(member) == Decimal("60")
    if undo == "reject":
        with pytest.raises(ValidationError) as exc_info:
            withdrawal_reject(withdrawal=w, reason="")
        assert code_of(exc_info.value, "reason") == "required"
        withdrawal_reject(withdrawal=w, reason="Address on a sanctions list.")
        assert (w.status, w.reason) == ("rejected", "Address on a sanctions list.")
    else:
        withdrawal_cancel(withdrawal=w)
        assert w.status == "cancelled" and w.cancelled_at
    assert passive(member) == Decimal("100")
    back = LedgerEntry.objects.get(reason=LedgerEntry.Reason.WITHDRAWAL_RETURN)
    assert (back.wallet, back.amount, back.cause) == ("passive", Decimal("40"), w)
    call_command("check_ledger")


def test_every_change_is_an_event_an_email_and_a_signal(member, mailoutbox, django_capture_on_commit_callbacks):
    received = []

    def listener(sender, withdrawal, event, **kwargs):
        received.append((withdrawal.pk, event.status))

    withdrawal_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            w = withdrawal_request(user=member, amount="40", destination=trc20(1))
        with django_capture_on_commit_callbacks(execute=True):
            withdrawal_approve(withdrawal=w)
        with django_capture_on_commit_callbacks(execute=True):
            withdrawal_mark_paid(withdrawal=w, tx_ref="0xfeed")
    finally:
        withdrawal_changed.disconnect(listener)
    assert received == [(w.pk, "requested"), (w.pk, "approved"), (w.pk, "paid")]
    assert list(w.events.values_list("status", flat=True)) == ["requested", "approved", "paid"]
    assert [m.to for m in mailoutbox] == [[member.email]] * 3
    assert "0xfeed" in mailoutbox[2].body and "39.00 USD" in mailoutbox[2].body
    assert not WithdrawalEvent.objects.filter(emailed_at__isnull=True).exists()

    # A retried e-mail task sends nothing more.
    from withdrawals.tasks import withdrawal_event_email_task

    assert withdrawal_event_email_task(w.events.first().pk) is False
    assert len(mailoutbox) == 3


def test_a_refused_transition_sends_nothing(member, mailoutbox, django_capture_on_commit_callbacks):
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    withdrawal_cancel(withdrawal=w)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(ConflictError):
        withdrawal_cancel(withdrawal=w)
    assert callbacks == [] and w.events.count() == 2


def test_services_are_importable_from_accounts_services():
    import accounts.services as a
    import withdrawals.services as w

    for name in ("withdrawal_request", "withdrawal_approve", "withdrawal_mark_paid", "withdrawal_reject",
                 "withdrawal_cancel"):
        assert getattr(a, name) is getattr(w, name)
    from accounts.services import withdrawal_request as imported

    assert imported is w.withdrawal_request
    with pytest.raises(AttributeError):
        a.no_such_thing  # noqa: B018


def test_database_constraints_hold_the_money_fields(member):
    from django.db import IntegrityError, transaction

    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    for change in ({"net_amount": Decimal("40")}, {"fee": Decimal("-1"), "net_amount": Decimal("41")},
                   {"status": "paid"}, {"status": "rejected"}, {"status": "lost"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Withdrawal.objects.filter(pk=w.pk).update(**change)


# --- check_ledger: the reserve check (money-lifecycle §5) ---------------------------------------

def test_check_ledger_catches_a_tampered_reserve(member, capsys):
    held = withdrawal_request(user=member, amount="20", destination=trc20(1))
    cancelled = withdrawal_request(user=member, amount="30", destination=trc20(2))
    withdrawal_cancel(withdrawal=cancelled)
    call_command("check_ledger")

    # A status changed behind the services' back: "cancelled" without the money back.
    Withdrawal.objects.filter(pk=held.pk).update(status="cancelled", cancelled_at=held.created_at)
    with pytest.raises(CommandError, match="1 withdrawal reserve"):
        call_command("check_ledger")
    assert f"withdrawal #{held.pk}" in capsys.readouterr().err
    Withdrawal.objects.filter(pk=held.pk).update(status="requested")
    call_command("check_ledger")

    # The amount edited after the reserve was taken.
    Withdrawal.objects.filter(pk=held.pk).update(amount=Decimal("21"), net_amount=Decimal("20"))
    with pytest.raises(CommandError, match="1 withdrawal reserve"):
        call_command("check_ledger")


def test_check_ledger_catches_a_return_on_a_held_or_paid_withdrawal(member):
    from accounts.services import Posting, wallet_post

    w = withdrawal_request(user=member, amount="20", destination=trc20(1))
    withdrawal_approve(withdrawal=w)
    withdrawal_mark_paid(withdrawal=w, tx_ref="tx")
    # Money given back on a paid withdrawal: balances still match their rows, the reserve does not.
    wallet_post([Posting(user_id=member.pk, wallet="passive", amount=Decimal("20"),
                         reason=LedgerEntry.Reason.WITHDRAWAL_RETURN, idempotency_key=w.return_key, cause=w)])
    with pytest.raises(CommandError, match="1 withdrawal reserve") as exc_info:
        call_command("check_ledger")
    assert "wallet balance" not in str(exc_info.value)


def test_check_ledger_catches_a_withdrawal_row_without_a_withdrawal(member, capsys):
    from accounts.services import Posting, wallet_post

    wallet_post([Posting(user_id=member.pk, wallet="passive", amount=Decimal("-5"),
                         reason=LedgerEntry.Reason.WITHDRAWAL, idempotency_key="stray")])
    with pytest.raises(CommandError, match="1 withdrawal reserve"):
        call_command("check_ledger")
    assert "points at no withdrawal" in capsys.readouterr().err
