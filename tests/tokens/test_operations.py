"""Operations: stale pending orders, demo revenue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from tokens.models import BuyOrder, Revenue
from tokens.selectors import available_revenue
from tokens.services import buy_order_reconcile_stale

pytestmark = pytest.mark.django_db


def pending(minutes_ago: int, **extra) -> BuyOrder:
    return BuyOrder.objects.create(trigger="manual", amount=Decimal("100"), quoted_price=Decimal("0.5"),
                                   expected_tokens=Decimal("200"), min_tokens=Decimal("198"),
                                   max_slippage=Decimal("0.01"), disposition="hold",
                                   created_at=timezone.now() - timedelta(minutes=minutes_ago), **extra)


def test_stale_pending_orders_without_a_sent_transaction_are_released(config, chain):
    stale = pending(60)
    unknown = pending(60, tx_hash="0x" + "ab" * 32)  # never reached the node
    fresh = pending(1)  # may still be in flight: left alone

    assert buy_order_reconcile_stale() == 2

    stale.refresh_from_db(), unknown.refresh_from_db(), fresh.refresh_from_db()
    assert (stale.status, unknown.status, fresh.status) == ("failed", "failed", "pending")
    assert "Abandoned" in stale.error and "never reached" in unknown.error


def test_demo_revenue_is_the_spec_example_and_idempotent(config):
    call_command("tokens_seed_demo")
    call_command("tokens_seed_demo")

    assert Revenue.objects.count() == 2
    assert available_revenue() == Decimal("700.00")
