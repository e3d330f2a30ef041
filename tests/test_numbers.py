"""common.numbers: the one strict text → number check (files and the API)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from common.money import to_decimal, to_money
from common.numbers import parse_ascii_decimal

NOT_ASCII_NUMBERS = [
    "١٢٣",        # Arabic-Indic digits
    "۱۲۳",        # extended Arabic-Indic (Persian) digits
    "１２",        # fullwidth digits
    "१२३",        # Devanagari digits
    "1_000",      # Python's underscore grouping
    "1e3", "1E3", "NaN", "nan", "Infinity", "-inf", "sNaN",
    "", " ", ".", "1.", ".5", "1..2", "1.2.3", "--1", "+-1", "0x10", "1 2", "½", "²",
    "1,000",      # grouping only where allowed
]


@pytest.mark.parametrize("text", NOT_ASCII_NUMBERS)
def test_refuses_everything_but_ascii_digits(text):
    with pytest.raises(ValueError, match="not a number"):
        parse_ascii_decimal(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("0", Decimal("0")), ("123", Decimal("123")), (" 12.50 ", Decimal("12.50")),
    ("-7", Decimal("-7")), ("+7.25", Decimal("7.25")), ("007", Decimal("7")),
])
def test_accepts_plain_ascii_numbers(text, expected):
    assert parse_ascii_decimal(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("1,000", Decimal("1000")), ("12,345,678.90", Decimal("12345678.90")),
    ("1 000", Decimal("1000")), ("1\u00a0000,5", None), ("1\u202f000", Decimal("1000")),
    ("999", Decimal("999")), ("-1,000.5", Decimal("-1000.5")),
])
def test_thousands_separators_only_when_allowed_and_well_grouped(text, expected):
    if expected is None:
        with pytest.raises(ValueError):
            parse_ascii_decimal(text, allow_thousands=True)
    else:
        assert parse_ascii_decimal(text, allow_thousands=True) == expected


@pytest.mark.parametrize("text", ["1,00", "1,0000", "1000,000", ",100", "1,000 000", "1,,000",
                                  "1_000", "١,٠٠٠", "１,０００", "1,000.", "1,000e3"])
def test_bad_groupings_are_refused(text):
    with pytest.raises(ValueError):
        parse_ascii_decimal(text, allow_thousands=True)


def test_overlong_and_non_strings_are_refused():
    with pytest.raises(ValueError, match="longer than"):
        parse_ascii_decimal("1" * 101)
    with pytest.raises(ValueError):
        parse_ascii_decimal(12)  # type: ignore[arg-type] - text only


@pytest.mark.parametrize("text", ["١٢٣", "１２", "1_000", "1e3", "1,000"])
def test_money_strings_go_through_the_same_check(text):
    with pytest.raises(ValidationError) as excinfo:
        to_decimal(text, field="amount")
    assert "not a number" in excinfo.value.message_dict["amount"][0]
    with pytest.raises(ValidationError):
        to_money(text)
    assert to_money(" 12.5 ") == Decimal("12.5")
