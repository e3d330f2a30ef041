"""The price guard's rules, pure: TWAP from cumulative prices, deviation, price impact, slices.

Works with any Uniswap V2 compatible pair: the pair keeps ``priceXCumulativeLast`` (UQ112x112
fixed point x seconds, wrapping at 2**256) and ``blockTimestampLast`` (mod 2**32). Amounts here
are integers of base units (reserves, inputs) or ``Decimal`` prices in base token per AZR.

Price impact of an input ``x`` against reserves ``(r_in, r_out)`` is how much worse the swap's
price is than the mid price, the 0.3% fee aside: ``1 - out / (x * 0.997 * r_out / r_in)``,
which for the constant product is ``x*997 / (r_in*1000 + x*997)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal

Q112 = 2**112
UINT256 = 2**256
UINT32 = 2**32
FEE_NUMERATOR = 997  # the pair keeps 0.3% of the input (Pair.vy: 1000 - 3)
FEE_DENOMINATOR = 1000

_CTX = Context(prec=60)
CENT = Decimal("0.01")


class TwapUnavailable(Exception):
    """Not enough observations cover the window: the buy defers (code ``twap_unavailable``)."""


@dataclass(frozen=True)
class Observation:
    """One reading: the block's time and the pair's cumulative price of AZR in base there."""

    timestamp: int
    cumulative: int


def cumulative_at(*, cumulative_last: int, timestamp_last: int, reserve_base: int, reserve_azr: int,
                  now: int) -> int:
    """The cumulative price of AZR at ``now``, as the pair would have it after an update then
    (Uniswap's ``currentCumulativePrices``): the last value plus the current price times the
    seconds since ``blockTimestampLast``, wrapping like the pair."""
    elapsed = (now % UINT32 - timestamp_last) % UINT32
    if elapsed == 0 or reserve_base == 0 or reserve_azr == 0:
        return cumulative_last % UINT256
    return (cumulative_last + (reserve_base * Q112 // reserve_azr) * elapsed) % UINT256


def cumulative_advanced(earlier: int, later: int) -> bool:
    """Whether a cumulative price went from ``earlier`` to ``later`` forwards: the pair's
    accumulators only grow, wrapping at 2**256, and no real step comes near 2**255."""
    return (later - earlier) % UINT256 < UINT256 // 2


def twap(start: Observation, end: Observation, *, base_decimals: int = 18, azr_decimals: int = 18) -> Decimal:
    """The time-weighted average price of AZR in base between two observations."""
    seconds = end.timestamp - start.timestamp
    if seconds <= 0:
        raise TwapUnavailable("the observations do not span any time")
    delta = (end.cumulative - start.cumulative) % UINT256  # one wrap between readings is fine
    raw = _CTX.divide(Decimal(delta), Decimal(seconds * Q112))
    return _CTX.multiply(raw, Decimal(10) ** (azr_decimals - base_decimals))


def bracketing(observations: list[Observation], *, window: int, now: int,
               max_age: int | None = None) -> tuple[Observation, Observation]:
    """The two observations a TWAP over ``window`` seconds ending ``now`` is taken from: the
    newest (not older than ``max_age``, default a quarter of the window, at least 2 minutes) and
    the newest one at least ``window`` seconds before it (and not more than twice the window)."""
    max_age = max(window // 4, 120) if max_age is None else max_age
    ordered = sorted(observations, key=lambda o: o.timestamp)
    if not ordered:
        raise TwapUnavailable("no price observation recorded yet")
    end = ordered[-1]
    if now - end.timestamp > max_age:
        raise TwapUnavailable(f"the newest price observation is {now - end.timestamp} s old (at most {max_age} s)")
    starts = [o for o in ordered if o.timestamp <= end.timestamp - window]
    if not starts:
        covered = end.timestamp - ordered[0].timestamp
        raise TwapUnavailable(f"the observations cover {covered} s of the {window} s window")
    start = starts[-1]
    if end.timestamp - start.timestamp > 2 * window:
        raise TwapUnavailable(f"no observation between {2 * window} s and {window} s ago (a gap in the records)")
    return start, end


def spot_price(reserve_base: int, reserve_azr: int, *, base_decimals: int = 18, azr_decimals: int = 18) -> Decimal:
    """The pair's mid price of AZR in base (no fee)."""
    if reserve_base <= 0 or reserve_azr <= 0:
        raise TwapUnavailable("the pair has no liquidity")
    raw = _CTX.divide(Decimal(reserve_base), Decimal(reserve_azr))
    return _CTX.multiply(raw, Decimal(10) ** (azr_decimals - base_decimals))


def deviation(spot: Decimal, reference: Decimal) -> Decimal:
    """|spot / reference - 1| (a fraction)."""
    return abs(_CTX.divide(spot, reference) - 1)


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """The V2 constant-product output with the 0.3% fee (the router's ``getAmountOut``)."""
    with_fee = amount_in * FEE_NUMERATOR
    return with_fee * reserve_out // (reserve_in * FEE_DENOMINATOR + with_fee)


def price_impact(amount_in: int, reserve_in: int) -> Decimal:
    """The price impact of ``amount_in`` (a fraction; see the module docstring)."""
    with_fee = amount_in * FEE_NUMERATOR
    return _CTX.divide(Decimal(with_fee), Decimal(reserve_in * FEE_DENOMINATOR + with_fee))


def max_input_for_impact(reserve_in: int, max_impact: Decimal) -> int:
    """The largest input whose price impact is at most ``max_impact``."""
    if not (0 < max_impact < 1):
        raise ValueError("max_impact is a fraction in (0, 1)")
    limit = _CTX.divide(max_impact * reserve_in * FEE_DENOMINATOR, (1 - max_impact) * FEE_NUMERATOR)
    return int(limit.to_integral_value(rounding=ROUND_DOWN))


def price_move(amount_in: int, reserve_in: int, reserve_out: int) -> Decimal:
    """How much the mid price (in per out) rises after swapping ``amount_in``: new / old - 1."""
    out = amount_out(amount_in, reserve_in, reserve_out)
    if out >= reserve_out:
        raise ValueError("the swap would drain the pool")
    new = _CTX.divide(Decimal(reserve_in + amount_in), Decimal(reserve_out - out))
    return _CTX.divide(new, _CTX.divide(Decimal(reserve_in), Decimal(reserve_out))) - 1


def expected_out_at_price(amount_in: Decimal, *, price: Decimal, reserve_in: Decimal) -> Decimal:
    """The AZR ``amount_in`` base buys from a pool as deep as ``reserve_in`` whose mid price is
    ``price`` (the TWAP): the fee and the swap's own impact included, the pool's spot not."""
    reserve_out = _CTX.divide(reserve_in, price)
    with_fee = _CTX.multiply(amount_in, Decimal(FEE_NUMERATOR) / FEE_DENOMINATOR)
    return _CTX.divide(_CTX.multiply(with_fee, reserve_out), reserve_in + with_fee)


def split(total: Decimal, max_slice: Decimal) -> list[Decimal]:
    """``total`` in equal slices (to the cent) of at most ``max_slice``; the last takes the
    rounding remainder, so the slices add up to ``total`` exactly."""
    if total <= 0:
        raise ValueError("the total must be positive")
    if max_slice < CENT:
        raise ValueError("the pool is too shallow: a slice would be less than a cent")
    if total <= max_slice:
        return [total]
    count = int(_CTX.divide(total, max_slice - CENT).to_integral_value(rounding=ROUND_UP))
    part = _CTX.divide(total, Decimal(count)).quantize(CENT, rounding=ROUND_DOWN)
    slices = [part] * (count - 1)
    return [*slices, total - part * (count - 1)]
