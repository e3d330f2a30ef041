"""First purchases in one sponsor line, at the same time: every one is processed at once.

Each purchase creates the missing stats rows of its whole upline before locking them; in
one line those are the same rows, so concurrent first purchases insert the same keys.
"""

from decimal import Decimal

import pytest

from accounts.selectors import system_root
from mlm.models import Bonus, MemberStats, ProcessedPurchase
from purchases.models import Purchase
from purchases.services import purchase_create
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from tests.mlm.factories import option

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LINES, DEPTH = 5, 10


def test_fifty_concurrent_first_purchases_in_five_lines_are_all_processed_at_once():
    system_root()
    opt = option("100", shares=2000)
    members = []
    for _ in range(LINES):
        sponsor = None
        for _ in range(DEPTH):
            sponsor = UserFactory(sponsor=sponsor, balance="100")
            members.append(sponsor)
    assert not MemberStats.objects.exists()  # every purchase below is its line's first

    # Eager Celery, real commits: each purchase's on_commit runs its processing in its thread.
    ids, errors = run_concurrently(lambda user: purchase_create(user=user, option=opt).pk,
                                   [(m,) for m in members])

    assert errors == []
    assert len(set(ids)) == LINES * DEPTH
    assert ProcessedPurchase.objects.filter(purchase_id__in=ids).count() == LINES * DEPTH
    assert not Purchase.objects.filter(kind=Purchase.Kind.REGULAR, mlm_processed__isnull=True).exists()
    assert MemberStats.objects.count() == LINES * DEPTH
    # Every purchase paid its bonuses, and the volumes add up: each member's FV is the price
    # of every purchase below it in its line.
    assert set(Bonus.objects.filter(purchase_id__in=ids).values_list("purchase_id", flat=True)) == set(ids)
    for line in range(LINES):
        top = members[line * DEPTH]
        stats = MemberStats.objects.get(user=top)
        assert (stats.pv, stats.fv) == (Decimal("100"), Decimal("100") * (DEPTH - 1))
