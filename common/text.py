"""Free text a person or a service sends (names, descriptions, notes, references, reasons): one rule
for every text stored in PostgreSQL.

PostgreSQL cannot store NUL (``\\x00``) in a text column, and a lone surrogate cannot be encoded in
UTF-8: either one used to reach the database and fail there (a 500). Other control characters (ESC,
BEL, backspace…) are stored but make a page or an export lie about what was typed. All of them are
refused with the code ``invalid_characters``; tabs and line breaks only where a text may have lines.
The API serializers (``common.fields.TextInputField``) and the services (``text_clean``) use this
one rule.
"""

from __future__ import annotations

import unicodedata

from common.errors import field_error

INVALID_CHARACTERS = "invalid_characters"
_LINE_CONTROLS = frozenset("\t\n\r")


def invalid_characters(value: str, *, multiline: bool = False) -> list[str]:
    """The characters of ``value`` a stored text may not hold (control characters, surrogates),
    each once, in order of appearance."""
    bad: dict[str, None] = {}
    for char in value:
        if char.isprintable() or char == " ":
            continue
        if unicodedata.category(char) in ("Cc", "Cs") and not (multiline and char in _LINE_CONTROLS):
            bad[char] = None
    return list(bad)


def invalid_characters_message(bad: list[str]) -> str:
    shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:3])
    return f"Control characters are not allowed here ({shown})."


def text_clean(value, *, field: str, multiline: bool = False) -> str:
    """``value`` as a str ("" for None), unchanged, or a ValidationError on ``field`` with the code
    ``invalid_characters``."""
    text = "" if value is None else str(value)
    bad = invalid_characters(text, multiline=multiline)
    if bad:
        raise field_error(field, invalid_characters_message(bad), code=INVALID_CHARACTERS)
    return text
