"""The shared top of the tree under concurrent batches (issue 10, hot rows).

Design (mlm.engine): a batch reads ranks, pioneer flags and activity without locks; it writes
volumes as increments and balances through `wallet_post` at the very end of its transaction, in
one fixed order — members' rows by id (FOR NO KEY UPDATE, which does not block inserts of rows
that reference them), then stats rows by id. So batches in different lines hold the rows they
share (the root, the top of the tree) only for the last statements before their commit, and
lock them in the same order: no deadlock, and every increment lands.
"""

import random
from decimal import Decimal

import pytest

from accounts.selectors import ledger_mismatches
from mlm.models import Bonus, MemberStats, ProcessedPurchase
from mlm.services import purchase_process_many
from purchases.models import Purchase
from tests.concurrency import run_concurrently
from tests.mlm.factories import buy, member, option
from tests.mlm.test_processing import no_receiver  # noqa: F401 - fixture

D = Decimal


def line(top, depth, rng):
    users, sponsor = [], top
    for _ in range(depth):
        sponsor = member(sponsor, rank=rng.choice(["start", "start", "builder", "growth"]))
        users.append(sponsor)
    return users


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_receiver")
def test_concurrent_batches_in_overlapping_lines_neither_deadlock_nor_lose_an_increment():
    from accounts.selectors import system_root

    root = system_root()
    rng = random.Random(7)
    top = member(rank="director")
    lines = [line(top, 25, rng) for _ in range(4)]
    opt = option("1000")
    purchases = [buy(rng.choice(lines[i % 4]), opt, packs=rng.choice([1, 2, 3])) for i in range(160)]
    ids = [p.pk for p in purchases]
    rng.shuffle(ids)
    # Four workers, each a mix of all four lines (so every batch shares rows with every other one).
    batches = [(sorted(ids[i::4]),) for i in range(4)]
    root_before = type(root).objects.get(pk=root.pk).balance_passive

    results, errors = run_concurrently(lambda chunk: purchase_process_many(purchase_ids=chunk), batches)

    assert errors == []
    assert sorted(results) == [40, 40, 40, 40]
    assert ProcessedPurchase.objects.filter(purchase_id__in=ids).count() == 160
    total = sum((p.price for p in purchases), D(0))
    assert MemberStats.objects.get(user=top).fv == total  # every increment on the shared top landed
    for users in lines:
        head = users[0]
        below = [p.price for p in purchases if p.user_id in {u.pk for u in users[1:]}]
        assert MemberStats.objects.get(user=head).fv == sum(below, D(0))
    root_share = sum(Bonus.objects.filter(user=root, kind="system_compression").values_list("amount", flat=True),
                     D(0))
    assert type(root).objects.get(pk=root.pk).balance_passive == root_before + root_share
    assert Purchase.objects.filter(kind="bonus").count() == Bonus.objects.filter(kind="investment").count()
    assert ledger_mismatches() == []
