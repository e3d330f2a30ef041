from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import LedgerEntry
from accounts.selectors import ledger_mismatches
from purchases.models import Purchase
from purchases.services import purchase_create, purchase_grant
from purchases.signals import purchase_completed
from tests.factories import OptionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    calls = []

    def receiver(sender, purchase, **kwargs):
        calls.append(purchase.pk)

    purchase_completed.connect(receiver, dispatch_uid="test-receiver")
    yield calls
    purchase_completed.disconnect(dispatch_uid="test-receiver")


def test_purchase_success_debits_wallet_and_records_shares(django_capture_on_commit_callbacks, received):
    user = UserFactory(balance="200")
    option = OptionFactory(pack_shares=1000, pack_price=Decimal("50"))
    with django_capture_on_commit_callbacks(execute=True):
        purchase = purchase_create(user=user, option=option, packs=3)
    user.refresh_from_db()
    assert (purchase.kind, purchase.shares, purchase.price) == ("regular", 3000, Decimal("150"))
    assert user.balance_active == Decimal("50")
    debit = LedgerEntry.objects.get(idempotency_key=f"purchase:{purchase.pk}:debit")
    assert debit.amount == Decimal("-150") and debit.cause == purchase
    assert received == [purchase.pk]
    assert ledger_mismatches() == []


def test_signal_is_sent_only_after_commit(django_capture_on_commit_callbacks, received):
    user = UserFactory(balance="50")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        purchase_create(user=user, option=OptionFactory())
    assert received == []  # not before the commit
    for callback in callbacks:
        callback()
    assert len(received) == 1


def test_short_balance_refused_and_nothing_written(received):
    user = UserFactory(balance="49.99")
    with pytest.raises(ValidationError, match="Insufficient active balance"):
        purchase_create(user=user, option=OptionFactory())
    assert not Purchase.objects.exists()
    user.refresh_from_db()
    assert user.balance_active == Decimal("49.99")
    assert received == []


def test_inactive_option_or_project_refused():
    user = UserFactory(balance="500")
    with pytest.raises(ValidationError, match="not for sale"):
        purchase_create(user=user, option=OptionFactory(is_active=False))
    option = OptionFactory()
    option.project.is_active = False
    option.project.save()
    with pytest.raises(ValidationError, match="not for sale"):
        purchase_create(user=user, option=option)
    assert not Purchase.objects.exists()


@pytest.mark.parametrize("packs", [0, -1, 1.0, "2", True])
def test_bad_pack_count_refused(packs):
    with pytest.raises(ValidationError):
        purchase_create(user=UserFactory(balance="500"), option=OptionFactory(), packs=packs)


def test_idempotent_retry_returns_first_purchase(django_capture_on_commit_callbacks, received):
    user = UserFactory(balance="500")
    option = OptionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        first = purchase_create(user=user, option=option, packs=2, idempotency_key="abc")
        again = purchase_create(user=user, option=option, packs=2, idempotency_key="abc")
    assert first.pk == again.pk
    user.refresh_from_db()
    assert user.balance_active == Decimal("400")
    assert received == [first.pk]
    # the same key for another member is another purchase
    other = purchase_create(user=UserFactory(balance="50"), option=option, idempotency_key="abc")
    assert other.pk != first.pk


def test_bonus_grant_sends_no_signal_and_nets_to_zero(django_capture_on_commit_callbacks, received):
    user = UserFactory()
    option = OptionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        purchase, created = purchase_grant(user=user, option=option, shares=100, price="5",
                                           kind=Purchase.Kind.BONUS, idempotency_key="bonus:1")
        _, created_again = purchase_grant(user=user, option=option, shares=100, price="5",
                                          kind=Purchase.Kind.BONUS, idempotency_key="bonus:1")
    assert created and not created_again
    assert received == []
    user.refresh_from_db()
    assert user.balance_active == 0
    amounts = sorted(LedgerEntry.objects.filter(user=user).values_list("amount", flat=True))
    assert amounts == [Decimal("-5"), Decimal("5")]


def test_legacy_grant_sends_signal(django_capture_on_commit_callbacks, received):
    from datetime import UTC, datetime

    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        purchase, _ = purchase_grant(user=user, option=OptionFactory(), shares=1000, price="50",
                                     kind=Purchase.Kind.LEGACY, idempotency_key="legacy:L1",
                                     purchased_at=datetime(2024, 3, 1, tzinfo=UTC))
    assert received == [purchase.pk]
    assert purchase.created_at.year == 2024


def test_grant_refuses_regular_kind():
    with pytest.raises(ValidationError):
        purchase_grant(user=UserFactory(), option=OptionFactory(), shares=1, price="1",
                       kind=Purchase.Kind.REGULAR, idempotency_key="x")
