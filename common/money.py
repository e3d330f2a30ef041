"""Money: parsing, rounding and the model field. One place, used everywhere.

Every amount is a `Decimal`. Floats are refused: `0.1 + 0.2` is not money.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from django.core.exceptions import ValidationError
from django.db import models

from common.numbers import parse_ascii_decimal

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 8
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)  # 0.00000001
CENT = Decimal("0.01")
ZERO = Decimal("0")
# The largest value a DECIMAL(20,8) column holds.
MONEY_MAX = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES) - MONEY_QUANTUM


def MoneyField(*args, **kwargs) -> models.DecimalField:  # noqa: N802 - reads like a field class
    """A `DECIMAL(20,8)` model field."""
    kwargs.setdefault("max_digits", MONEY_MAX_DIGITS)
    kwargs.setdefault("decimal_places", MONEY_DECIMAL_PLACES)
    return models.DecimalField(*args, **kwargs)


def to_decimal(value, *, field: str = "amount") -> Decimal:
    """Parse `Decimal`, `int` or a numeric `str` (ASCII only: `common.numbers`) into a finite `Decimal`.

    Refuses floats, booleans, NaN, Infinity and anything non-numeric with a
    `ValidationError` keyed by `field`. Thousands separators are *not* accepted
    here (that is an import-format concern, handled by the importer).
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise ValidationError({field: f"{field} must be a Decimal, an int or a numeric string, "
                                      f"not {type(value).__name__}."})
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = parse_ascii_decimal(value)
        except ValueError:
            raise ValidationError({field: f"{field} is not a number: {value!r}."}) from None
    else:
        raise ValidationError({field: f"{field} must be a Decimal, an int or a numeric string."})
    if not result.is_finite():
        raise ValidationError({field: f"{field} must be a finite number."})
    return result


def to_money(value, *, field: str = "amount", positive: bool = True) -> Decimal:
    """`to_decimal`, then checked to fit a money column (8 decimal places, 20 digits)
    and, unless `positive=False`, to be > 0."""
    amount = to_decimal(value, field=field)
    if positive and amount <= 0:
        raise ValidationError({field: f"must be greater than zero, not {amount}."})
    if abs(amount) > MONEY_MAX:
        raise ValidationError({field: "is too large."})
    if amount != amount.quantize(MONEY_QUANTUM, rounding=ROUND_DOWN):
        raise ValidationError({field: f"has more than {MONEY_DECIMAL_PLACES} decimal places: {amount}."})
    return amount


def round_money(value: Decimal, *, places: Decimal = CENT, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """The one rounding helper: to cents, banker's rounding unless told otherwise."""
    return value.quantize(places, rounding=rounding)


def round_down(value: Decimal, places: Decimal = CENT) -> Decimal:
    return round_money(value, places=places, rounding=ROUND_DOWN)


def format_money(value: Decimal) -> str:
    """An amount for a human message: thousands separators and at least 2 decimals, more only
    when they are not zero (``0E-8`` → ``0.00``, ``12.5`` → ``12.50``, ``0.00000001`` kept)."""
    value = Decimal(value)
    if value == value.quantize(CENT, rounding=ROUND_DOWN):
        return f"{value:,.2f}"
    return f"{value.normalize():,f}"


class MoneySum(models.Sum):
    """`Sum` of a money column as an exact `Decimal` (8 places) on every database: SQLite adds
    decimals as binary floats (1.86 + … → 1.86000000000001), PostgreSQL exactly. The checks
    that compare sums with cached balances use it."""

    def __init__(self, *expressions, **extra):
        extra.setdefault("output_field", MoneyField())
        super().__init__(*expressions, **extra)

    def get_db_converters(self, connection):
        return [*super().get_db_converters(connection), _quantize_money]


def _quantize_money(value, expression, connection):
    return None if value is None else Decimal(value).quantize(MONEY_QUANTUM)
