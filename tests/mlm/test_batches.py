"""Batches, backlogs and the preview agree with processing purchases one by one (§7, §11).

One seeded scenario — a random network, random ranks, activity and pioneers, two projects,
purchases of random sizes, some on Grace Day — is played three ways, each inside a rolled-back
transaction: as they come (preview, buy, process), as a backlog processed one by one in id
order, and as a backlog processed in batches of 7. Bonuses are compared by position (the
n-th member, the n-th purchase), since ids differ between the plays.
"""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from mlm.models import Bonus
from mlm.selectors import purchase_preview
from mlm.services import purchase_process, purchase_process_many
from purchases.models import Purchase
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db

RANKS = ["start"] * 6 + ["builder"] * 3 + ["growth"] * 2 + ["leadership", "director"]


class Rollback(Exception):
    pass


def scenario(seed, n_members=30, n_purchases=45):
    rng = random.Random(seed)
    users = []
    for _ in range(n_members):
        sponsor = rng.choice(users) if users and rng.random() < 0.85 else None
        users.append(member(sponsor, rank=rng.choice(RANKS), active=rng.random() < 0.7, pioneer=rng.random() < 0.08))
    options = [option("1000", 20000), option("5000", 100000), option("250", 1000)]
    first_of_month = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    buys = []
    for i in range(n_purchases):
        when = first_of_month + timedelta(seconds=i) if rng.random() < 0.25 else None
        buys.append((rng.randrange(n_members), rng.randrange(len(options)), rng.choice([1, 1, 2, 3, 6]), when))
    return users, options, buys


def place(users, options, spec):
    u, o, packs, when = spec
    p = buy(users[u], options[o], packs)
    if when is not None:
        Purchase.objects.filter(pk=p.pk).update(created_at=when)
        p.refresh_from_db()
    return p


def record(users, purchases):
    index = {u.pk: i for i, u in enumerate(users)}
    pindex = {p.pk: i for i, p in enumerate(purchases)}
    rows = (Bonus.objects.filter(purchase__in=purchases)
            .values_list("purchase_id", "user_id", "kind", "level", "amount", "granted_purchase__shares"))
    return sorted((pindex[pid], index.get(uid, -1), kind, level, amount, shares)
                  for pid, uid, kind, level, amount, shares in rows)


def play(seed, how):
    out = {}
    try:
        with transaction.atomic():
            users, options, buys = scenario(seed)
            if how == "as_they_come":
                purchases, previews = [], []
                for spec in buys:
                    u, o, packs, when = spec
                    rows = purchase_preview(user=users[u], option=options[o], packs=packs, when=when)
                    p = place(users, options, spec)
                    previews.append((len(purchases), rows))
                    purchases.append(p)
                    purchase_process(purchase_id=p.pk)
                index = {u.pk: i for i, u in enumerate(users)}
                out["preview"] = sorted((i, index.get(r["user_id"], -1), r["kind"], r["level"], r["amount"])
                                        for i, rows in previews for r in rows)
            else:
                purchases = [place(users, options, spec) for spec in buys]
                ids = [p.pk for p in purchases]
                if how == "one_by_one":
                    for pid in ids:
                        purchase_process(purchase_id=pid)
                else:
                    for i in range(0, len(ids), 7):
                        purchase_process_many(purchase_ids=ids[i:i + 7])
            out["bonuses"] = record(users, purchases)
            raise Rollback
    except Rollback:
        pass
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_as_they_come_backlog_batches_and_preview_agree(root, seed):
    live = play(seed, "as_they_come")
    one_by_one = play(seed, "one_by_one")
    batches = play(seed, "batches")
    assert live["bonuses"], "the scenario pays bonuses"
    assert {k for _, _, k, *_ in live["bonuses"]} >= {"differential", "investment", "system_compression"}
    assert one_by_one["bonuses"] == live["bonuses"]
    assert batches["bonuses"] == live["bonuses"]
    assert live["preview"] == [row[:5] for row in live["bonuses"]]


def test_preview_writes_nothing(root):
    s = member(member(rank="director"))
    opt = option("1000")
    before = (Bonus.objects.count(), Purchase.objects.count())
    rows = purchase_preview(user=s, option=opt, packs=2)
    assert (Bonus.objects.count(), Purchase.objects.count()) == before
    assert sum(r["amount"] for r in rows if r["kind"] == "differential") == Decimal("280.00")


def test_a_backlog_pays_each_purchase_its_own_investment_bonus(root):
    """§7: T for a purchase counts what came before it, not the backlog after it."""
    s = member()
    opt = option("1000")
    purchases = [buy(s, opt) for _ in range(3)]  # a stopped worker: three wait
    purchase_process(purchase_id=purchases[0].pk)
    first = Bonus.objects.get(purchase=purchases[0], kind="investment")
    assert first.amount == Decimal("50.00")  # T = 1,000 (not 3,000)
    assert purchase_process_many(purchase_ids=[p.pk for p in purchases]) == 2
    amounts = [Bonus.objects.get(purchase=p, kind="investment").amount for p in purchases]
    assert amounts == [Decimal("50.00"), Decimal("52.50"), Decimal("52.60")]  # T = 3,102.50: 155.125 − 102.50
