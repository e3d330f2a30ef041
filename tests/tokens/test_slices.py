"""A large buy against a shallow pool: split into slices within the impact bound, each run once."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from tokens import price_guard as pg
from tokens.buy_slices import buy_order_tick, run_next
from tokens.chain.artifacts import load_artifact
from tokens.models import BuyOrder
from tokens.selectors import available_revenue, buy_order_history, buy_order_metrics
from tokens.services import buy_order_config_update, buy_order_execute, buy_order_preview, revenue_track

from .conftest import time_travel

pytestmark = pytest.mark.django_db(transaction=True)


def reserves(chain):
    pair = chain.w3.eth.contract(address=chain.pair, abi=load_artifact("Pair").abi)
    return pair.functions.getReserves().call()[:2]


def restore(chain, target):
    """The pool recovers between slices (arbitrage): AZR added until the mid price is back."""
    r0, r1 = reserves(chain)
    missing = r0 * target[1] // target[0] - r1
    if missing > 0:
        w3, who = chain.w3, chain.w3.eth.accounts[0]
        azr = w3.eth.contract(address=chain.azr_token, abi=load_artifact("Token").abi)
        azr.functions.mint(chain.pair, missing).transact({"from": who, "gas": 200_000})
        w3.eth.contract(address=chain.pair, abi=load_artifact("Pair").abi).functions.sync().transact(
            {"from": who, "gas": 200_000})


def test_a_large_buy_is_split_into_slices_each_within_the_impact_bound_and_each_run_once(chain, settings):
    settings.TOKENS_SLICE_INTERVAL_SECONDS = 60
    buy_order_config_update(revenue_percentage="1", max_buy_amount="100000000", max_price_impact="0.005")
    revenue_track(source="other", amount="50000000")  # 50 M vs 2 G of ZAR: 2.4% in one swap; 5 x 10 M
    start = reserves(chain)
    preview = buy_order_preview()
    assert len(preview["slices"]) == 5 and sum(s["amount"] for s in preview["slices"]) == Decimal("50000000")
    assert all(s["price_impact"] <= Decimal("0.005") for s in preview["slices"])

    now = timezone.now()
    first = buy_order_execute()

    assert first.success, first.error
    order = BuyOrder.objects.get(parent__isnull=True)
    assert order.slice_count == 5 and order.status == "pending"
    slices = list(order.slices.order_by("slice_index"))
    assert [s.status for s in slices] == ["completed"] + ["planned"] * 4
    assert sum(s.amount for s in slices) == Decimal("50000000")
    assert available_revenue() == 0  # the whole amount reserved while its slices run

    # Nothing due yet: a tick runs nothing; two ticks at once (two beats) run the due slice once.
    assert buy_order_tick(now=now)["slices_run"] == 0
    for index in range(1, 5):
        restore(chain, start)
        time_travel(chain, 60)
        due = order.slices.get(slice_index=index).due_at
        results = []

        def beat(due=due, results=results):
            results.append(run_next(BuyOrder.objects.get(pk=order.pk), now=due).code)
            connection.close()

        beats = [threading.Thread(target=beat) for _ in range(2)]
        for thread in beats:
            thread.start()
        for thread in beats:
            thread.join()
        assert sorted(results) in (["already_claimed", "ok"], ["nothing_due", "ok"]), results
        assert run_next(BuyOrder.objects.get(pk=order.pk), now=due).code == "nothing_due"  # a retry: nothing

    order.refresh_from_db()
    slices = list(order.slices.order_by("slice_index"))
    assert [s.status for s in slices] == ["completed"] * 5
    assert len({s.tx_hash for s in slices}) == 5
    for part in slices:
        assert part.price_impact <= Decimal("0.005")
        assert part.tokens_received >= part.min_tokens
    assert order.status == "completed" and order.amount == Decimal("50000000")
    assert order.tokens_received == sum(s.tokens_received for s in slices)
    assert abs(order.tokens_received / order.expected_tokens - 1) < Decimal("0.001")  # the plan, within rounding

    metrics = buy_order_metrics()
    assert metrics["execution_count"] == 1 and metrics["completed_count"] == 1
    assert metrics["slice_count"] == 5 and metrics["total_rand_spent"] == Decimal("50000000")
    assert metrics["total_tokens_acquired"] == order.tokens_received
    rows, total = buy_order_history()
    assert total == 1 and rows[0].pk == order.pk


def test_slice_sizes_respect_the_bound_from_the_reserves(chain):
    r0, _ = reserves(chain)
    largest = pg.max_input_for_impact(r0, Decimal("0.01"))
    assert pg.price_impact(largest, r0) <= Decimal("0.01")
    assert Decimal(largest) / Decimal(r0) == pytest.approx(Decimal("0.01") / (Decimal("0.99") * Decimal("0.997")),
                                                           rel=Decimal("1e-9"))
