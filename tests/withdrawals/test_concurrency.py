"""Concurrent withdrawals on PostgreSQL with real row locks."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import LedgerEntry, User
from accounts.services import InsufficientFunds
from common.errors import ConflictError
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.withdrawals.conftest import earn, trc20
from withdrawals.models import Withdrawal
from withdrawals.services import (
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_request_with_status,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_concurrent_requests_reserve_exactly_the_affordable_ones():
    member = earn(UserFactory(), "100")  # 6 requests of 15 fit (90), the 7th would not

    def request(i):
        try:
            withdrawal_request(user=member, amount="15", destination=trc20(i), idempotency_key=f"w{i}")
        except InsufficientFunds:
            return "refused"
        return "ok"

    results, errors = run_concurrently(request, [(i,) for i in range(20)])

    assert errors == []
    assert sorted(results) == ["ok"] * 6 + ["refused"] * 14
    member.refresh_from_db()
    assert member.balance_passive == Decimal("10")
    assert Withdrawal.objects.filter(user=member).count() == 6
    assert LedgerEntry.objects.filter(user=member, reason=LedgerEntry.Reason.WITHDRAWAL).count() == 6
    assert User.objects.filter(balance_passive__lt=0).count() == 0
    call_command("check_ledger")


def test_concurrent_retries_with_one_key_request_once():
    member = earn(UserFactory(), "100")
    outcomes, errors = run_concurrently(
        lambda: withdrawal_request_with_status(user=member, amount="40", destination=trc20(1),
                                               idempotency_key="same"), 10)
    assert errors == []
    assert len({w.pk for w, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False] * 9 + [True]
    member.refresh_from_db()
    assert member.balance_passive == Decimal("60")
    call_command("check_ledger")


def test_racing_transitions_one_wins_and_money_moves_once():
    member = earn(UserFactory(), "100")
    w = withdrawal_request(user=member, amount="40", destination=trc20(1))
    operator = UserFactory(is_staff=True)
    actions = [lambda: withdrawal_cancel(withdrawal=w), lambda: withdrawal_approve(withdrawal=w, approved_by=operator),
               lambda: withdrawal_reject(withdrawal=w, reason="no"), lambda: withdrawal_cancel(withdrawal=w)] * 3

    def run(action):
        try:
            return action().status
        except ConflictError:
            return "conflict"

    results, errors = run_concurrently(run, [(a,) for a in actions])
    assert errors == []
    winners = [r for r in results if r != "conflict"]
    w.refresh_from_db()
    # A cancel or a reject won (every other action refused), or the approve won and one reject
    # followed it (an approved withdrawal can still be rejected, not cancelled).
    assert sorted(winners) in (["cancelled"], ["rejected"], ["approved", "rejected"])
    assert w.status == ("rejected" if "rejected" in winners else "cancelled")
    returns = LedgerEntry.objects.filter(reason=LedgerEntry.Reason.WITHDRAWAL_RETURN).count()
    assert returns == (1 if w.status in ("cancelled", "rejected") else 0)
    call_command("check_ledger")
