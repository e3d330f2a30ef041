import hashlib

import pytest
from django.core.exceptions import ValidationError

from tests.withdrawals.conftest import ALPHABET, b58check, trc20
from withdrawals.addresses import destination_check, trc20_address_check

# A real, well-known TRON address (the USDT TRC20 contract).
USDT_CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def code_and_message(exc_info):
    exc = exc_info.value
    return exc.error_dict["destination"][0].code, " ".join(exc.messages)


def test_valid_addresses_pass():
    assert trc20_address_check(USDT_CONTRACT) == USDT_CONTRACT
    for seed in range(20):
        address = trc20(seed)
        assert address[0] == "T" and len(address) == 34
        assert trc20_address_check(address) == address
    assert destination_check(method="USDT-TRC20", destination=f"  {trc20(3)}\n") == trc20(3)


@pytest.mark.parametrize("position", [1, 10, 20, 33])
def test_one_character_changed_fails_the_checksum(position):
    address = trc20(7)
    replacement = next(c for c in ALPHABET if c != address[position])
    tampered = address[:position] + replacement + address[position + 1:]
    with pytest.raises(ValidationError) as exc_info:
        trc20_address_check(tampered)
    code, message = code_and_message(exc_info)
    assert code == "invalid_address"
    assert "checksum" in message or "not a TRON address" in message


@pytest.mark.parametrize(("address", "needle"), [
    ("A" + trc20(1)[1:], "starts with 'T'"),
    (trc20(1)[:-1], "34 characters long, not 33"),
    (trc20(1) + "1", "34 characters long, not 35"),
    (trc20(1)[:5] + "0" + trc20(1)[6:], "base58"),
    (trc20(1)[:5] + "O" + trc20(1)[6:], "base58"),
    (trc20(1)[:5] + "l" + trc20(1)[6:], "base58"),
    ("0x" + "ab" * 20, "starts with 'T'"),
])
def test_malformed_addresses_are_refused_with_the_reason(address, needle):
    with pytest.raises(ValidationError) as exc_info:
        trc20_address_check(address)
    code, message = code_and_message(exc_info)
    assert code == "invalid_address" and needle in message


def test_valid_base58check_with_another_version_byte_is_refused():
    # Version 0x41 is TRON's; find a payload with another version byte that still encodes to
    # 34 characters starting with T: the checksum is right, the version is not.
    for version in range(0x42, 0x50):
        address = b58check(bytes([version]) + hashlib.sha256(b"x").digest()[:20])
        if address.startswith("T") and len(address) == 34:
            break
    else:
        pytest.skip("no such version byte in range")  # pragma: no cover - the range has one
    with pytest.raises(ValidationError, match="not a TRON address"):
        trc20_address_check(address)


def test_unknown_method_and_empty_destination():
    with pytest.raises(ValidationError) as exc_info:
        destination_check(method="BTC", destination=trc20(1))
    assert exc_info.value.error_dict["method"][0].code == "invalid_method"
    with pytest.raises(ValidationError) as exc_info:
        destination_check(method="USDT-TRC20", destination="   ")
    assert "destination" in exc_info.value.error_dict
