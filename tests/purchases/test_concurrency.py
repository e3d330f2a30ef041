"""Concurrent purchases from one wallet, on PostgreSQL with real row locks."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from accounts.models import User
from purchases.models import Purchase
from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_twenty_threads_buy_from_one_wallet_only_affordable_succeed():
    user = UserFactory(balance="350")  # 7 packs of 50
    option = OptionFactory(pack_price=Decimal("50"))
    barrier = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def buy(i):
        try:
            barrier.wait()
            purchase_create(user=user, option=option, idempotency_key=f"t{i}")
            outcome = "ok"
        except ValidationError:
            outcome = "refused"
        except Exception as exc:  # pragma: no cover - shows up in the assertion
            outcome = f"error: {exc!r}"
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == ["ok"] * 7 + ["refused"] * 13
    user.refresh_from_db()
    assert user.balance_active == Decimal("0")
    assert Purchase.objects.filter(user=user).count() == 7
    assert User.objects.filter(balance_active__lt=0).count() == 0
    call_command("check_ledger")  # raises CommandError on a mismatch


def test_concurrent_retries_with_one_key_buy_once():
    user = UserFactory(balance="500")
    option = OptionFactory()
    barrier = threading.Barrier(8)
    ids = []

    def buy():
        try:
            barrier.wait()
            ids.append(purchase_create(user=user, option=option, idempotency_key="same").pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=buy) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    user.refresh_from_db()
    assert user.balance_active == Decimal("450")
