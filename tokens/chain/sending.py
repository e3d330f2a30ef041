"""The transaction layer: EIP-1559 fees under a cap, signing with a nonce from a :class:`TxLedger`,
broadcast, waiting for the receipt, replacement of a transaction that stays pending, look-ups.

A :class:`TransactionSender` signs for one key on one connection. Every transaction is type 2
with a fixed gas limit. Its nonce comes from the ledger, which keeps the signed transaction
before it is broadcast (the process-local :class:`MemoryLedger` by default, the database's in
:mod:`tokens.chain.txmanager` for the services). A transaction pending longer than
``FeePolicy.replace_after`` seconds is replaced: same nonce, fees +12.5%, never above the
``max_fee_per_gas`` cap; one that can no longer do its work is cancelled (the same nonce taken by
a zero-value transfer to itself). Knows nothing of contracts (:mod:`tokens.chain.client` builds the calls).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from tokens.chain.config import ChainConfig
from tokens.chain.errors import ChainError, ChainFeeAboveCapError, ChainRevertError, ChainTransportError
from tokens.chain.rpc import (
    REFUSED_ERRORS,
    REVERT_ERRORS,
    TRANSPORT_ERRORS,
    error_message,
    is_refusal,
    revert_reason,
    scrub,
    translated,
)
from tokens.chain.tx import FeePolicy, FeeQuote, Fees, MemoryLedger, SignedTx, TxLedger, TxPurpose, bumped

logger = logging.getLogger(__name__)

# mined: in a block at least ``confirmations`` deep; confirming: in a block, not yet that deep.
TxState = Literal["mined", "confirming", "pending", "unknown"]

# A plain transfer's gas: what a cancellation costs.
CANCEL_GAS = 21_000

# The ledger of a client used without one (scripts, tests): this process's nonces only.
memory_ledger = MemoryLedger()


class TransactionSender:
    """Builds, signs, sends and follows the transactions of ``account`` on ``w3``."""

    def __init__(self, w3: Web3, account: LocalAccount, config: ChainConfig) -> None:
        self._w3 = w3
        self._account = account
        self._config = config
        self._chain_id: int | None = None

    def __repr__(self) -> str:
        return f"<TransactionSender {self.address}>"

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with self.translated("chain id"):
                self._chain_id = self._w3.eth.chain_id
        return self._chain_id

    def translated(self, action: str) -> AbstractContextManager[None]:
        """Provider and EVM exceptions as :class:`ChainError` subclasses, secrets scrubbed."""
        return translated(action, self._config.provider_uri)

    # --- Fees ---------------------------------------------------------------------------

    def fee_quote(self, policy: FeePolicy | None = None) -> FeeQuote:
        """The fee figures under ``policy`` now (base fee of the latest block, the policy's tip or
        the node's suggestion), even when they are above the cap (a preview shows them)."""
        policy = policy or FeePolicy()
        with self.translated("fees"):
            base_fee = self._w3.eth.get_block("latest").get("baseFeePerGas")
            if base_fee is None:
                raise ChainError("the chain has no EIP-1559 base fee (pre-London): not supported")
            tip = policy.priority_fee_per_gas
            if tip is None:
                tip = self._w3.eth.max_priority_fee
        return FeeQuote(base_fee=base_fee, priority_fee=tip, cap=policy.max_fee_per_gas)

    def suggest_fees(self, policy: FeePolicy | None = None) -> Fees:
        """Type-2 fees for a transaction now: maxFeePerGas = 2 x base fee + tip (room for the base
        fee to rise), lowered to the cap; :class:`ChainFeeAboveCapError` when even base fee + tip
        (what the next block needs) is above the cap -- defer, don't overpay."""
        quote = self.fee_quote(policy)
        if quote.above_cap:
            raise quote.above_cap_error()
        return quote.fees()

    # --- Sending ------------------------------------------------------------------------

    def transact(self, call: dict[str, Any], fees: Fees, *, ledger: TxLedger, policy: FeePolicy,
                 purpose: TxPurpose, label: str, on_signed: Callable[[str], None] | None = None) -> TxReceipt:
        """Sign ``call`` (``to``, ``data``, ``gas``, ``value``; the ledger gives the nonce and keeps
        the signed transaction), send, and wait for it -- replacing it when it stays pending longer
        than ``policy.replace_after``. :class:`ChainRevertError` when it reverted.

        The node's pending nonce is only a floor: the ledger knows the nonces taken by
        transactions still in flight, which a node may not count yet.
        """
        signed = ledger.record(sender=self.address, chain_id=self.chain_id, pending_nonce=self.pending_nonce(),
                               sign=lambda nonce: self.sign(nonce, call, fees), purpose=purpose)
        if on_signed is not None:
            on_signed(signed.tx_hash)
        self.broadcast(signed, ledger)
        logger.info("sent %s as %s (nonce %s)", label, signed.tx_hash, signed.nonce)
        receipt = self.await_receipt([signed], ledger=ledger, policy=policy, on_signed=on_signed)
        if receipt["status"] != 1:
            reason = self.replay_reason(call, receipt)
            tx_hash = receipt["transactionHash"].to_0x_hex()
            logger.warning("%s in %s reverted: %s", label, tx_hash, reason)
            raise ChainRevertError(reason, tx_hash=tx_hash)
        return receipt

    def sign(self, nonce: int, call: dict[str, Any], fees: Fees) -> SignedTx:
        tx = {"type": 2, "chainId": self.chain_id, "nonce": nonce, **call, **fees.fields()}
        signed = self._account.sign_transaction(tx)
        return SignedTx(
            tx_hash=signed.hash.to_0x_hex(), raw=bytes(signed.raw_transaction), sender=self.address,
            chain_id=self.chain_id, nonce=nonce, to=call["to"], data=call["data"], gas=call["gas"],
            value=call["value"], max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas)

    def broadcast(self, tx: SignedTx, ledger: TxLedger) -> None:
        """Send ``tx``; tell the ledger whether the node took it. Only a refusal the node states
        (:func:`tokens.chain.rpc.is_refusal`: a stale nonce, an underpriced fee, no funds) makes
        it ``send_failed``. Anything else -- no answer, a proxy's error -- leaves it as signed:
        the node may hold it, and a later look-up or the same bytes sent again settle that."""
        try:
            self._w3.eth.send_raw_transaction(tx.raw)
        except REFUSED_ERRORS as exc:
            message = error_message(exc)
            if "already known" not in message.lower():
                if is_refusal(exc):
                    ledger.send_failed(tx, scrub(message, self._config.provider_uri))
                raise
        except TRANSPORT_ERRORS:
            try:
                self._w3.eth.get_transaction(tx.tx_hash)
            except TransactionNotFound:
                ledger.not_received(tx)
            except TRANSPORT_ERRORS:
                pass
            raise
        ledger.sent(tx)

    def replace(self, tx: SignedTx, *, policy: FeePolicy | None = None, ledger: TxLedger | None = None,
                on_signed: Callable[[str], None] | None = None) -> SignedTx:
        """Sign ``tx`` again with the same nonce and both fees raised by >= 12.5% (and to at least
        what the chain needs now), keep it in the ledger, broadcast it.

        :class:`ChainFeeAboveCapError` (nothing signed) when the bumped fee is above the cap; a
        refused broadcast (e.g. "nonce too low": the original was mined meanwhile) is recorded by
        the ledger and raised as :class:`ChainTransportError`.
        """
        call = {"to": tx.to, "data": tx.data, "gas": tx.gas, "value": tx.value}
        return self._resign(tx, call, policy=policy, ledger=ledger, on_signed=on_signed, purpose=None)

    def cancel(self, tx: SignedTx, *, policy: FeePolicy | None = None,
               ledger: TxLedger | None = None) -> SignedTx:
        """Take ``tx``'s nonce with a zero-value transfer to the sender itself (21,000 gas), at
        fees bumped as :meth:`replace` bumps them: for a transaction that can no longer do what
        it was for (a swap past its deadline would only revert, at its full gas). Whichever of
        the two is mined takes the nonce; the ledger keeps the cancellation as ``cancel``."""
        call = {"to": self.address, "data": "0x", "gas": CANCEL_GAS, "value": 0}
        return self._resign(tx, call, policy=policy, ledger=ledger, on_signed=None, purpose="cancel")

    def _resign(self, tx: SignedTx, call: dict[str, Any], *, policy: FeePolicy | None, ledger: TxLedger | None,
                on_signed: Callable[[str], None] | None, purpose: TxPurpose | None) -> SignedTx:
        policy = policy or FeePolicy()
        ledger = ledger or memory_ledger
        what = "cancellation" if purpose == "cancel" else "replacement"
        with self.translated(what):
            base_fee = self._w3.eth.get_block("latest").get("baseFeePerGas") or 0
            tip = max(bumped(tx.max_priority_fee_per_gas), policy.priority_fee_per_gas or 0)
            max_fee = max(bumped(tx.max_fee_per_gas), base_fee + tip)
            cap = policy.max_fee_per_gas
            if cap is not None and max_fee > cap:
                raise ChainFeeAboveCapError(required=max_fee, cap=cap, what=f"{what} of {tx.tx_hash}")
            successor = self.sign(tx.nonce, call, Fees(max_fee, tip, base_fee))
            ledger.record_replacement(tx, successor, purpose=purpose)
            if on_signed is not None:
                on_signed(successor.tx_hash)
            self.broadcast(successor, ledger)
            logger.warning("%s of %s (nonce %s, pending too long): %s, max fee %s -> %s wei, tip %s -> %s",
                           what, tx.tx_hash, tx.nonce, successor.tx_hash, tx.max_fee_per_gas, max_fee,
                           tx.max_priority_fee_per_gas, tip)
            return successor

    def rebroadcast(self, raw: bytes, tx_hash: str) -> None:
        """Send a transaction signed earlier again (a crash between recording and broadcasting)."""
        with self.translated("rebroadcast"):
            try:
                self._w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:
                if "already known" not in exc.message.lower():
                    raise

    # --- Waiting and looking up ---------------------------------------------------------

    def await_receipt(self, family: list[SignedTx], *, ledger: TxLedger, policy: FeePolicy,
                      on_signed: Callable[[str], None] | None = None) -> TxReceipt:
        """The receipt of whichever of ``family`` (one nonce) is mined, once it is
        ``config.confirmations`` blocks deep; replaces the newest when none is in a block for
        longer than ``policy.replace_after``; :class:`TimeExhausted` after
        ``config.receipt_timeout`` seconds."""
        started = last_sent = time.monotonic()
        while True:
            receipt = self._first_receipt(family)
            if receipt is not None and self.final(receipt):
                ledger.mined(receipt["transactionHash"].to_0x_hex(), status=receipt["status"],
                             block_number=receipt["blockNumber"])
                return receipt
            now = time.monotonic()
            if now - started >= self._config.receipt_timeout:
                if receipt is None:
                    raise TimeExhausted(f"{family[-1].tx_hash} not mined after {self._config.receipt_timeout} s")
                raise TimeExhausted(f"{receipt['transactionHash'].to_0x_hex()} in block {receipt['blockNumber']}, "
                                    f"not {self._config.confirmations} blocks deep after "
                                    f"{self._config.receipt_timeout} s")
            if receipt is None and policy.replace_after is not None and now - last_sent >= policy.replace_after:
                last_sent = now
                try:
                    replacement = self.replace(family[-1], policy=policy, ledger=ledger, on_signed=on_signed)
                except ChainFeeAboveCapError as exc:
                    logger.warning("%s stays pending: %s", family[-1].tx_hash, exc)
                except ChainTransportError as exc:  # e.g. "nonce too low": one of the family was mined
                    logger.info("replacement of %s not sent: %s", family[-1].tx_hash, exc)
                else:
                    family.append(replacement)
                continue
            time.sleep(self._config.receipt_poll_interval)

    def _first_receipt(self, family: list[SignedTx]) -> TxReceipt | None:
        for tx in reversed(family):
            try:
                return self._w3.eth.get_transaction_receipt(tx.tx_hash)
            except TransactionNotFound:
                continue
        return None

    def final(self, receipt: TxReceipt) -> bool:
        """Whether ``receipt``'s block has ``config.confirmations`` blocks on top of it (always,
        with 0: no look-up)."""
        needed = self._config.confirmations
        return needed <= 0 or self._w3.eth.block_number - receipt["blockNumber"] >= needed

    def lookup(self, tx_hash: str) -> tuple[TxState, TxReceipt | None]:
        """Where ``tx_hash`` is now, without waiting: mined (deep enough, with its receipt),
        confirming (in a block not deep enough yet, with its receipt), pending, unknown."""
        with self.translated("lookup"):
            try:
                receipt = self._w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                pass
            else:
                return ("mined" if self.final(receipt) else "confirming"), receipt
            try:
                self._w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                return "unknown", None
            return "pending", None

    def receipt_waiting(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of ``tx_hash`` once ``config.confirmations`` blocks deep, waiting while
        the node holds it pending or it is not that deep yet (:class:`TimeExhausted` after
        ``config.receipt_timeout`` seconds); ``None`` when the node does not know it. Raises
        provider errors (the caller translates them)."""
        try:
            receipt = self._w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            try:
                self._w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                return None
            receipt = self._w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self._config.receipt_timeout, poll_latency=self._config.receipt_poll_interval)
        started = time.monotonic()
        current: TxReceipt | None = receipt
        while current is None or not self.final(current):
            if time.monotonic() - started >= self._config.receipt_timeout:
                raise TimeExhausted(f"{tx_hash} not {self._config.confirmations} blocks deep after "
                                    f"{self._config.receipt_timeout} s")
            time.sleep(self._config.receipt_poll_interval)
            try:  # again: a reorganisation may have moved it to another block, or out for now
                current = self._w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                current = None
        return current

    def pending_nonce(self) -> int:
        with self.translated("nonce"):
            return self._w3.eth.get_transaction_count(self.address, "pending")

    # --- Reverts ------------------------------------------------------------------------

    def revert_error(self, receipt: TxReceipt) -> ChainRevertError:
        """The error of a mined transaction that reverted, with its reason (a replay)."""
        tx_hash = receipt["transactionHash"].to_0x_hex()
        tx = self._w3.eth.get_transaction(tx_hash)
        sent = {"to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        return ChainRevertError(self.replay_reason(sent, receipt), tx_hash=tx_hash)

    def replay_reason(self, tx: dict[str, Any], receipt: TxReceipt) -> str:
        """Why a mined transaction reverted: replay it as a call on the state before its block."""
        call = {"from": self.address, "to": tx["to"], "data": tx["data"], "gas": tx["gas"], "value": 0}
        try:
            self._w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
        except REVERT_ERRORS as exc:
            return revert_reason(exc)
        except TRANSPORT_ERRORS as exc:
            return f"reason unavailable: the replay failed ({type(exc).__name__})"
        if receipt["gasUsed"] >= tx["gas"]:
            return f"out of gas (gas limit {tx['gas']})"
        return "reason unavailable: the replay did not revert"
