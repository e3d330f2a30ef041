"""Helpers for the withdrawal tests: real TRC20 addresses built here from payloads (with the
test's own base58check encoder, not the code under test), and passive-wallet money."""

import hashlib
from decimal import Decimal

import pytest

from accounts.models import LedgerEntry, Wallet
from accounts.services import Posting, wallet_post

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = ALPHABET[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def trc20(seed: int = 1) -> str:
    """A valid TRON address: 0x41 + a 20-byte account id derived from `seed`."""
    return b58check(b"\x41" + hashlib.sha256(str(seed).encode()).digest()[:20])


def earn(user, amount, key=None):
    """Credit the passive wallet (as a bonus would)."""
    wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=Decimal(str(amount)),
                         reason=LedgerEntry.Reason.BONUS, idempotency_key=key or f"test-earn:{user.pk}:{amount}")])
    user.refresh_from_db()
    return user


@pytest.fixture
def address():
    return trc20(1)


def withdrawal_move(withdrawal, move: str, *, step: int):
    """Apply `move` (approve, pay, reject, cancel) through the services, as an operator or the
    member would; the service refuses one the state does not allow (ConflictError)."""
    from withdrawals.services import withdrawal_approve, withdrawal_cancel, withdrawal_mark_paid, withdrawal_reject

    if move == "approve":
        return withdrawal_approve(withdrawal=withdrawal)
    if move == "pay":
        return withdrawal_mark_paid(withdrawal=withdrawal, tx_ref=f"tx{step}")
    if move == "reject":
        return withdrawal_reject(withdrawal=withdrawal, reason="random")
    return withdrawal_cancel(withdrawal=withdrawal)
