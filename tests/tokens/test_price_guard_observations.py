"""The observations behind the TWAP: kept per (chain id, pair), pruned after the retention in
the price tick, and a history that a new reading contradicts (a restarted chain) discarded."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tokens import price_guard as pg
from tokens.chain import runtime
from tokens.chain.embedded import build_embedded_chain
from tokens.models import BuyOrder, BuyOrderDeferral, PriceObservation
from tokens.observations import _read, _record, observation_retention, observations_prune, price_observe
from tokens.services import buy_order_run_scheduled, revenue_track
from tokens.tasks import price_tick

from .conftest import swap_zar_for_azr, time_travel

pytestmark = pytest.mark.django_db


def test_cumulative_advanced_allows_a_wrap_and_refuses_going_back():
    assert pg.cumulative_advanced(10, 10) and pg.cumulative_advanced(10, 11)
    assert pg.cumulative_advanced(pg.UINT256 - 5, 7)  # wrapped forwards
    assert not pg.cumulative_advanced(11, 10)
    assert not pg.cumulative_advanced(10**40, 10**20)  # a fresh chain's small cumulative after a big one


# --- Retention -------------------------------------------------------------------------------------


def old_rows(count: int, *, age: timedelta, start_block: int = 1) -> list[PriceObservation]:
    when = timezone.now() - age
    return PriceObservation.objects.bulk_create([
        PriceObservation(chain_id=999, pair="0x" + "ab" * 20, block_number=start_block + i, block_timestamp=1000 + i,
                         price_cumulative=i, reserve_base=1, reserve_azr=1, observed_at=when)
        for i in range(count)])


def test_observations_older_than_the_retention_are_pruned_in_bounded_batches(settings):
    settings.TOKENS_OBSERVATION_RETENTION_DAYS = 7
    old_rows(7, age=timedelta(days=8))
    kept = old_rows(3, age=timedelta(days=6), start_block=100)

    assert observations_prune(batch=5) == 5
    assert observations_prune(batch=5) == 2
    assert observations_prune(batch=5) == 0
    assert set(PriceObservation.objects.values_list("pk", flat=True)) == {row.pk for row in kept}


def test_the_retention_never_drops_what_the_guard_can_still_read(settings):
    settings.TOKENS_OBSERVATION_RETENTION_DAYS = 1  # too short for a 24 h window looked back 3 times
    assert observation_retention() == timedelta(days=3)
    old_rows(2, age=timedelta(days=2))
    assert observations_prune() == 0
    assert observations_prune(now=timezone.now() + timedelta(days=2)) == 2


def test_the_price_tick_prunes_and_observes(chain, settings):
    settings.TOKENS_OBSERVATION_RETENTION_DAYS = 7
    old_rows(4, age=timedelta(days=30))

    result = price_tick()

    assert result["observations_pruned"] == 4 and result["observation"]
    assert not PriceObservation.objects.filter(chain_id=999).exists()
    assert PriceObservation.objects.filter(chain_id=chain.w3.eth.chain_id).exists()


# --- One chain's history, and only one ------------------------------------------------------------


def test_observations_are_keyed_by_chain_id_and_pair(chain):
    row = price_observe()
    assert row.chain_id == chain.w3.eth.chain_id and row.pair == chain.pair
    # The same pair address and block on another network is another history, left alone.
    PriceObservation.objects.create(chain_id=1, pair=row.pair, block_number=row.block_number, block_timestamp=1,
                                    price_cumulative=10**60, reserve_base=1, reserve_azr=1)
    time_travel(chain, 60)
    price_observe()
    assert PriceObservation.objects.filter(chain_id=1).count() == 1
    assert PriceObservation.objects.filter(chain_id=row.chain_id).count() == 3  # warm-up, row, this one


def test_a_consistent_history_is_kept_even_when_a_reading_is_recorded_late(chain):
    chain_id, early = _read()  # one process reads block n ...
    time_travel(chain, 60)
    swap_zar_for_azr(chain, Decimal("1000000"))
    later = price_observe()  # ... another records a later block first
    _, cumulative = _record(chain_id, early)  # then the first one records block n: no contradiction

    assert later.block_number > early.block_number
    assert PriceObservation.objects.filter(chain_id=chain_id).count() == 3
    assert PriceObservation.objects.filter(block_number=early.block_number).get().price_cumulative == cumulative


@pytest.mark.parametrize("what", ["cumulative", "timestamp"])
def test_a_history_going_backwards_is_discarded(chain, what):
    time_travel(chain, 60)
    time_travel(chain, 60)
    chain_id, state = _read()
    now = pg.Observation(state.block_timestamp, pg.cumulative_at(
        cumulative_last=state.price_cumulative_last, timestamp_last=state.block_timestamp_last,
        reserve_base=state.reserve_base, reserve_azr=state.reserve_azr, now=state.block_timestamp))
    # The block before this one stored with a cumulative price (or a time) ahead of this one's:
    # it cannot be the same chain's. The reading now is the chain's truth; the history goes.
    bad = {"cumulative": {"price_cumulative": Decimal(now.cumulative + 10**40), "block_timestamp": now.timestamp - 10},
           "timestamp": {"price_cumulative": Decimal(0), "block_timestamp": now.timestamp + 3600}}[what]
    PriceObservation.objects.create(chain_id=chain_id, pair=state.pair, block_number=state.block_number - 1,
                                    reserve_base=1, reserve_azr=1, **bad)
    assert PriceObservation.objects.filter(chain_id=chain_id).count() == 2  # the warm-up's and that one

    fresh = price_observe()

    assert fresh.block_number == state.block_number
    assert list(PriceObservation.objects.filter(chain_id=chain_id).values_list("pk", flat=True)) == [fresh.pk]


def test_a_block_stored_with_other_values_drops_the_rows_from_it_on(chain):
    first = price_observe()  # the warm-up's row is before it
    time_travel(chain, 60)
    chain_id, state = _read()
    PriceObservation.objects.create(chain_id=chain_id, pair=state.pair, block_number=state.block_number,
                                    block_timestamp=state.block_timestamp, price_cumulative=int(first.price_cumulative),
                                    reserve_base=1, reserve_azr=1)  # a reorganised tip: same block, other values

    fresh = price_observe()

    assert fresh.block_number == state.block_number and fresh.price_cumulative > first.price_cumulative
    assert PriceObservation.objects.filter(chain_id=chain_id).count() == 3  # warm-up, first, fresh


@pytest.mark.django_db(transaction=True)
def test_a_restarted_chain_with_the_pair_at_the_same_address_does_not_mix_histories(chain):
    revenue_track(source="other", amount="100000")
    time_travel(chain, 600)
    swap_zar_for_azr(chain, Decimal("10000000"))
    price_observe()
    old = set(PriceObservation.objects.values_list("pk", flat=True))
    assert len(old) >= 2

    restarted = build_embedded_chain()  # the same deployer: the same addresses, the same chain id
    assert restarted.pair == chain.pair and restarted.w3.eth.chain_id == chain.w3.eth.chain_id
    runtime.chain_client_set(restarted.client())
    # Up to the last deployment block the two chains may be identical (nothing to tell apart);
    # the new one goes on at the wall clock's time, behind the old chain's travelled clock.
    highest = max(PriceObservation.objects.values_list("block_number", flat=True))
    for _ in range(10):
        if restarted.w3.eth.block_number > highest:
            break
        swap_zar_for_azr(restarted, Decimal("1000"))
    assert restarted.w3.eth.block_number > highest

    result = buy_order_run_scheduled()

    # Its history is gone; the guard waits for a window of the new chain's own observations.
    assert result.code == "twap_unavailable" and not BuyOrder.objects.exists()
    assert BuyOrderDeferral.objects.get().code == "twap_unavailable"
    assert not old & set(PriceObservation.objects.values_list("pk", flat=True))
    assert PriceObservation.objects.count() == 1
