"""Strict ASCII numbers: the one check every text → number conversion goes through.

Python's `int()` and `Decimal()` accept far more than an operator or a client means by a
number: Arabic-Indic (`"١٢٣"`) and fullwidth (`"１２"`) digits, underscores (`"1_000"`),
exponents (`"1e3"`), `"NaN"` and `"Infinity"`. Here a number is ASCII digits with at most
one decimal point and an optional leading sign, nothing else:

    parse_ascii_decimal("1234.50")                          → Decimal("1234.50")
    parse_ascii_decimal("1,234.50", allow_thousands=True)   → Decimal("1234.50")

Thousands separators are a file-format concern (a spreadsheet export writes `1,000.50`),
so they are accepted only when asked for, and only in a well-formed grouping: groups of
exactly three digits after a first group of one to three, one separator kind per number
(a comma, or a space — including the no-break and thin spaces spreadsheets write).
`"1,00"`, `"1,0000"` and `"1,000 000"` are refused.

Pure: no Django, no I/O. Refusals raise `ValueError` (callers turn it into their own error:
a `ValidationError` for a field, a row error for a file).
"""

from __future__ import annotations

import re
from decimal import Decimal

# [0-9], never \d: in a str pattern \d matches every Unicode decimal digit.
_PLAIN = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_GROUPED = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?: [0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
# Spaces a spreadsheet may put between digit groups: no-break, narrow no-break, thin.
_GROUP_SPACES = re.compile(r"[ \u00a0\u202f\u2009]")
MAX_LENGTH = 100  # characters; DECIMAL(20,8) needs 30 — anything longer is not a number we hold


def parse_ascii_decimal(text: str, *, allow_thousands: bool = False) -> Decimal:
    """`text` (surrounding whitespace ignored) as a finite `Decimal`, or `ValueError`.

    Accepts `[+-]digits[.digits]` in ASCII; with `allow_thousands=True`, also digits
    grouped by threes with `,` or a space. Refuses everything else: other scripts' digits,
    underscores, exponents, NaN/Infinity, a bare or trailing point, several points.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a number: {text!r}")
    raw = text.strip()
    if len(raw) > MAX_LENGTH:
        raise ValueError(f"not a number: longer than {MAX_LENGTH} characters")
    if allow_thousands:
        compact = _GROUP_SPACES.sub(" ", raw)
        if _GROUPED.fullmatch(compact):
            return Decimal(compact.replace(",", "").replace(" ", ""))
    elif _PLAIN.fullmatch(raw):
        return Decimal(raw)
    raise ValueError(f"not a number: {text!r}")
