"""API number fields that accept what a person means by a number, and nothing else.

DRF's `DecimalField` and `IntegerField` parse text with Python's `Decimal()` and `int()`, which
accept Arabic-Indic (`"١٢٣"`) and fullwidth (`"１２"`) digits, underscores (`"1_000"`) and, for
decimals, exponents. These fields first hold a text value to `common.numbers.parse_ascii_decimal`
(ASCII digits, one decimal point, an optional sign); JSON numbers pass as before (a JSON integer
for packs, a JSON number for an amount). Every API serializer uses them for its numbers.
"""

from __future__ import annotations

from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers

from common.numbers import parse_ascii_decimal
from common.text import invalid_characters, invalid_characters_message


def _ascii_number(field: serializers.Field, data):
    if isinstance(data, str):
        try:
            parse_ascii_decimal(data)
        except ValueError:
            field.fail("invalid")
    return data


class StrictDecimalField(serializers.DecimalField):
    default_error_messages = {"invalid": "A valid number is required: ASCII digits with at most one decimal point."}

    def to_internal_value(self, data):
        return super().to_internal_value(_ascii_number(self, data))


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A valid integer is required: ASCII digits only."}

    def to_internal_value(self, data):
        if isinstance(data, str) and "." in data:
            self.fail("invalid")
        return super().to_internal_value(_ascii_number(self, data))


class MoneyInputField(StrictDecimalField):
    """A money amount in a request: a JSON number or a numeric ASCII string, > 0, 8 places."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 20)
        kwargs.setdefault("decimal_places", 8)
        kwargs.setdefault("min_value", None)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value <= 0:
            raise serializers.ValidationError("Must be greater than zero.", code="min_value")
        return value


class TextInputField(serializers.CharField):
    """A text in a request that is stored (a name, a reference, a reason): DRF's CharField that
    refuses every control character (not only NUL) with the code ``invalid_characters``
    (``common.text``); ``multiline=True`` lets tabs and line breaks through."""

    default_error_messages = {"invalid_characters": "Control characters are not allowed here."}

    def __init__(self, *, multiline: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.multiline = multiline
        # Its own rule replaces DRF's NUL check (whose code is `null_characters_not_allowed`).
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]

    def to_internal_value(self, data):
        if isinstance(data, str):
            bad = invalid_characters(data, multiline=self.multiline)
            if bad:
                raise serializers.ValidationError(invalid_characters_message(bad), code="invalid_characters")
        return super().to_internal_value(data)
