"""The clawback debt in `wallet_post`: a passive debit that may leave a debt, and passive
credits that repay it first (money-lifecycle §2)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import DebtEntry, LedgerEntry, Wallet
from accounts.selectors import clawback_debt, debt_mismatches, ledger_mismatches
from accounts.services import Posting, wallet_post
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
D = Decimal


def credit(user, amount, key, **kwargs):
    return wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=D(amount),
                                reason=LedgerEntry.Reason.BONUS, idempotency_key=key, **kwargs)])


def clawback(user, amount, key):
    return wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=-D(amount),
                                reason=LedgerEntry.Reason.BONUS_REVERSAL, idempotency_key=key, allow_debt=True)])


def test_debit_beyond_the_balance_takes_what_there_is_and_the_rest_is_debt():
    m = UserFactory()
    credit(m, "30", "c1")
    rows = clawback(m, "100", "r1")
    m.refresh_from_db()
    assert [(r.amount, r.balance_after, r.reason) for r in rows] == [(D("-30"), D("0"), "bonus_reversal")]
    assert (m.balance_passive, m.clawback_debt, clawback_debt(user=m)) == (D("0"), D("70"), D("70"))
    debt = DebtEntry.objects.get(user=m)
    assert (debt.amount, debt.debt_after, debt.reason, debt.idempotency_key) == (D("70"), D("70"), "clawback", "r1")
    assert debt_mismatches() == [] and ledger_mismatches() == []


def test_zero_balance_leaves_only_a_debt_and_a_retry_adds_nothing():
    m = UserFactory()
    assert clawback(m, "25", "r1") == []
    assert clawback(m, "25", "r1") == []  # the key is found among the debt entries
    m.refresh_from_db()
    assert (m.balance_passive, m.clawback_debt) == (D("0"), D("25"))
    assert DebtEntry.objects.count() == 1 and not LedgerEntry.objects.filter(user=m).exists()


def test_next_passive_credit_pays_the_debt_first_with_both_rows():
    m = UserFactory()
    clawback(m, "100", "r1")
    rows = credit(m, "60", "c1")  # all of it goes to the debt
    assert [(r.amount, r.balance_after, r.reason, r.idempotency_key) for r in rows] == [
        (D("60"), D("60"), "bonus", "c1"), (D("-60"), D("0"), "clawback", "c1:clawback")]
    rows = credit(m, "50", "c2")  # 40 to the debt, 10 stays
    assert [(r.amount, r.balance_after, r.reason) for r in rows] == [
        (D("50"), D("50"), "bonus"), (D("-40"), D("10"), "clawback")]
    m.refresh_from_db()
    assert (m.balance_passive, m.clawback_debt) == (D("10"), D("0"))
    assert [(e.amount, e.debt_after, e.reason) for e in DebtEntry.objects.order_by("id")] == [
        (D("100"), D("100"), "clawback"), (D("-60"), D("40"), "repayment"), (D("-40"), D("0"), "repayment")]
    rows = credit(m, "5", "c3")  # no debt left: a plain credit
    assert [r.reason for r in rows] == ["bonus"]
    assert credit(m, "50", "c2") == []  # a retry repays nothing twice
    m.refresh_from_db()
    assert (m.balance_passive, m.clawback_debt) == (D("15"), D("0"))
    assert debt_mismatches() == [] and ledger_mismatches() == []
    call_command("check_ledger")


def test_active_credits_do_not_repay_the_debt():
    m = UserFactory()
    clawback(m, "10", "r1")
    wallet_post([Posting(user_id=m.pk, wallet=Wallet.ACTIVE, amount=D("10"), reason=LedgerEntry.Reason.DEPOSIT,
                         idempotency_key="d1")])
    m.refresh_from_db()
    assert (m.balance_active, m.clawback_debt) == (D("10"), D("10"))


def test_debt_only_on_passive_debits():
    m = UserFactory()
    for wallet, amount in ((Wallet.ACTIVE, "-5"), (Wallet.PASSIVE, "5")):
        with pytest.raises(ValidationError) as exc:
            wallet_post([Posting(user_id=m.pk, wallet=wallet, amount=D(amount), reason="adjustment",
                                 idempotency_key=f"x{wallet}", allow_debt=True)])
        assert exc.value.error_dict["amount"][0].code == "debt_not_allowed"


def test_a_batch_with_debts_keeps_a_constant_query_count():
    members = [UserFactory() for _ in range(6)]
    for i, m in enumerate(members):
        credit(m, "10", f"seed{i}")

    def batch(tag, n):
        return [Posting(user_id=m.pk, wallet=Wallet.PASSIVE, amount=D("-25"), reason="bonus_reversal",
                        idempotency_key=f"{tag}{m.pk}", allow_debt=True) for m in members[:n]]

    with CaptureQueriesContext(connection) as two:
        wallet_post(batch("a", 2))
    with CaptureQueriesContext(connection) as six:
        wallet_post(batch("b", 6))
    assert len(two) == len(six)
    repay = [Posting(user_id=m.pk, wallet=Wallet.PASSIVE, amount=D("7"), reason="bonus",
                     idempotency_key=f"r{m.pk}") for m in members]
    with CaptureQueriesContext(connection) as repaid:
        wallet_post(repay)
    assert len(repaid) <= len(six)
    assert debt_mismatches() == [] and ledger_mismatches() == []


def test_check_ledger_reports_a_debt_that_differs_from_its_entries(capsys):
    from django.core.management.base import CommandError

    from accounts.models import User

    m = UserFactory()
    clawback(m, "10", "r1")
    User.objects.filter(pk=m.pk).update(clawback_debt=D("3"))
    assert debt_mismatches()[0]["entries"] == D("10")
    with pytest.raises(CommandError):
        call_command("check_ledger")
    assert "clawback debt" in capsys.readouterr().err
