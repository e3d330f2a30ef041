from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts.models import LedgerEntry, User, Wallet
from accounts.selectors import downline, ledger_mismatches, system_root, upline
from accounts.services import (
    InsufficientFunds,
    Posting,
    member_create,
    member_sponsor_change,
    wallet_deposit,
    wallet_post,
    wallet_transfer_to_active,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_root_exists_once_and_is_top_of_tree():
    root = system_root()
    assert root.is_system_root and root.sponsor_id is None and root.depth == 0
    assert User.objects.filter(is_system_root=True).count() == 1


def test_member_without_sponsor_goes_under_root(root):
    user = member_create(email="New@Example.com", password="x-long-pass")
    assert user.email == "new@example.com"
    assert user.sponsor_id == root.pk
    assert user.depth == 1
    assert user.upline_ids == []


def test_member_with_sponsor_and_upline_in_one_query(django_assert_num_queries):
    a = UserFactory()
    b = UserFactory(sponsor=a)
    c = UserFactory(sponsor=b)
    assert c.depth == 3 and c.upline_ids == [b.pk, a.pk]
    with django_assert_num_queries(1):
        assert [u.pk for u in upline(user=c)] == [b.pk, a.pk]
    assert set(downline(user=a).values_list("pk", flat=True)) == {b.pk, c.pk}
    assert list(downline(user=a, max_depth=1).values_list("pk", flat=True)) == [b.pk]


def test_duplicate_email_refused():
    member_create(email="dup@example.com")
    with pytest.raises(ValidationError, match="already exists"):
        member_create(email="DUP@example.com")


def test_sponsor_change_moves_subtree_and_refuses_cycles():
    a, x = UserFactory(), UserFactory()
    b = UserFactory(sponsor=a)
    c = UserFactory(sponsor=b)
    with pytest.raises(ValidationError, match="cycle"):
        member_sponsor_change(user=a, sponsor=c)
    with pytest.raises(ValidationError, match="cycle"):
        member_sponsor_change(user=a, sponsor=a)
    member_sponsor_change(user=b, sponsor=x)
    c.refresh_from_db()
    assert c.upline_ids == [b.pk, x.pk]
    assert c.depth == 3
    assert set(downline(user=x).values_list("pk", flat=True)) == {b.pk, c.pk}
    assert not downline(user=a).exists()


def test_deposit_is_idempotent_by_reference():
    user = UserFactory()
    first = wallet_deposit(user=user, amount="100.50", reference="pay-1")
    again = wallet_deposit(user=user, amount=Decimal("100.50"), reference="pay-1")
    assert first.pk == again.pk
    user.refresh_from_db()
    assert user.balance_active == Decimal("100.50")
    assert LedgerEntry.objects.filter(user=user).count() == 1


def test_deposit_reference_reused_for_other_amount_is_refused():
    user = UserFactory()
    wallet_deposit(user=user, amount=10, reference="pay-2")
    with pytest.raises(ValidationError, match="already used"):
        wallet_deposit(user=user, amount=11, reference="pay-2")
    user.refresh_from_db()
    assert user.balance_active == 10


@pytest.mark.parametrize("amount", [0, -5, "abc", "NaN", "Infinity", 1.5, True, "0.000000001", None])
def test_deposit_bad_amount_refused_and_nothing_written(amount):
    user = UserFactory()
    with pytest.raises(ValidationError):
        wallet_deposit(user=user, amount=amount, reference="bad")
    assert not LedgerEntry.objects.exists()


def test_debit_below_zero_refused_atomically():
    a = UserFactory(balance="10")
    b = UserFactory(balance="10")
    with pytest.raises(InsufficientFunds):
        wallet_post([
            Posting(user_id=b.pk, wallet=Wallet.ACTIVE, amount=Decimal("5"), reason="adjustment",
                    idempotency_key="t:1"),
            Posting(user_id=a.pk, wallet=Wallet.ACTIVE, amount=Decimal("-10.01"), reason="adjustment",
                    idempotency_key="t:2"),
        ])
    b.refresh_from_db()
    assert b.balance_active == 10  # the credit in the same batch rolled back
    assert not LedgerEntry.objects.filter(idempotency_key__startswith="t:").exists()


def test_database_constraint_keeps_active_balance_non_negative():
    from django.db import IntegrityError, transaction

    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(balance_active=Decimal("-1"))


def test_transfer_passive_to_active():
    user = UserFactory()
    wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=Decimal("30"), reason="bonus",
                         idempotency_key="earn:1")])
    wallet_transfer_to_active(user=user, amount="12.5", idempotency_key="k1")
    wallet_transfer_to_active(user=user, amount="12.5", idempotency_key="k1")  # retry: no-op
    user.refresh_from_db()
    # 12.50 moved, plus the 2% transfer bonus (0.25) on the active wallet.
    assert (user.balance_passive, user.balance_active) == (Decimal("17.5"), Decimal("12.75"))
    with pytest.raises(InsufficientFunds):
        wallet_transfer_to_active(user=user, amount="17.51")
    assert ledger_mismatches() == []


def test_check_ledger_command_detects_a_mismatch(capsys):
    user = UserFactory(balance="50")
    call_command("check_ledger")
    assert "Ledger OK" in capsys.readouterr().out
    User.objects.filter(pk=user.pk).update(balance_active=Decimal("49"))  # tamper behind the ledger
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="1 wallet balance"):
        call_command("check_ledger")
