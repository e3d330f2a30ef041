"""Split orders under pressure: someone moves the pool right after a slice (the post-swap check),
the period ends before the slices ran (the tick expires them), an operator's price far from the TWAP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import UserFactory
from tokens.buy_slices import buy_order_tick
from tokens.chain import runtime
from tokens.models import BuyOrder
from tokens.selectors import available_revenue
from tokens.services import buy_order_config_update, buy_order_execute, buy_order_preview, revenue_track

from .conftest import move_spot, time_travel

pytestmark = pytest.mark.django_db(transaction=True)


class MovedRightAfterTheSwap:
    """The real client of the embedded chain; right after each of our swaps is mined, another
    account buys on the pool (its own transaction, the next block) before anyone reads it again --
    what a back-runner or another buyer in the same block does to the post-swap reading."""

    def __init__(self, chain, fraction: str):
        self._chain, self._client, self._fraction = chain, chain.client(), fraction
        self.moves = 0

    def buy(self, **kwargs):
        receipt = self._client.buy(**kwargs)
        move_spot(self._chain, self._fraction)
        self.moves += 1
        return receipt

    def __getattr__(self, name):
        return getattr(self._client, name)


def split_order_setup(settings, amount: str = "50000000") -> None:
    """50 M ZAR against 2 G in the pool, at most 0.5% impact a swap: 5 slices a minute apart."""
    settings.TOKENS_SLICE_INTERVAL_SECONDS = 60
    buy_order_config_update(revenue_percentage="1", max_buy_amount="100000000", max_price_impact="0.005")
    revenue_track(source="other", amount=amount)


def test_a_pool_moved_right_after_a_slice_stops_the_order_and_nothing_further_is_spent(chain, settings):
    split_order_setup(settings)
    attacked = MovedRightAfterTheSwap(chain, "0.03")
    runtime.chain_client_set(attacked)

    result = buy_order_execute()

    assert attacked.moves == 1, result
    assert result.success and "someone else moved the pool" in result.error
    order = BuyOrder.objects.get(parent__isnull=True)
    first, *rest = order.slices.order_by("slice_index")
    assert first.status == "completed" and "moved" in first.warning
    assert [s.status for s in rest] == ["cancelled"] * 4 and all("Not run" in s.error for s in rest)
    assert order.status == "completed" and order.warning == first.warning
    assert order.amount == first.amount == Decimal("10000000")  # settled with what it got
    assert order.tokens_received == first.tokens_received
    assert available_revenue() == Decimal("40000000")  # the rest is released

    runtime.chain_client_set(chain.client())  # the pool as it is; the ticks that follow buy nothing
    spent = chain.client().balances()
    for minute in range(1, 6):
        time_travel(chain, 60)
        tick = buy_order_tick(now=timezone.now() + timedelta(minutes=minute))
        assert tick["slices_run"] == 0
    assert chain.client().balances() == spent
    assert BuyOrder.objects.filter(tx_hash__isnull=False).count() == 1


def test_a_single_swap_moved_after_it_keeps_a_warning(chain):
    revenue_track(source="other", amount="10000")  # 1,000 ZAR: one swap
    runtime.chain_client_set(MovedRightAfterTheSwap(chain, "0.05"))

    result = buy_order_execute()

    order = BuyOrder.objects.get()
    assert result.success and order.status == "completed" and order.slice_count is None
    assert "someone else moved the pool" in order.warning and "tolerance 1.00%" in order.warning


def test_without_a_move_after_the_swap_there_is_no_warning(chain, settings):
    split_order_setup(settings)
    assert buy_order_execute().success
    first = BuyOrder.objects.get(parent__isnull=False, slice_index=0)
    assert first.warning == "" and BuyOrder.objects.filter(status="planned").count() == 4


def test_slices_whose_period_is_over_are_cancelled_and_the_order_settles_with_what_it_got(chain, settings):
    split_order_setup(settings)
    assert buy_order_execute().success
    order = BuyOrder.objects.get(parent__isnull=True)
    second = order.slices.get(slice_index=1)

    time_travel(chain, 60)
    assert buy_order_tick(now=second.due_at) == {"slices_run": 1, "orders_expired": 0, "deferred_retry": None}
    spent = chain.client().balances()
    tomorrow = order.created_at + timedelta(days=1)  # the daily schedule's period is over
    time_travel(chain, 60)

    tick = buy_order_tick(now=tomorrow)

    assert tick["slices_run"] == 0 and tick["orders_expired"] == 1
    order.refresh_from_db()
    statuses = list(order.slices.order_by("slice_index").values_list("status", flat=True))
    assert statuses == ["completed", "completed", "cancelled", "cancelled", "cancelled"]
    assert all("period ended" in s.error for s in order.slices.filter(status="cancelled"))
    assert order.status == "completed" and order.amount == Decimal("20000000")
    assert available_revenue() == Decimal("30000000")
    assert chain.client().balances() == spent  # nothing more bought
    assert buy_order_tick(now=tomorrow)["orders_expired"] == 0  # once


class MovedRightBefore(MovedRightAfterTheSwap):
    """Someone moves the pool between our sizing and our swap (a sandwich's front leg)."""

    def buy(self, **kwargs):
        move_spot(self._chain, self._fraction)
        self.moves += 1
        return self._client.buy(**kwargs)


def test_a_slice_front_run_beyond_the_slippage_reverts_and_the_order_fails_releasing_everything(chain, settings):
    split_order_setup(settings)
    runtime.chain_client_set(MovedRightBefore(chain, "0.05"))
    before = chain.client().balances()

    result = buy_order_execute()

    assert not result.success and "Reverted" in result.error
    order = BuyOrder.objects.get(parent__isnull=True)
    statuses = list(order.slices.order_by("slice_index").values_list("status", flat=True))
    assert statuses == ["failed", "cancelled", "cancelled", "cancelled", "cancelled"]
    assert order.status == "failed" and "No slice was bought" in order.error
    assert available_revenue() == Decimal("50000000")
    assert chain.client().balances().zar == before.zar  # the swap reverted: no ZAR left the treasury
    assert buy_order_tick()["slices_run"] == 0


# --- The operator's price --------------------------------------------------------------------------


def test_an_operator_price_far_from_the_twap_is_refused_and_nothing_is_written(chain):
    revenue_track(source="other", amount="10000")
    quote = buy_order_preview()["price_per_token"]  # what the TWAP prices 1,000 ZAR at
    before = chain.client().balances()

    for price in (quote * Decimal("1.10"), quote * Decimal("0.90"), quote * Decimal("1.03")):
        with pytest.raises(ValidationError) as raised:
            buy_order_execute(price_per_token=price.quantize(Decimal("0.00000001")))
        error = raised.value.error_dict["price_per_token"][0]
        assert error.code == "price_off_twap" and "TWAP" in error.message

    assert not BuyOrder.objects.exists()
    assert chain.client().balances() == before


def test_an_operator_price_is_a_limit_never_a_looser_minimum_than_the_twap(chain):
    revenue_track(source="other", amount="10000")  # 1,000 ZAR available
    preview = buy_order_preview()

    higher = buy_order_execute(price_per_token=(preview["price_per_token"] * Decimal("1.015")).quantize(
        Decimal("0.00000001")))

    assert higher.success, higher.error
    order = BuyOrder.objects.get(tx_hash=higher.transaction_hash)
    assert order.quoted_price > preview["price_per_token"]
    assert order.min_tokens == preview["min_tokens_out"]  # the TWAP's floor, not the looser one of the price

    revenue_track(source="other", amount="1000")  # 1,000 ZAR available again
    preview = buy_order_preview()
    lower = buy_order_execute(price_per_token=(preview["price_per_token"] * Decimal("0.995")).quantize(
        Decimal("0.00000001")))

    assert lower.success, lower.error
    order = BuyOrder.objects.get(tx_hash=lower.transaction_hash)
    assert order.min_tokens > preview["min_tokens_out"]  # a stricter limit is the operator's to set


def test_the_api_answers_400_for_an_operator_price_far_from_the_twap(chain, api_client):
    revenue_track(source="other", amount="10000")
    api_client.force_authenticate(UserFactory(is_staff=True, is_superuser=True))
    quote = buy_order_preview()["price_per_token"]

    response = api_client.post("/api/tokens/buy-orders/execute/", {"price_per_token": str(quote * 2)}, format="json")

    assert response.status_code == 400, response.json()
    assert "price_per_token" in response.json()["errors"]
    assert not BuyOrder.objects.exists()
