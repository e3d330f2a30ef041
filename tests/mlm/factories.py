"""Helpers to build networks for the mlm tests."""

from decimal import Decimal

from django.utils import timezone

from mlm.models import MemberStats, MonthlyVolume, Rank, month_start
from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory


def member(sponsor=None, *, rank="start", active=True, pioneer=False, balance=None, **kwargs):
    """A member under `sponsor` with a stored rank, active this month (monthly PV 200) unless told."""
    user = UserFactory(sponsor=sponsor, balance=balance, **kwargs)
    MemberStats.objects.update_or_create(user=user, defaults={"rank": Rank.objects.get(code=rank),
                                                              "is_pioneer": pioneer})
    if active:
        make_active(user)
    return user


def make_active(user, when=None, pv=Decimal("200")):
    MonthlyVolume.objects.update_or_create(user=user, month=month_start(when or timezone.now()),
                                           defaults={"pv": pv})


def option(price="1000", shares=20000, **kwargs):
    """Default: a pack of 20,000 options for 1,000 (unit 0.05)."""
    return OptionFactory(pack_price=Decimal(price), pack_shares=shares, **kwargs)


def buy(user, opt, packs=1):
    """A regular purchase paid from a fresh deposit (not processed: call purchase_process)."""
    from accounts.services import wallet_deposit

    wallet_deposit(user=user, amount=opt.pack_price * packs, reference=f"test:{user.pk}:{_n()}")
    return purchase_create(user=user, option=opt, packs=packs)


_counter = [0]


def _n():
    _counter[0] += 1
    return _counter[0]
