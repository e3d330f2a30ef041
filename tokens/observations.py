"""The independent price reference: observations of the pair's oracle, and the guard's reading.

``price_observe`` records one :class:`PriceObservation` (idempotent per block); the beat task
calls it every minute, and every buy records one first so that its TWAP ends now. Observations
are keyed by (chain id, pair, block). A reading that contradicts the stored history of its pair
-- a block whose time or cumulative price is behind an earlier block's, or a block already
stored with other values: a restarted chain, a redeployed pair at the same address -- discards
that history (the guard then waits for a window of fresh observations rather than mixing two
chains). ``observations_prune`` deletes, a bounded batch per tick, the observations older than
the retention (``TOKENS_OBSERVATION_RETENTION_DAYS``, 7 by default, never less than the guard
can look back: three of the longest windows).
``price_guard_read`` is what a buy (or a slice) checks before spending: the TWAP over the
configured window from the stored observations, the pool's spot, their deviation, and the
reserves its size is bounded by. It raises nothing for a market reason: ``reading.refusal``
says why the buy must wait (``twap_unavailable`` or ``price_deviation``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tokens import price_guard as pg
from tokens.chain import PairState
from tokens.chain.runtime import chain_client, with_retries
from tokens.chain.units import from_base_units
from tokens.models import BuyOrderConfig, BuyOrderDeferral, PriceObservation

logger = logging.getLogger(__name__)

# Observations kept for the TWAP: the window twice over, at one a minute, is plenty.
OBSERVATIONS_LOOKBACK = 3
# The longest window the settings allow (BuyOrderConfig.twap_window_seconds <= 86400).
MAX_TWAP_WINDOW = 86400
PRUNE_BATCH = 5000


def _cumulative(state: PairState) -> int:
    return pg.cumulative_at(cumulative_last=state.price_cumulative_last, timestamp_last=state.block_timestamp_last,
                            reserve_base=state.reserve_base, reserve_azr=state.reserve_azr, now=state.block_timestamp)


def _read() -> tuple[int, PairState]:
    client = chain_client()
    return client.chain_id, client.pair_state()


def _consistent(earlier: PriceObservation, later: pg.Observation) -> bool:
    """Whether ``later`` (a higher block) can follow ``earlier`` on one chain: time and the
    cumulative price never go backwards (the cumulative may wrap: a forward step is < 2**255)."""
    return (int(earlier.block_timestamp) <= later.timestamp
            and pg.cumulative_advanced(int(earlier.price_cumulative), later.cumulative))


def _stale_history(chain_id: int, state: PairState, cumulative: int):
    """The stored rows of this pair that the reading contradicts (see the module docstring):
    all of them when time or the cumulative price would go backwards between the reading and
    its neighbours, the rows from this block on when the block is stored with other values (a
    reorganised tip, or a restarted chain replaying block numbers); ``None`` when consistent."""
    rows = PriceObservation.objects.filter(chain_id=chain_id, pair=state.pair)
    new = pg.Observation(state.block_timestamp, cumulative)
    before = rows.filter(block_number__lt=state.block_number).order_by("-block_number").first()
    after = rows.filter(block_number__gt=state.block_number).order_by("block_number").first()
    if before is not None and not _consistent(before, new):
        return rows
    if after is not None and not (new.timestamp <= int(after.block_timestamp)
                                  and pg.cumulative_advanced(new.cumulative, int(after.price_cumulative))):
        return rows
    same = rows.filter(block_number=state.block_number).first()
    if same is not None and (int(same.block_timestamp), int(same.price_cumulative)) != (new.timestamp, new.cumulative):
        return rows.filter(block_number__gte=state.block_number)
    return None


def _record(chain_id: int, state: PairState) -> tuple[PriceObservation, int]:
    cumulative = _cumulative(state)
    stale = _stale_history(chain_id, state, cumulative)
    if stale is not None:
        deleted, _ = stale.delete()
        logger.warning("price observations of pair %s on chain %s discarded (%s rows): block %s (time %s) "
                       "contradicts them -- a restarted chain, a reorganisation or a redeployed pair; the guard "
                       "waits for a fresh window", state.pair, chain_id, deleted, state.block_number,
                       state.block_timestamp)
    try:
        with transaction.atomic():
            row = PriceObservation.objects.create(
                chain_id=chain_id, pair=state.pair, block_number=state.block_number,
                block_timestamp=state.block_timestamp, price_cumulative=Decimal(cumulative),
                reserve_base=Decimal(state.reserve_base), reserve_azr=Decimal(state.reserve_azr))
    except IntegrityError:  # this block was observed already (two ticks, or a tick and a buy)
        row = PriceObservation.objects.get(chain_id=chain_id, pair=state.pair, block_number=state.block_number)
    return row, cumulative


def price_observe(*, sleep=None) -> PriceObservation:
    """Read the pair's oracle at the latest block and store it (once per block)."""
    chain_id, state = with_retries(_read, what="price observation", sleep=sleep)
    return _record(chain_id, state)[0]


def observation_retention() -> timedelta:
    """How long observations are kept: the setting, but never less than the guard may read."""
    days = int(getattr(settings, "TOKENS_OBSERVATION_RETENTION_DAYS", 7))
    return max(timedelta(days=days), timedelta(seconds=OBSERVATIONS_LOOKBACK * MAX_TWAP_WINDOW))


def observations_prune(*, now: datetime | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete at most ``batch`` observations recorded before the retention; how many went."""
    cutoff = (now or timezone.now()) - observation_retention()
    ids = list(PriceObservation.objects.filter(observed_at__lt=cutoff).order_by("observed_at", "id")
               .values_list("id", flat=True)[:batch])
    if not ids:
        return 0
    deleted, _ = PriceObservation.objects.filter(id__in=ids).delete()
    logger.info("price observations pruned: %s recorded before %s", deleted, cutoff)
    return deleted


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
    chain_id, state = with_retries(_read, what="price guard", sleep=sleep)
    if record:
        _, now_cumulative = _record(chain_id, state)
    else:
        now_cumulative = _cumulative(state)
    decimals = {"base_decimals": state.base_decimals, "azr_decimals": state.azr_decimals}
    try:
        spot = pg.spot_price(state.reserve_base, state.reserve_azr, **decimals)
    except pg.TwapUnavailable as exc:
        return GuardReading(state, Decimal(0), None, None, "twap_unavailable", str(exc))
    window = config.twap_window_seconds
    since = state.block_timestamp - OBSERVATIONS_LOOKBACK * window
    rows = (PriceObservation.objects.filter(chain_id=chain_id, pair=state.pair, block_timestamp__gte=since,
                                            block_number__lt=state.block_number)
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
