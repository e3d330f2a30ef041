"""The API's JSON parser: refuses over-deep bodies before the C JSON parser sees them.

The C parser recurses once per `[`/`{`; a body nested 100,000 levels deep overflows the C
stack when the recursion limit is high (see `common.runtime`). No request of this API
nests more than a few levels, so anything deeper than `API_JSON_MAX_DEPTH` (default 32) is
refused with a 400 (`json_too_deep`) after a linear scan done in C (`str.replace` passes).
The body size is bounded before that by `DATA_UPLOAD_MAX_MEMORY_SIZE` (413,
`request_too_large`, see `common.api`).
"""

from __future__ import annotations

import io
import re

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

DEFAULT_MAX_DEPTH = 32

# A JSON string (or an unterminated one, up to the end): removed before counting brackets.
# Unrolled-loop form, linear: it can always match, so it never backtracks.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_TO_PARENS = str.maketrans("[{]}", "(())")


class JSONTooDeep(ParseError):
    default_detail = "The JSON body is nested too deeply."
    default_code = "json_too_deep"


def json_nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether `text` (JSON) nests `[`/`{` deeper than `max_depth` (brackets in strings do not count).

    Unbalanced brackets count as nesting too: the parser would recurse into them before
    failing. Each `replace` pass removes one level of innermost pairs, so at most
    `max_depth` passes run, each in C.
    """
    if text.count("[") + text.count("{") <= max_depth:  # the usual small body: no scan
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_TO_PARENS)
    if "(" * (max_depth + 1) in brackets:  # the plain attack, found at once
        return True
    for level in range(max_depth + 1):
        reduced = brackets.replace("()", "")
        if reduced == brackets:  # no pair left: what remains is ")))(((" (unbalanced)
            return level + reduced.count("(") > max_depth
        brackets = reduced
    return True  # max_depth + 1 levels of pairs were removed


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser (strict: no NaN/Infinity) behind a nesting-depth check."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parsers.get_encoding(parser_context)  # text codecs only (DRF)
        raw = stream.read()
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not valid {encoding}: {exc}") from None
        max_depth = int(getattr(settings, "API_JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))
        if json_nesting_exceeds(text, max_depth):
            raise JSONTooDeep(f"The JSON body is nested more than {max_depth} levels deep.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)
