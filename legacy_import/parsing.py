"""Cell values → typed values, strictly. Each parser raises `CellError(reason)`.

Forgiving of form (surrounding spaces, thousands separators, numbers and dates
that XLSX already typed), strict about meaning (whole quantities, positive
prices that fit DECIMAL(20,8), real dates from 2000 on and not in the future,
e-mails and names that fit their columns). Never float arithmetic: an XLSX
float is converted through its shortest repr. Numbers written as text go
through `common.numbers.parse_ascii_decimal` (ASCII digits only).

No cell reaches the database unchecked: `check_text` refuses control
characters (a NUL byte cannot even be sent to PostgreSQL), and each column's
length is held to its model field's `max_length`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts.models import User
from common.money import to_money
from common.numbers import parse_ascii_decimal


class CellError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


EMAIL_MAX = User._meta.get_field("email").max_length
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no purchase of this platform's history is older
QUANTITY_MAX = 10**15
# C0 and C1 control characters (NUL, tab, line breaks, DEL, …) and the Unicode line and
# paragraph separators. Surrounding whitespace is trimmed first, so a stray trailing newline
# in a quoted cell is not an error; one inside a value is.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def text(value) -> str:
    """A text cell, trimmed. XLSX integers (1001 or 1001.0) become "1001"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def check_text(value) -> str:
    """`text(value)`, refused when it holds a control character (NUL, a line break, …)."""
    raw = text(value)
    found = _CONTROL.search(raw)
    if found:
        raise CellError(f"contains a control character (U+{ord(found.group()):04X}) "
                        f"at position {found.start() + 1}")
    return raw


def bounded_text(value, *, max_length: int) -> str:
    """`check_text(value)` no longer than `max_length` characters (never cut)."""
    raw = check_text(value)
    if len(raw) > max_length:
        raise CellError(f"is longer than {max_length} characters ({len(raw)})")
    return raw


def name(value, *, column: str) -> str:
    """A member's first or last name, held to the User field's max_length."""
    return bounded_text(value, max_length=User._meta.get_field(column).max_length)


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
    raw = check_text(value)
    if not raw:
        raise CellError("is empty")
    try:
        return parse_ascii_decimal(raw, allow_thousands=True)
    except ValueError:
        raise CellError(f"not a number: {raw!r} (ASCII digits, one decimal point and "
                        "thousands separators in groups of three only)") from None


def quantity(value) -> int:
    number = _decimal(value)
    if number != number.to_integral_value():
        raise CellError(f"must be a whole number, not {number}")
    if number <= 0:
        raise CellError(f"must be greater than zero, not {number}")
    if number > QUANTITY_MAX:
        raise CellError("is too large")
    return int(number)


def price(value) -> Decimal:
    """A cell's number, held to the rules of a money column (common.money.to_money)."""
    try:
        return to_money(_decimal(value))
    except ValidationError as exc:
        raise CellError(exc.messages[0].rstrip(".")) from None


def moment(value, *, now: datetime) -> datetime:
    """ISO date (midnight UTC) or date-time (UTC when naive), from `EARLIEST` to `now`."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime.combine(value, time.min)
    else:
        raw = check_text(value)
        if not raw:
            raise CellError("is empty")
        try:
            if not raw.isascii():
                raise ValueError(raw)
            if len(raw) == 10:
                when = datetime.combine(date.fromisoformat(raw), time.min)
            else:
                when = datetime.fromisoformat(raw)
        except ValueError:
            raise CellError(f"not an ISO date or date-time: {raw!r}") from None
    try:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (OverflowError, ValueError):  # 0001-01-01T00:00+02:00 is before year 1 in UTC
        raise CellError(f"is out of range: {value}") from None
    if when < EARLIEST:
        raise CellError(f"is before {EARLIEST.date().isoformat()}: {when.isoformat()}")
    if when > now:
        raise CellError(f"is in the future: {when.isoformat()}")
    return when


def email(value) -> str:
    """Lower case, valid for `validate_email` (what `member_create` checks) and no longer
    than the User e-mail column."""
    raw = check_text(value).lower()
    if not raw:
        raise CellError("is empty")
    if len(raw) > EMAIL_MAX:
        raise CellError(f"is longer than {EMAIL_MAX} characters ({len(raw)})")
    try:
        validate_email(raw)
    except ValidationError:
        raise CellError(f"not a valid e-mail address: {raw!r}") from None
    return raw
