"""The transaction layer's vocabulary: fee policy and figures, a signed transaction, and the
ledger that hands out nonces and keeps what was signed (:class:`TxLedger`; the process-local
:class:`MemoryLedger` here, the database's in :mod:`tokens.chain.txmanager`). Pure Python."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Literal, Protocol

from eth_typing import ChecksumAddress

from tokens.chain.errors import ChainFeeAboveCapError

GWEI = 10**9
# Nodes accept a replacement (same nonce) only with both fees raised by at least 10% (geth's
# default) -- 12.5% is what a block's base fee can rise by, and what clients use.
REPLACEMENT_BUMP = Decimal("1.125")

TxPurpose = Literal["approve", "swap", "burn", "cancel", "other"]


def gwei_to_wei(gwei: Decimal) -> int:
    return int((Decimal(gwei) * GWEI).to_integral_value(rounding=ROUND_CEILING))


def wei_to_gwei(wei: int) -> Decimal:
    """``wei`` in gwei, exactly (9 decimal places)."""
    return Decimal(wei).scaleb(-9).quantize(Decimal("1e-9"))


def bumped(wei: int) -> int:
    """``wei`` + 12.5%, rounded up (never the same fee for a tiny one)."""
    return max(int((wei * REPLACEMENT_BUMP).to_integral_value(rounding=ROUND_CEILING)), wei + 1)


@dataclass(frozen=True)
class FeePolicy:
    """What a transaction may pay, in wei per gas, and when a stuck one is replaced.

    ``max_fee_per_gas`` caps maxFeePerGas (``None``: no cap); ``priority_fee_per_gas`` is the
    tip (``None``: the node's suggestion); ``replace_after`` is how long (seconds) a
    transaction may stay pending before it is replaced (``None``: never while waiting).
    """

    max_fee_per_gas: int | None = None
    priority_fee_per_gas: int | None = None
    replace_after: float | None = None


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    base_fee: int

    def fields(self) -> dict[str, int]:
        return {"maxFeePerGas": self.max_fee_per_gas, "maxPriorityFeePerGas": self.max_priority_fee_per_gas}


@dataclass(frozen=True)
class FeeQuote:
    """The fee figures of a transaction now, in wei per gas, whether or not it may go.

    ``required`` (base fee + tip) is what the next block needs; ``max_fee`` is what the
    transaction would carry: 2 x base fee + tip (room for the base fee to rise), lowered to the
    cap. ``above_cap``: even ``required`` is above the cap -- defer, don't overpay.
    """

    base_fee: int
    priority_fee: int
    cap: int | None

    @property
    def required(self) -> int:
        return self.base_fee + self.priority_fee

    @property
    def above_cap(self) -> bool:
        return self.cap is not None and self.required > self.cap

    @property
    def max_fee(self) -> int:
        ceiling = 2 * self.base_fee + self.priority_fee
        return ceiling if self.cap is None else min(ceiling, self.cap)

    def above_cap_error(self) -> ChainFeeAboveCapError:
        return ChainFeeAboveCapError(required=self.required, cap=self.cap or 0, base_fee=self.base_fee)

    def figures(self) -> dict[str, Decimal | bool | None]:
        """The figures in gwei, for people (the preview): ``max_fee`` is ``None`` above the cap
        (nothing would be sent)."""
        return {"base_fee": wei_to_gwei(self.base_fee), "priority_fee": wei_to_gwei(self.priority_fee),
                "required": wei_to_gwei(self.required),
                "max_fee": None if self.above_cap else wei_to_gwei(self.max_fee),
                "cap": None if self.cap is None else wei_to_gwei(self.cap), "above_cap": self.above_cap}

    def fees(self) -> Fees:
        return Fees(max_fee_per_gas=self.max_fee, max_priority_fee_per_gas=self.priority_fee, base_fee=self.base_fee)


@dataclass(frozen=True)
class SignedTx:
    """A signed type-2 transaction and what is needed to sign it again with other fees."""

    tx_hash: str
    raw: bytes
    sender: ChecksumAddress
    chain_id: int
    nonce: int
    to: ChecksumAddress
    data: str
    gas: int
    value: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


class TxLedger(Protocol):
    """Where nonces come from and signed transactions are kept (see ``tokens.chain.txmanager``)."""

    def record(self, *, sender: ChecksumAddress, chain_id: int, pending_nonce: int,
               sign: Callable[[int], SignedTx], purpose: TxPurpose) -> SignedTx:
        """Take the next nonce (at least ``pending_nonce``), ``sign`` with it and keep the result,
        atomically; return it. Called before the broadcast."""

    def record_replacement(self, original: SignedTx, replacement: SignedTx, *,
                           purpose: TxPurpose | None = None) -> None:
        """Keep ``replacement`` (same nonce, higher fees) as the successor of ``original``, with
        ``original``'s purpose unless ``purpose`` (a cancellation) says otherwise."""

    def sent(self, tx: SignedTx) -> None:
        """The node accepted ``tx``."""

    def send_failed(self, tx: SignedTx, error: str) -> None:
        """The node refused ``tx``: it is not queued, its nonce may be taken again."""

    def not_received(self, tx: SignedTx) -> None:
        """The broadcast got no answer and the node, asked, says it does not hold ``tx``: its nonce
        may be taken again -- though the node may be wrong (another backend behind the same
        address may hold it), so a ledger must not let the same work be signed at another nonce."""

    def mined(self, tx_hash: str, *, status: int, block_number: int) -> None:
        """``tx_hash`` was mined (``status`` 1, or 0: reverted); the rest of its nonce is dropped."""

    def exclusive(self, *, sender: ChecksumAddress, chain_id: int) -> AbstractContextManager[None]:
        """One multi-transaction protocol of ``sender`` at a time (approve, then the swap that spends
        the allowance: two buys interleaved would overwrite each other's allowance)."""


class MemoryLedger:
    """Nonces of this process only: the next is max(node's pending nonce, last taken + 1).

    For a client used alone (scripts, tests); processes sharing a key use the database's ledger.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[tuple[int, str], int] = {}
        self._exclusive: dict[tuple[int, str], threading.Lock] = {}

    def exclusive(self, *, sender: ChecksumAddress, chain_id: int) -> AbstractContextManager[None]:
        with self._lock:
            return self._exclusive.setdefault((chain_id, sender), threading.Lock())

    def record(self, *, sender: ChecksumAddress, chain_id: int, pending_nonce: int,
               sign: Callable[[int], SignedTx], purpose: TxPurpose) -> SignedTx:
        with self._lock:
            nonce = max(pending_nonce, self._next.get((chain_id, sender), 0))
            signed = sign(nonce)
            self._next[(chain_id, sender)] = nonce + 1
            return signed

    def record_replacement(self, original: SignedTx, replacement: SignedTx, *,
                           purpose: TxPurpose | None = None) -> None:
        pass

    def sent(self, tx: SignedTx) -> None:
        pass

    def not_received(self, tx: SignedTx) -> None:
        self.send_failed(tx, "the node did not receive it")

    def send_failed(self, tx: SignedTx, error: str) -> None:
        with self._lock:
            if self._next.get((tx.chain_id, tx.sender)) == tx.nonce + 1:
                self._next[(tx.chain_id, tx.sender)] = tx.nonce

    def mined(self, tx_hash: str, *, status: int, block_number: int) -> None:
        pass
