"""The independent price reference: observations of the pair's oracle, and the guard's reading.

``price_observe`` records one :class:`PriceObservation` (idempotent per block); the beat task
calls it every minute, and every buy records one first so that its TWAP ends now.
``price_guard_read`` is what a buy (or a slice) checks before spending: the TWAP over the
configured window from the stored observations, the pool's spot, their deviation, and the
reserves its size is bounded by. It raises nothing for a market reason: ``reading.refusal``
says why the buy must wait (``twap_unavailable`` or ``price_deviation``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from tokens import price_guard as pg
from tokens.chain import PairState
from tokens.chain.runtime import chain_client, with_retries
from tokens.chain.units import from_base_units
from tokens.models import BuyOrderConfig, BuyOrderDeferral, PriceObservation

logger = logging.getLogger(__name__)

# Observations kept for the TWAP: the window twice over, at one a minute, is plenty.
OBSERVATIONS_LOOKBACK = 3


def _cumulative(state: PairState) -> int:
    return pg.cumulative_at(cumulative_last=state.price_cumulative_last, timestamp_last=state.block_timestamp_last,
                            reserve_base=state.reserve_base, reserve_azr=state.reserve_azr, now=state.block_timestamp)


def _record(state: PairState) -> tuple[PriceObservation, int]:
    cumulative = _cumulative(state)
    try:
        with transaction.atomic():
            row = PriceObservation.objects.create(
                pair=state.pair, block_number=state.block_number, block_timestamp=state.block_timestamp,
                price_cumulative=Decimal(cumulative), reserve_base=Decimal(state.reserve_base),
                reserve_azr=Decimal(state.reserve_azr))
    except IntegrityError:  # this block was observed already (two ticks, or a tick and a buy)
        row = PriceObservation.objects.get(pair=state.pair, block_number=state.block_number)
    return row, cumulative


def price_observe(*, sleep=None) -> PriceObservation:
    """Read the pair's oracle at the latest block and store it (once per block)."""
    state = with_retries(lambda: chain_client().pair_state(), what="price observation", sleep=sleep)
    return _record(state)[0]


@dataclass(frozen=True)
class GuardReading:
    """What the guard saw: the pool now, the TWAP, and whether a buy may go ahead."""

    state: PairState
    spot: Decimal
    twap: Decimal | None
    deviation: Decimal | None
    refusal_code: str = ""
    refusal: str = ""

    @property
    def ok(self) -> bool:
        return not self.refusal_code

    @property
    def reserve_base(self) -> Decimal:
        return from_base_units(self.state.reserve_base, self.state.base_decimals)


def price_guard_read(*, config: BuyOrderConfig, sleep=None, record: bool = True) -> GuardReading:
    """Observe now (stored unless ``record=False``: the preview writes nothing), then compare the
    spot with the TWAP over ``config.twap_window_seconds`` ending now."""
    state = with_retries(lambda: chain_client().pair_state(), what="price guard", sleep=sleep)
    if record:
        _, now_cumulative = _record(state)
    else:
        now_cumulative = _cumulative(state)
    decimals = {"base_decimals": state.base_decimals, "azr_decimals": state.azr_decimals}
    try:
        spot = pg.spot_price(state.reserve_base, state.reserve_azr, **decimals)
    except pg.TwapUnavailable as exc:
        return GuardReading(state, Decimal(0), None, None, "twap_unavailable", str(exc))
    window = config.twap_window_seconds
    since = state.block_timestamp - OBSERVATIONS_LOOKBACK * window
    rows = (PriceObservation.objects.filter(pair=state.pair, block_timestamp__gte=since)
            .values_list("block_timestamp", "price_cumulative"))
    observations = [pg.Observation(int(ts), int(cum)) for ts, cum in rows if int(ts) < state.block_timestamp]
    observations.append(pg.Observation(state.block_timestamp, now_cumulative))
    try:
        start, end = pg.bracketing(observations, window=window, now=state.block_timestamp)
        twap = pg.twap(start, end, **decimals)
    except pg.TwapUnavailable as exc:
        return GuardReading(state, spot, None, None, "twap_unavailable",
                            f"No TWAP over {window} s: {exc}. The buy waits for more observations.")
    deviation = pg.deviation(spot, twap)
    if deviation > config.max_price_deviation:
        return GuardReading(state, spot, twap, deviation, "price_deviation",
                            f"The pool's spot {spot:.8f} is {deviation:.2%} off its {window} s TWAP {twap:.8f} "
                            f"(at most {config.max_price_deviation:.2%}): the buy waits.")
    return GuardReading(state, spot, twap, deviation)


def deferral_record(reading: GuardReading, *, trigger: str, period_key: str | None = None,
                    slice_of=None) -> BuyOrderDeferral:
    """Keep why a buy (or slice) did not go ahead, with both prices."""
    row = BuyOrderDeferral.objects.create(trigger=trigger, period_key=period_key or "", slice_of=slice_of,
                                          code=reading.refusal_code, reason=reading.refusal,
                                          spot_price=_q(reading.spot), twap_price=_q(reading.twap))
    logger.warning("buy-order deferred (%s%s): %s", reading.refusal_code,
                   f", slice #{slice_of.pk}" if slice_of else "", reading.refusal)
    return row


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("1e-18"))
