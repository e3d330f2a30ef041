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


class ChainRevertError(ChainError):
    """A transaction or call reverted on chain.

    ``reason`` is the revert reason (e.g. ``"INSUFFICIENT_OUTPUT_AMOUNT"``); ``tx_hash`` is
    the hash of the mined, reverted transaction, when there is one.
    """

    def __init__(self, reason: str, *, tx_hash: str | None = None) -> None:
        super().__init__(f"execution reverted: {reason}")
        self.reason = reason
        self.tx_hash = tx_hash
