"""A random sequence of purchases (paying bonuses up a random tree), withdrawals through every
transition, and transfers; afterwards `check_ledger` passes and the §5 invariants hold.
(Refunds and payout runs join this sequence when their apps land.)"""

import random
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import LedgerEntry, User
from accounts.services import (
    Posting,
    wallet_deposit,
    wallet_post,
    wallet_transfer_to_active,
    wallet_transfer_to_member,
)
from mlm.services import purchase_process
from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory
from tests.withdrawals.conftest import trc20, withdrawal_move
from withdrawals.models import Withdrawal
from withdrawals.services import (
    withdrawal_request,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_money_sequence_keeps_the_ledger_true(seed):
    rng = random.Random(seed)
    members = []
    for i in range(25):
        sponsor = rng.choice(members) if members and rng.random() < 0.85 else None
        members.append(UserFactory(email=f"r{seed}-{i}@example.com", sponsor=sponsor))
    option = OptionFactory(pack_price=Decimal("200"), pack_shares=4000)
    refused = 0

    def amount(low, high):
        return Decimal(rng.randint(low * 100, high * 100)) / 100

    for step in range(150):
        who = rng.choice(members)
        op = rng.choice(["buy", "earn", "withdraw", "withdraw", "advance", "advance", "to_active", "to_member"])
        try:
            if op == "buy":
                wallet_deposit(user=who, amount=option.pack_price, reference=f"r{seed}:{step}")
                purchase_process(purchase_id=purchase_create(user=who, option=option).pk)
            elif op == "earn":  # a bonus-like passive credit (start-rank members earn little from buys)
                wallet_post([Posting(user_id=who.pk, wallet="passive", amount=amount(5, 80), reason="bonus",
                                     idempotency_key=f"r{seed}:earn:{step}")])
            elif op == "withdraw":  # mostly by members who have earnings, sometimes above the balance
                rich = list(User.objects.filter(pk__in=[m.pk for m in members], balance_passive__gte=10))
                who = rng.choice(rich) if rich else who
                withdrawal_request(user=who, amount=amount(10, 60), destination=trc20(step))
            elif op == "advance":
                open_ = list(Withdrawal.objects.filter(status__in=Withdrawal.HELD))
                if open_:
                    w = rng.choice(open_)
                    # Mostly moves the state allows, sometimes one it refuses (409).
                    move = rng.choice(["approve"] * 3 + ["reject", "cancel", "pay"] if w.status == "requested"
                                      else ["pay"] * 3 + ["reject", "cancel"])
                    withdrawal_move(w, move, step=step)
            elif op == "to_active":
                wallet_transfer_to_active(user=who, amount=amount(1, 30), idempotency_key=f"r{step}")
            else:
                wallet_transfer_to_member(sender=who, receiver=rng.choice(members), amount=amount(1, 30),
                                          wallet=rng.choice(["active", "passive"]))
        except ValidationError:  # short balances, wrong states, self-transfers: refused, nothing written
            refused += 1

    statuses = set(Withdrawal.objects.values_list("status", flat=True))
    assert len(statuses) >= 3 and "paid" in statuses, statuses  # the sequence did exercise the transitions
    assert 0 < refused < 150
    call_command("check_ledger")
    assert not User.objects.filter(balance_active__lt=0).exists()
    assert not User.objects.filter(balance_passive__lt=0).exists()

    # §5: every reserve is still held, paid out, or credited back.
    reserved = -(LedgerEntry.objects.filter(reason="withdrawal").aggregate(s=Sum("amount"))["s"] or 0)
    returned = LedgerEntry.objects.filter(reason="withdrawal_return").aggregate(s=Sum("amount"))["s"] or 0
    by_status = {s: Withdrawal.objects.filter(status__in=s).aggregate(t=Sum("amount"))["t"] or 0
                 for s in (Withdrawal.HELD, ("paid",), Withdrawal.RETURNED)}
    assert reserved == sum(by_status.values())
    assert returned == by_status[Withdrawal.RETURNED]
