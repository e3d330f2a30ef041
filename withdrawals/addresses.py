"""Destination checks per withdrawal method. Pure functions, standard library only.

A TRC20 (TRON) address is the base58check encoding of 25 bytes: the version byte 0x41, the
20-byte account id, and a 4-byte checksum — the first 4 bytes of sha256(sha256(first 21 bytes)).
Encoded, that is 34 characters starting with `T`.

To add a method: a `Withdrawal.Method` choice and a checker here in `CHECKERS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.core.exceptions import ValidationError

from common.errors import field_error

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(BASE58_ALPHABET)}
TRON_VERSION = 0x41
TRC20_LENGTH = 34


def base58_decode(text: str) -> bytes:
    """Bitcoin-alphabet base58 → bytes (each leading `1` is a leading zero byte).
    Raises ValueError on a character outside the alphabet."""
    number = 0
    for char in text:
        try:
            number = number * 58 + _BASE58_INDEX[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a base58 character") from None
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading_zeros + body


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(BASE58_ALPHABET[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(out))


def base58check_checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def tron_address_from_account(account_id: bytes) -> str:
    """The TRC20 address of a 20-byte account id (for tests and tools)."""
    if len(account_id) != 20:
        raise ValueError("a TRON account id is 20 bytes")
    payload = bytes([TRON_VERSION]) + account_id
    return base58_encode(payload + base58check_checksum(payload))


def _invalid(message: str) -> ValidationError:
    return field_error("destination", message, code="invalid_address")


def trc20_address_check(destination: str) -> str:
    """The address itself when it is a valid TRC20 address; else ValidationError
    (field `destination`, code `invalid_address`) saying what is wrong."""
    if not destination.startswith("T"):
        raise _invalid("A TRC20 address starts with 'T'.")
    if len(destination) != TRC20_LENGTH:
        raise _invalid(f"A TRC20 address is {TRC20_LENGTH} characters long, not {len(destination)}.")
    bad = sorted({c for c in destination if c not in _BASE58_INDEX})
    if bad:
        raise _invalid(f"A TRC20 address is base58: {''.join(bad)!r} cannot appear in it "
                       "(base58 has no 0, O, I or l).")
    raw = base58_decode(destination)
    if len(raw) != 25 or raw[0] != TRON_VERSION:
        raise _invalid("This is not a TRON address (wrong length or version byte once decoded).")
    if raw[21:] != base58check_checksum(raw[:21]):
        raise _invalid("The TRC20 address's checksum does not match: a character is wrong.")
    return destination


CHECKERS: dict[str, Callable[[str], str]] = {
    "USDT-TRC20": trc20_address_check,
}


def destination_check(*, method: str, destination: str) -> str:
    """The destination, stripped and checked for `method`; ValidationError otherwise."""
    checker = CHECKERS.get(method)
    if checker is None:
        raise field_error("method", f"Unknown withdrawal method {method!r}: choose one of {', '.join(CHECKERS)}.",
                      code="invalid_method")
    destination = (destination or "").strip() if isinstance(destination, str) else ""
    if not destination:
        raise field_error("destination", "Give the address to pay to.", code="required")
    return checker(destination)
