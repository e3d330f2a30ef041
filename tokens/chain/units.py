"""Exact conversion between whole-token ``Decimal`` amounts and on-chain integer units."""

from __future__ import annotations

from decimal import ROUND_CEILING, Context, Decimal, Inexact, InvalidOperation

# uint256 has 78 decimal digits: 80 digits of precision keep every conversion exact.
_EXACT = Context(prec=80, traps=[InvalidOperation, Inexact])


def to_base_units(amount: Decimal, decimals: int, *, round_up: bool = False) -> int:
    """``amount`` whole tokens as an integer number of base units (``amount * 10**decimals``).

    Refuses non-finite and negative amounts. An amount with more fractional digits than the
    token has is refused, unless ``round_up`` asks for the next base unit up (used for
    minimum outputs, so that rounding never accepts less than asked).
    """
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"amount must be a finite, non-negative Decimal: {amount}")
    scaled = _EXACT.scaleb(amount, decimals)
    integral = scaled.to_integral_value(rounding=ROUND_CEILING)
    if integral != scaled and not round_up:
        raise ValueError(f"{amount} has more than {decimals} decimal places")
    return int(integral)


def from_base_units(units: int, decimals: int) -> Decimal:
    """``units`` base units as whole tokens, exactly."""
    return _EXACT.scaleb(Decimal(units), -decimals)
