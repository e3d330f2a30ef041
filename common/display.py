"""How the back-office shows numbers, rates, hashes and dates: one home for every admin page.

Money is shown with 2 decimals (rounded half-even, the ledger's own rounding) and thousands
separators, token quantities with 4, rates as percentages, transaction hashes shortened with the
whole hash in the tooltip, and dates on one line. The stored values are never changed: these
functions only render.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

EMPTY = "–"
TOKEN_PLACES = Decimal("0.0001")
CENT = Decimal("0.01")


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None


def money(value, currency: str | None = None) -> str:
    """``80569.6000000000`` → ``80,569.60``; ``0E-8`` → ``0.00``; with a currency, ``80,569.60 ZAR``."""
    amount = _decimal(value)
    if amount is None:
        return EMPTY
    text = f"{amount.quantize(CENT, rounding=ROUND_HALF_EVEN):,.2f}"
    if text == "-0.00":
        text = "0.00"
    return f"{text} {currency}" if currency else text


def signed_money(value, currency: str | None = None) -> str:
    """Money with its sign, for a change of a balance: ``+80.00 USD``, ``-12.50 USD``."""
    amount = _decimal(value)
    text = money(amount, currency)
    return f"+{text}" if amount is not None and text != money(0, currency) and amount > 0 else text


def count(value) -> str:
    """A whole number with thousands separators: ``40000`` → ``40,000``."""
    return EMPTY if value is None else f"{value:,}"


def tokens(value, symbol: str | None = None) -> str:
    """A token quantity with 4 decimals: ``160000.12345678`` → ``160,000.1235``."""
    amount = _decimal(value)
    if amount is None:
        return EMPTY
    text = f"{amount.quantize(TOKEN_PLACES, rounding=ROUND_HALF_EVEN):,.4f}"
    return f"{text} {symbol}" if symbol else text


def gwei(value) -> str:
    """A fee per gas in gwei, every significant decimal kept: ``1.500000000`` → ``1.5 gwei``."""
    amount = _decimal(value)
    if amount is None:
        return EMPTY
    return f"{amount.normalize():,f} gwei"


def rate(value, places: int = 2) -> str:
    """A fraction as a percentage: ``0.1500`` → ``15%``; ``0.0125`` → ``1.25%``."""
    fraction = _decimal(value)
    if fraction is None:
        return EMPTY
    pct = (fraction * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = f"{pct:f}".rstrip("0").rstrip(".") if "." in f"{pct:f}" else f"{pct:f}"
    return f"{text}%"


def short_hash(value: str | None, url: str | None = None, *, head: int = 6, tail: int = 4) -> SafeString | str:
    """``0x1234…abcd`` with the whole hash as a tooltip, a link when ``url`` is given."""
    if not value:
        return EMPTY
    text = value if len(value) <= head + tail + 3 else f"{value[:head]}…{value[-tail:]}"
    if url:
        return format_html('<a href="{}" title="{}" class="hash">{}</a>', url, value, text)
    return format_html('<span title="{}" class="hash">{}</span>', value, text)


def when(value: datetime | None) -> str:
    """A timestamp on one line, in the site's time zone, to the minute: ``2026-12-06 10:28``."""
    if value is None:
        return EMPTY
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d\u00a0%H:%M")
