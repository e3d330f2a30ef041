"""The back-office's number, rate, hash and date rendering (common.display)."""

from datetime import UTC, datetime
from decimal import Decimal

from common import display


def test_money_has_two_decimals_and_separators():
    assert display.money("80569.6000000000", "ZAR") == "80,569.60 ZAR"
    assert display.money(Decimal("0E-8")) == "0.00"
    assert display.money("-0.001") == "0.00"
    assert display.money("2.345") == "2.34"  # half-even, the ledger's rounding
    assert display.money(None) == display.EMPTY
    assert display.money("not a number") == display.EMPTY


def test_tokens_have_four_decimals():
    assert display.tokens("160000.12345678", "AZR") == "160,000.1235 AZR"
    assert display.tokens(0) == "0.0000"


def test_rates_are_percentages():
    assert display.rate("0.1500") == "15%"
    assert display.rate("0.0125") == "1.25%"
    assert display.rate(Decimal("0.33333")) == "33.33%"
    assert display.rate(None) == display.EMPTY


def test_short_hash_keeps_the_whole_hash_in_the_tooltip_and_escapes():
    tx = "0x" + "ab" * 32
    html = display.short_hash(tx, "/admin/tokens/buyorder/1/change/")
    assert ">0xabab…abab</a>" in html and f'title="{tx}"' in html
    assert "&lt;script&gt;" in display.short_hash("<script>alert(1)</script>-long-enough")
    assert display.short_hash("") == display.EMPTY


def test_dates_are_on_one_line():
    text = display.when(datetime(2026, 12, 6, 10, 28, 59, tzinfo=UTC))
    assert "\n" not in text and " " not in text and text.startswith("2026-12-06")
