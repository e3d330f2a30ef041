"""Concurrent purchases from one wallet, on PostgreSQL with real row locks."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts.models import User
from purchases.models import Purchase
from purchases.services import purchase_create
from tests.concurrency import run_concurrently
from tests.factories import OptionFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_threads_buy_from_one_wallet_only_affordable_succeed():
    user = UserFactory(balance="350")  # 7 packs of 50
    option = OptionFactory(pack_price=Decimal("50"))
    def buy(i):
        try:
            purchase_create(user=user, option=option, idempotency_key=f"t{i}")
        except ValidationError:
            return "refused"
        return "ok"

    results, errors = run_concurrently(buy, [(i,) for i in range(20)])

    assert errors == []
    assert sorted(results) == ["ok"] * 7 + ["refused"] * 13
    user.refresh_from_db()
    assert user.balance_active == Decimal("0")
    assert Purchase.objects.filter(user=user).count() == 7
    assert User.objects.filter(balance_active__lt=0).count() == 0
    call_command("check_ledger")  # raises CommandError on a mismatch


def test_concurrent_retries_with_one_key_buy_once():
    user = UserFactory(balance="500")
    option = OptionFactory()
    ids, errors = run_concurrently(
        lambda: purchase_create(user=user, option=option, idempotency_key="same").pk, 8)
    assert errors == []
    assert len(ids) == 8 and len(set(ids)) == 1
    user.refresh_from_db()
    assert user.balance_active == Decimal("450")
