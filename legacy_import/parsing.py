"""Cell values → typed values, strictly. Each parser raises `CellError(reason)`.

Forgiving of form (surrounding spaces, thousands separators, numbers and dates
that XLSX already typed), strict about meaning (whole quantities, positive
prices that fit DECIMAL(20,8), real dates not in the future). Never float
arithmetic: an XLSX float is converted through its shortest repr.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from common.money import to_money


class CellError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# 1234 | 1234.5 | 1,234 | 1,234.50 | 1 234 (grouping in threes only: "1,00" is refused).
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:\.\d+)?$")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")


def text(value) -> str:
    """A text cell, trimmed. XLSX integers (1001 or 1001.0) become "1001"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _decimal(value) -> Decimal:
    if isinstance(value, bool):
        raise CellError(f"not a number: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise CellError("not a finite number")
        return Decimal(repr(value))  # shortest round-trip text: 0.05 → Decimal("0.05")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CellError("not a finite number")
        return value
    raw = text(value)
    if not raw:
        raise CellError("is empty")
    compact = _SPACES.sub(" ", raw).strip()
    if not _NUMBER.match(compact):
        raise CellError(f"not a number: {raw!r}")
    try:
        return Decimal(compact.replace(",", "").replace(" ", ""))
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees a number
        raise CellError(f"not a number: {raw!r}") from None


def quantity(value) -> int:
    number = _decimal(value)
    if number != number.to_integral_value():
        raise CellError(f"must be a whole number, not {number}")
    if number <= 0:
        raise CellError(f"must be greater than zero, not {number}")
    if number > 10**15:
        raise CellError("is too large")
    return int(number)


def price(value) -> Decimal:
    """A cell's number, held to the rules of a money column (common.money.to_money)."""
    try:
        return to_money(_decimal(value))
    except ValidationError as exc:
        raise CellError(exc.messages[0].rstrip(".")) from None


def moment(value, *, now: datetime) -> datetime:
    """ISO date (midnight UTC) or date-time (UTC when naive), not after `now`."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime.combine(value, time.min)
    else:
        raw = text(value)
        if not raw:
            raise CellError("is empty")
        try:
            if len(raw) == 10:
                when = datetime.combine(date.fromisoformat(raw), time.min)
            else:
                when = datetime.fromisoformat(raw)
        except ValueError:
            raise CellError(f"not an ISO date or date-time: {raw!r}") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > now:
        raise CellError(f"is in the future: {when.isoformat()}")
    return when


def email(value) -> str:
    raw = text(value).lower()
    if not raw:
        raise CellError("is empty")
    try:
        validate_email(raw)
    except ValidationError:
        raise CellError(f"not a valid e-mail address: {raw!r}") from None
    return raw
