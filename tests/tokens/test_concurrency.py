"""Exactly once per period: beat processes, a retried task and an operator's click at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.concurrency import run_concurrently
from tokens.models import BuyOrder
from tokens.services import buy_order_run_scheduled, revenue_track

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_scheduled_period_buys_exactly_once_under_concurrency(chain):
    revenue_track(source="other", amount="100000")
    now = datetime(2026, 11, 21, 0, 0, 5, tzinfo=UTC)
    zar_before = chain.client().balances().zar
    # Two beat processes, a retried task, an operator's click... six callers of one period.
    results, errors = run_concurrently(lambda: buy_order_run_scheduled(now=now), 6)

    assert errors == []
    assert sorted(r.code for r in results) == ["already_ran"] * 5 + ["ok"]
    order = BuyOrder.objects.get()
    assert order.status == "completed" and order.period_key == "daily@2026-11-21T00:00+00:00"
    assert zar_before - chain.client().balances().zar == order.amount == 10000
    # The next period buys again.
    assert buy_order_run_scheduled(now=datetime(2026, 11, 22, 0, 1, tzinfo=UTC)).success
