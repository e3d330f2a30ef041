"""Errors raised by the chain layer.

The buy-order service retries :class:`ChainTransportError` (the node could not be reached,
timed out, or refused a transaction before executing it) and never retries a
:class:`ChainRevertError` (the transaction executed and reverted: retrying blindly would
fail again, or worse, succeed at a price nobody agreed to).
"""

from __future__ import annotations


class ChainError(Exception):
    """Base class of every error of the chain layer."""


class ChainConfigError(ChainError):
    """The chain is not configured correctly (missing or malformed settings)."""


class ChainTransportError(ChainError):
    """A transient failure talking to the node: connection, timeout, refused request."""


class LedgerRefusal(ChainError):
    """The transaction ledger refused to sign: the transaction would do something already done or
    no longer wanted (a swap for an order that is not pending, a second burn for one order)."""


class NonceHeld(ChainTransportError):
    """A buy-order's earlier swap may still be held at its nonce (the node's answer was lost, or it
    says it lacks a transaction it took): a swap at another nonce could buy twice, so none is
    signed. Transient: the order stays pending and is settled through that nonce."""


class ChainRevertError(ChainError):
    """A transaction or call reverted on chain.

    ``reason`` is the revert reason (e.g. ``"INSUFFICIENT_OUTPUT_AMOUNT"``); ``tx_hash`` is
    the hash of the mined, reverted transaction, when there is one.
    """

    def __init__(self, reason: str, *, tx_hash: str | None = None) -> None:
        super().__init__(f"execution reverted: {reason}")
        self.reason = reason
        self.tx_hash = tx_hash


class ChainFeeAboveCapError(ChainError):
    """The fee a transaction needs now is above the configured cap: nothing was signed.

    ``required`` is base fee + priority fee (wei per gas) -- or, for a replacement, the bumped
    fee the node demands -- and ``cap`` is ``max_fee_per_gas``. Not a transport error: waiting
    (the next tick) is the answer, not an immediate retry.
    """

    def __init__(self, *, required: int, cap: int, base_fee: int | None = None, what: str = "transaction") -> None:
        figures = f"{_gwei(required)} gwei needed"
        if base_fee is not None:
            figures += f" (base fee {_gwei(base_fee)} gwei + priority fee {_gwei(required - base_fee)} gwei)"
        super().__init__(f"gas above the cap: the {what} needs {figures}, above max_fee_per_gas {_gwei(cap)} gwei")
        self.required = required
        self.cap = cap
        self.base_fee = base_fee


def _gwei(wei: int) -> str:
    from decimal import Decimal

    return format((Decimal(wei) / Decimal(10**9)).normalize(), "f")
