"""Money-lifecycle §5 over everything at once: a random sequence of purchases (processed, paying
bonuses up a random tree, held in monthly mode), refunds with clawback, payout runs, withdrawals
through every transition and transfers. Afterwards every check of `check_ledger` passes (balances,
clawback debts, bonus statuses, withdrawal reserves), no balance is negative, and the volumes
equal a rebuild from the purchases that still count."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from accounts.models import User
from accounts.services import wallet_deposit, wallet_transfer_to_active, wallet_transfer_to_member
from mlm.models import Bonus, MemberStats, PlanSettings
from mlm.services import payout_run, purchase_process, volumes_rebuild
from purchases.models import Purchase
from purchases.services import purchase_create, purchase_refund
from tests.mlm.factories import member, option
from tests.withdrawals.conftest import trc20, withdrawal_move
from withdrawals.models import Withdrawal
from withdrawals.services import (
    withdrawal_request,
)

pytestmark = pytest.mark.django_db

RANKS = ["start"] * 5 + ["builder"] * 3 + ["growth", "leadership", "director"]


@pytest.mark.parametrize("seed", [11, 12])
def test_random_money_lifecycle_keeps_every_invariant(root, django_capture_on_commit_callbacks, seed):
    rng = random.Random(seed)
    members = []
    for _ in range(20):
        sponsor = rng.choice(members) if members and rng.random() < 0.85 else None
        members.append(member(sponsor, rank=rng.choice(RANKS), active=rng.random() < 0.8))
    options = [option("1000", 20000), option("5000", 100000)]
    last_month = timezone.now().replace(day=1) - timedelta(days=1)
    done = {"buy": 0, "refund": 0, "payout": 0, "withdraw": 0, "advance": 0, "transfer": 0}
    refused = 0

    def amount(low, high):
        return Decimal(rng.randint(low * 100, high * 100)) / 100

    for step in range(120):
        who = rng.choice(members)
        op = rng.choice(["buy"] * 4 + ["refund", "mode", "payout", "withdraw", "advance", "advance",
                                       "to_active", "to_member"])
        try:
            with django_capture_on_commit_callbacks(execute=True):  # signals, clawbacks, revenue
                if op == "buy":
                    opt = rng.choice(options)
                    wallet_deposit(user=who, amount=opt.pack_price, reference=f"s{seed}:{step}")
                    p = purchase_create(user=who, option=opt)
                    purchase_process(purchase_id=p.pk)
                    if rng.random() < 0.5:  # earned last month: a payout run can pay it
                        Bonus.objects.filter(purchase=p).update(created_at=last_month)
                elif op == "refund":
                    counted = list(Purchase.objects.filter(kind="regular", refunded_at__isnull=True))
                    if counted:
                        purchase_refund(purchase=rng.choice(counted), reason="random")
                elif op == "mode":
                    mode = rng.choice(list(PlanSettings.PayoutMode.values))
                    PlanSettings.objects.filter(pk=1).update(payout_mode=mode)
                    continue
                elif op == "payout":
                    payout_run(month=last_month)
                elif op == "withdraw":
                    rich = list(User.objects.filter(pk__in=[m.pk for m in members], balance_passive__gte=15))
                    withdrawal_request(user=rng.choice(rich) if rich else who, amount=amount(11, 40),
                                       destination=trc20(step))
                elif op == "advance":
                    open_ = list(Withdrawal.objects.filter(status__in=Withdrawal.HELD))
                    if not open_:
                        continue
                    w = rng.choice(open_)
                    move = rng.choice(["approve", "approve", "reject", "cancel"] if w.status == "requested"
                                      else ["pay", "pay", "reject"])
                    withdrawal_move(w, move, step=step)
                elif op == "to_active":
                    wallet_transfer_to_active(user=who, amount=amount(1, 30), idempotency_key=f"a{step}")
                else:
                    wallet_transfer_to_member(sender=who, receiver=rng.choice(members), amount=amount(1, 30),
                                              wallet=rng.choice(["active", "passive"]), idempotency_key=f"m{step}")
            key = {"to_active": "transfer", "to_member": "transfer"}.get(op, op)
            done[key] += 1
        except ValidationError:  # short balances, wrong states, a second payout: refused, nothing written
            refused += 1

    assert all(done.values()), done  # every kind of movement happened
    statuses = set(Bonus.objects.values_list("status", flat=True))
    assert {"paid", "reversed"} <= statuses, statuses
    call_command("check_ledger")  # balances, debts, bonus statuses, withdrawal reserves
    assert not User.objects.filter(balance_active__lt=0).exists()
    assert not User.objects.filter(balance_passive__lt=0).exists()
    assert not User.objects.filter(clawback_debt__lt=0).exists()
    volumes = {s.user_id: (s.pv, s.fv) for s in MemberStats.objects.all()}
    volumes_rebuild()
    assert {s.user_id: (s.pv, s.fv) for s in MemberStats.objects.all()} == volumes
