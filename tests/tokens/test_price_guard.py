"""The price guard: pure TWAP and impact rules, the pair's accumulators, a manipulated pool."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from tokens import price_guard as pg
from tokens.chain.artifacts import load_artifact
from tokens.models import BuyOrder, BuyOrderConfigChange, BuyOrderDeferral, PriceObservation
from tokens.services import buy_order_config_update, buy_order_run_scheduled, revenue_track

from .conftest import move_spot, swap_azr_for_zar, swap_zar_for_azr, time_travel

# --- Pure rules ----------------------------------------------------------------------------------


def test_twap_is_the_difference_of_cumulatives_over_time_and_survives_a_wrap():
    price = Decimal("0.5")
    per_second = int(price * pg.Q112)
    start = pg.Observation(1000, pg.UINT256 - per_second * 10)  # wraps 10 s later
    end = pg.Observation(1600, (start.cumulative + per_second * 600) % pg.UINT256)

    assert end.cumulative < start.cumulative
    assert abs(pg.twap(start, end) - price) < Decimal("1e-25")


def test_cumulative_at_adds_the_current_price_since_the_last_update_mod_2_32():
    last = 2**32 - 5  # the pair's timestamp wrapped between its update and now
    value = pg.cumulative_at(cumulative_last=7, timestamp_last=last, reserve_base=1, reserve_azr=2, now=2**32 + 5)
    assert value == 7 + (pg.Q112 // 2) * 10


def test_bracketing_takes_the_newest_start_a_window_before_the_newest_end():
    obs = [pg.Observation(t, t) for t in (0, 100, 1700, 1850, 1900, 3650)]
    start, end = pg.bracketing(obs, window=1800, now=3660)
    assert (start.timestamp, end.timestamp) == (1850, 3650)
    with pytest.raises(pg.TwapUnavailable, match="cover"):
        pg.bracketing(obs[4:], window=1800, now=3660)
    with pytest.raises(pg.TwapUnavailable, match="old"):
        pg.bracketing(obs, window=1800, now=9000)
    with pytest.raises(pg.TwapUnavailable, match="gap"):
        pg.bracketing([pg.Observation(0, 0), pg.Observation(4000, 1)], window=1800, now=4000)


def test_the_largest_input_within_the_impact_bound_is_exact():
    reserve = 10**24
    largest = pg.max_input_for_impact(reserve, Decimal("0.01"))
    assert pg.price_impact(largest, reserve) <= Decimal("0.01") < pg.price_impact(largest + 10**6, reserve)
    # The impact is the output's shortfall against the mid price, the fee aside (V2 formula).
    out = pg.amount_out(largest, reserve, reserve)
    assert abs(1 - Decimal(out) / (Decimal(largest) * Decimal("0.997")) - Decimal("0.01")) < Decimal("1e-9")


def test_split_gives_equal_slices_within_the_bound_that_add_up():
    parts = pg.split(Decimal("1000.00"), Decimal("300.00"))
    assert len(parts) == 4 and sum(parts) == Decimal("1000.00") and max(parts) <= Decimal("300.00")
    assert pg.split(Decimal("10"), Decimal("300")) == [Decimal("10")]
    with pytest.raises(ValueError):
        pg.split(Decimal("10"), Decimal("0.001"))


# --- Settings ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value", "code"), [
    ("max_price_deviation", "0", "out_of_range"), ("max_price_deviation", "1", "out_of_range"),
    ("max_price_deviation", "0.00001", "max_decimal_places"), ("max_price_impact", "-0.01", "out_of_range"),
    ("max_price_impact", "NaN", None), ("twap_window_seconds", "59", "out_of_range"),
    ("twap_window_seconds", "1800.5", "invalid_integer"), ("twap_window_seconds", "١٨٠٠", "invalid_integer"),
    ("twap_window_seconds", True, "invalid_integer"), ("twap_window_seconds", 86401, "out_of_range"),
])
def test_bad_guard_settings_are_refused_and_write_nothing(field, value, code):
    with pytest.raises(ValidationError) as raised:
        buy_order_config_update(**{field: value})
    assert field in raised.value.message_dict
    if code:
        assert raised.value.error_dict[field][0].code == code
    assert not BuyOrderConfigChange.objects.exists()


@pytest.mark.django_db
def test_guard_settings_are_saved_and_audited():
    config = buy_order_config_update(max_price_deviation="0.05", twap_window_seconds="900", max_price_impact="0.02")
    assert (config.max_price_deviation, config.twap_window_seconds, config.max_price_impact) == (
        Decimal("0.05"), 900, Decimal("0.02"))
    change = BuyOrderConfigChange.objects.get()
    assert change.changes["twap_window_seconds"] == {"old": "1800", "new": "900"}


# --- The pair's accumulators on the embedded chain -------------------------------------------------


def test_the_accumulators_follow_the_v2_formula_after_swaps_and_time_travel(chain):
    pair = chain.w3.eth.contract(address=chain.pair, abi=load_artifact("Pair").abi)
    assert pair.functions.token0().call() == chain.zar_token  # AZR is token1: price1 is AZR in ZAR

    def state():
        r0, r1, ts = pair.functions.getReserves().call()
        return r0, r1, ts, pair.functions.price0CumulativeLast().call(), pair.functions.price1CumulativeLast().call()

    r0, r1, ts, c0, c1 = state()
    time_travel(chain, 600)
    swap_zar_for_azr(chain, Decimal("1000000"))
    n0, n1, nts, d0, d1 = state()
    elapsed = nts - ts
    assert elapsed >= 600
    assert d0 == c0 + (r1 * 2**112 // r0) * elapsed
    assert d1 == c1 + (r0 * 2**112 // r1) * elapsed
    time_travel(chain, 300)
    swap_zar_for_azr(chain, Decimal("1000"))
    _, _, ets, e0, e1 = state()
    assert e1 == d1 + (n0 * 2**112 // n1) * (ets - nts)
    assert e0 == d0 + (n1 * 2**112 // n0) * (ets - nts)


@pytest.mark.django_db
def test_an_observation_is_recorded_once_per_block(chain):
    from tokens.observations import price_observe

    first = price_observe()
    again = price_observe()
    assert first.pk == again.pk and first.pair == chain.pair
    assert PriceObservation.objects.filter(block_number=first.block_number).count() == 1


# --- A manipulated pool ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_manipulated_pool_defers_the_buy_then_the_next_tick_buys(chain):
    from tokens.buy_slices import buy_order_tick

    revenue_track(source="other", amount="100000")
    before = chain.client().balances()
    bought = move_spot(chain, "0.10")  # an attacker, just before the scheduled buy

    result = buy_order_run_scheduled()

    assert not result.success and result.code == "price_deviation"
    deferral = BuyOrderDeferral.objects.get()
    assert deferral.code == "price_deviation" and "TWAP" in deferral.reason
    assert deferral.spot_price / deferral.twap_price - 1 > Decimal("0.09")
    assert not BuyOrder.objects.exists()
    assert chain.client().balances() == before  # nothing spent
    assert buy_order_tick()["deferred_retry"] == "price_deviation"  # still manipulated: still waits
    assert BuyOrderDeferral.objects.count() == 2 and not BuyOrder.objects.exists()

    swap_azr_for_zar(chain, bought)  # the attacker swaps back
    tick = buy_order_tick()

    assert tick["deferred_retry"] == "ok"
    order = BuyOrder.objects.get()
    assert order.status == "completed" and order.period_key and order.trigger == "scheduled"
    assert abs(order.spot_price / order.twap_price - 1) < Decimal("0.02")
    assert buy_order_run_scheduled().code == "already_ran"  # the period still buys once
    assert buy_order_tick()["deferred_retry"] is None


@pytest.mark.django_db
def test_without_observations_covering_the_window_the_buy_defers(config):
    from tokens.chain import runtime
    from tokens.chain.embedded import build_embedded_chain

    fresh = build_embedded_chain()  # no warm-up: no TWAP yet
    runtime.chain_client_set(fresh.client())
    try:
        revenue_track(source="other", amount="100000")
        result = buy_order_run_scheduled()
    finally:
        runtime.chain_client_set(None)
    assert result.code == "twap_unavailable" and not BuyOrder.objects.exists()
    assert BuyOrderDeferral.objects.get().code == "twap_unavailable"
