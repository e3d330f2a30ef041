"""The chain client: market quotes and ZAR -> AZR buys through a Uniswap V2 style router.

Amounts are whole tokens as ``Decimal``; on chain they are integers of base units, converted
exactly (see :mod:`tokens.chain.units`). Transactions are type 2 (EIP-1559), signed locally with
the treasury key, with fixed gas limits. Their nonces come from a :class:`TxLedger`: the
process-local :class:`MemoryLedger` by default, the database's (``tokens.chain.txmanager``) for
the services, which records every signed transaction before it is broadcast. A transaction
pending longer than ``FeePolicy.replace_after`` seconds is replaced: same nonce, fees +12.5%,
never above the ``max_fee_per_gas`` cap. A buy's approve and swap run inside the ledger's
exclusive section for the key (two interleaved buys would overwrite each other's allowance).

Retrying a buy safely: ``buy(on_signed=...)`` hands over the swap transaction's hash before
the transaction is sent. Keep every such hash; after a :class:`ChainTransportError`, look each
one up with :meth:`ChainClient.receipt_for` before buying again: it waits for a transaction the
node still holds, returns the receipt of a mined one, and returns ``None`` only for one the node
never got (which is then safe to buy again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_typing import ChecksumAddress
from eth_utils.exceptions import ValidationError as EvmValidationError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    BadFunctionCallOutput,
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)
from web3.logs import DISCARD
from web3.types import TxReceipt

from tokens.chain.artifacts import load_artifact
from tokens.chain.config import ChainConfig
from tokens.chain.errors import (
    ChainConfigError,
    ChainError,
    ChainFeeAboveCapError,
    ChainRevertError,
    ChainTransportError,
)
from tokens.chain.tx import (
    GWEI,
    REPLACEMENT_BUMP,
    FeePolicy,
    Fees,
    MemoryLedger,
    SignedTx,
    TxLedger,
    TxPurpose,
    bumped,
    gwei_to_wei,
)
from tokens.chain.units import from_base_units, to_base_units

__all__ = ["GWEI", "REPLACEMENT_BUMP", "BuyReceipt", "ChainClient", "FeePolicy", "Fees", "MemoryLedger", "SignedTx",
           "TreasuryBalances", "TxLedger", "TxPurpose", "bumped", "gwei_to_wei"]

logger = logging.getLogger(__name__)

Disposition = Literal["hold", "burn"]
DISPOSITIONS: tuple[Disposition, ...] = ("hold", "burn")

# The ZAR amount whose quote gives the spot price: small against any real pool.
QUOTE_REFERENCE_AMOUNT = Decimal(1)
PRICE_DECIMAL_PLACES = 18
_PRICE_CONTEXT = Context(prec=80)

# A revert: the tester raises TransactionFailed, web3 raises ContractLogicError for a node.
_REVERT_ERRORS = (ContractLogicError, TransactionFailed)
# Transient: the request did not reach the node, timed out, or the node refused it before
# executing it (a refused transaction, e.g. a stale nonce, is safe to sign and send again).
_TRANSPORT_ERRORS = (
    OSError,  # includes every requests exception (connection, timeout, HTTP status)
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    BadResponseFormat,
    Web3RPCError,
    EvmValidationError,
    TesterValidationError,
)

# The node saw the transaction and refused it (it was not queued): its nonce is free again.
_REFUSED_ERRORS = (Web3RPCError, EvmValidationError, TesterValidationError)

_memory_ledger = MemoryLedger()


@dataclass(frozen=True)
class BuyReceipt:
    """A mined swap of ZAR for AZR, and the burn of the bought tokens when asked for.

    ``burn_error`` is set when the swap succeeded but burning its tokens failed: the tokens
    are then held by the treasury (``burn()`` can finish the job).
    """

    tx_hash: str
    block_number: int
    gas_used: int
    tokens_received: Decimal
    burn_tx_hash: str | None = None
    burn_error: str | None = None


@dataclass(frozen=True)
class PairState:
    """The pair's oracle state at one block, oriented base (ZAR) -> AZR, in base units.

    ``price_cumulative_last`` is the pair's cumulative price of AZR in the base token (its
    ``price1CumulativeLast`` when AZR is token1, else ``price0CumulativeLast``).
    """

    pair: ChecksumAddress
    block_number: int
    block_timestamp: int
    reserve_base: int
    reserve_azr: int
    price_cumulative_last: int
    block_timestamp_last: int
    base_decimals: int
    azr_decimals: int


@dataclass(frozen=True)
class TreasuryBalances:
    zar: Decimal
    azr: Decimal
    native: Decimal  # the chain's coin (ether), which pays for gas


class ChainClient:
    """Quotes and buys AZR for ZAR through a Uniswap V2 compatible router.

    Connects to ``config.provider_uri`` over HTTP, or uses the given ``w3`` (the config must
    then name the contracts and key). This module knows nothing of the embedded chain:
    :func:`tokens.chain.runtime.client_for` builds a client for it.
    """

    def __init__(self, config: ChainConfig, *, w3: Web3 | None = None) -> None:
        if w3 is None:
            if config.provider_uri is None:
                raise ChainConfigError(
                    "no provider URI and no connection: the embedded chain's client comes from "
                    "tokens.chain.runtime.client_for(config)"
                )
            w3 = Web3(
                Web3.HTTPProvider(
                    config.provider_uri,
                    request_kwargs={"timeout": config.request_timeout},
                    # No hidden retries: the buy-order service retries with its backoff.
                    exception_retry_configuration=None,
                )
            )
        self._config = config
        self._w3 = w3
        self._account = _treasury_account(config.treasury_private_key)
        token_abi = load_artifact("Token").abi
        self._router = w3.eth.contract(
            address=_address(config.router_address, "router"), abi=load_artifact("Router").abi
        )
        self._azr = w3.eth.contract(address=_address(config.azr_token_address, "AZR token"), abi=token_abi)
        self._zar = w3.eth.contract(address=_address(config.zar_token_address, "ZAR token"), abi=token_abi)
        self._burn_address = _address(config.burn_address, "burn")
        self._chain_id: int | None = None
        self._decimals: dict[ChecksumAddress, int] = {}
        self._pair: Contract | None = None

    def __repr__(self) -> str:
        return f"<ChainClient {self._endpoint()} treasury={self.treasury_address}>"

    @property
    def treasury_address(self) -> ChecksumAddress:
        return self._account.address

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with self._translated("chain id"):
                self._chain_id = self._w3.eth.chain_id
        return self._chain_id

    # --- Quotes -------------------------------------------------------------------------

    def quote_tokens_out(self, amount: Decimal) -> Decimal:
        """The AZR that ``amount`` ZAR buys now (the router's ``getAmountsOut``)."""
        with self._translated("quote"):
            amount_in = to_base_units(amount, self._token_decimals(self._zar))
            if amount_in == 0:
                raise ValueError("the amount to quote must be positive")
            amounts = self._router.functions.getAmountsOut(amount_in, self._path).call()
            return from_base_units(amounts[-1], self._token_decimals(self._azr))

    def quote_price(self) -> Decimal:
        """The market price in ZAR per AZR: the spot price, fee included, of a small buy."""
        tokens = self.quote_tokens_out(QUOTE_REFERENCE_AMOUNT)
        if tokens == 0:
            raise ChainError("the pool gives no AZR for the reference amount: no liquidity")
        return _PRICE_CONTEXT.divide(QUOTE_REFERENCE_AMOUNT, tokens).quantize(
            Decimal(1).scaleb(-PRICE_DECIMAL_PLACES),
            rounding=ROUND_HALF_EVEN,
            context=_PRICE_CONTEXT,
        )

    def pair_state(self) -> PairState:
        """The pair's reserves and cumulative price at the latest block (one block for all reads).

        The pair is ``config.pair_address``, else the router's ``pair()`` (the project's router);
        its interface is Uniswap V2's (``getReserves``, ``price0/1CumulativeLast``, ``token0``).
        """
        with self._translated("pair state"):
            pair = self._pair_contract()
            block = self._w3.eth.get_block("latest")
            at = block["number"]
            reserve0, reserve1, timestamp_last = pair.functions.getReserves().call(block_identifier=at)
            azr_is_token1 = Web3.to_checksum_address(pair.functions.token0().call(block_identifier=at)) \
                != self._azr.address
            cumulative = (pair.functions.price1CumulativeLast() if azr_is_token1
                          else pair.functions.price0CumulativeLast()).call(block_identifier=at)
            return PairState(
                pair=pair.address,
                block_number=at,
                block_timestamp=block["timestamp"],
                reserve_base=reserve0 if azr_is_token1 else reserve1,
                reserve_azr=reserve1 if azr_is_token1 else reserve0,
                price_cumulative_last=cumulative,
                block_timestamp_last=timestamp_last,
                base_decimals=self._token_decimals(self._zar),
                azr_decimals=self._token_decimals(self._azr),
            )

    def _pair_contract(self) -> Contract:
        if self._pair is None:
            address = self._config.pair_address or self._router.functions.pair().call()
            self._pair = self._w3.eth.contract(address=_address(address, "pair"), abi=load_artifact("Pair").abi)
        return self._pair

    # --- Buying -------------------------------------------------------------------------

    def buy(
        self,
        *,
        amount: Decimal,
        min_tokens_out: Decimal,
        disposition: Disposition = "hold",
        on_signed: Callable[[str], None] | None = None,
        deadline: int | None = None,
        policy: FeePolicy | None = None,
        ledger: TxLedger | None = None,
    ) -> BuyReceipt:
        """Swap ``amount`` ZAR for at least ``min_tokens_out`` AZR, for the treasury.

        Approves the router for ``amount`` when its allowance is short, then swaps.
        ``on_signed(tx_hash)`` is called with the swap's hash (and a replacement's) before it is
        sent. With ``disposition="burn"`` the tokens received are then sent to the burn address.
        ``deadline`` is the swap's deadline (Unix time); by default the wall clock now +
        ``config.deadline_seconds``. Fees follow ``policy`` (see :meth:`suggest_fees`).

        Raises :class:`ChainFeeAboveCapError` before signing anything when the fee needed is above
        the cap; :class:`ChainRevertError` when a transaction reverts (e.g. with
        ``INSUFFICIENT_OUTPUT_AMOUNT`` when the price moved beyond ``min_tokens_out``, or
        ``EXPIRED`` past the deadline), and :class:`ChainTransportError` when the node cannot be
        reached or refuses a request.
        """
        if disposition not in DISPOSITIONS:
            raise ValueError(f"disposition must be one of {DISPOSITIONS}, not {disposition!r}")
        policy = policy or FeePolicy()
        ledger = ledger or _memory_ledger
        with self._translated("buy"):
            amount_in = to_base_units(amount, self._token_decimals(self._zar))
            if amount_in == 0:
                raise ValueError("the amount to buy with must be positive")
            min_out = to_base_units(min_tokens_out, self._token_decimals(self._azr), round_up=True)
            fees = self.suggest_fees(policy)
            # The wall clock, not the chain's: a swap held back by a node or a builder expires.
            if deadline is None:
                deadline = int(time.time()) + self._config.deadline_seconds
            with ledger.exclusive(sender=self.treasury_address, chain_id=self.chain_id):
                allowance = self._zar.functions.allowance(self.treasury_address, self._router.address).call()
                if allowance < amount_in:
                    self._transact(self._zar, "approve", [self._router.address, amount_in], fees,
                                   ledger=ledger, policy=policy, purpose="approve")
                receipt = self._transact(
                    self._router,
                    "swapExactTokensForTokens",
                    [amount_in, min_out, self._path, self.treasury_address, deadline],
                    fees,
                    ledger=ledger,
                    policy=policy,
                    purpose="swap",
                    on_signed=on_signed,
                )
            result = self._buy_receipt(receipt)
            logger.info(
                "bought %s AZR for %s ZAR in %s (block %s, gas %s)",
                result.tokens_received,
                amount,
                result.tx_hash,
                result.block_number,
                result.gas_used,
            )
            if disposition == "burn":
                result = self._burn_bought(result, fees, ledger=ledger, policy=policy)
            return result

    def _burn_bought(self, result: BuyReceipt, fees: Fees, *, ledger: TxLedger, policy: FeePolicy) -> BuyReceipt:
        units = to_base_units(result.tokens_received, self._token_decimals(self._azr))
        try:
            with self._translated("burn"):
                burn = self._transact(self._azr, "transfer", [self._burn_address, units], fees,
                                      ledger=ledger, policy=policy, purpose="burn")
        except ChainError as exc:
            logger.error(
                "bought %s AZR in %s but could not burn them, the treasury holds them: %s",
                result.tokens_received,
                result.tx_hash,
                exc,
            )
            return replace(result, burn_error=str(exc))
        burn_tx_hash = burn["transactionHash"].to_0x_hex()
        logger.info("burned %s AZR in %s", result.tokens_received, burn_tx_hash)
        return replace(result, burn_tx_hash=burn_tx_hash)

    def burn(self, amount: Decimal, *, policy: FeePolicy | None = None, ledger: TxLedger | None = None) -> str:
        """Send ``amount`` AZR from the treasury to the burn address; return the tx hash."""
        policy = policy or FeePolicy()
        with self._translated("burn"):
            units = to_base_units(amount, self._token_decimals(self._azr))
            receipt = self._transact(self._azr, "transfer", [self._burn_address, units], self.suggest_fees(policy),
                                     ledger=ledger or _memory_ledger, policy=policy, purpose="burn")
            return receipt["transactionHash"].to_0x_hex()

    # --- Fees, replacement, lookups -----------------------------------------------------

    def suggest_fees(self, policy: FeePolicy | None = None) -> Fees:
        """Type-2 fees for a transaction now: maxFeePerGas = 2 x base fee + tip (room for the base
        fee to rise), lowered to the cap; :class:`ChainFeeAboveCapError` when even base fee + tip
        (what the next block needs) is above the cap -- defer, don't overpay."""
        policy = policy or FeePolicy()
        with self._translated("fees"):
            base_fee = self._w3.eth.get_block("latest").get("baseFeePerGas")
            if base_fee is None:
                raise ChainError("the chain has no EIP-1559 base fee (pre-London): not supported")
            tip = policy.priority_fee_per_gas
            if tip is None:
                tip = self._w3.eth.max_priority_fee
        required = base_fee + tip
        cap = policy.max_fee_per_gas
        if cap is not None and required > cap:
            raise ChainFeeAboveCapError(required=required, cap=cap, base_fee=base_fee)
        max_fee = 2 * base_fee + tip
        if cap is not None:
            max_fee = min(max_fee, cap)
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip, base_fee=base_fee)

    def replace(self, tx: SignedTx, *, policy: FeePolicy | None = None, ledger: TxLedger | None = None,
                on_signed: Callable[[str], None] | None = None) -> SignedTx:
        """Sign ``tx`` again with the same nonce and both fees raised by >= 12.5% (and to at least
        what the chain needs now), keep it in the ledger, broadcast it.

        :class:`ChainFeeAboveCapError` (nothing signed) when the bumped fee is above the cap; a
        refused broadcast (e.g. "nonce too low": the original was mined meanwhile) is recorded by
        the ledger and raised as :class:`ChainTransportError`.
        """
        policy = policy or FeePolicy()
        ledger = ledger or _memory_ledger
        with self._translated("replace"):
            base_fee = self._w3.eth.get_block("latest").get("baseFeePerGas") or 0
            tip = max(bumped(tx.max_priority_fee_per_gas), policy.priority_fee_per_gas or 0)
            max_fee = max(bumped(tx.max_fee_per_gas), base_fee + tip)
            cap = policy.max_fee_per_gas
            if cap is not None and max_fee > cap:
                raise ChainFeeAboveCapError(required=max_fee, cap=cap, what=f"replacement of {tx.tx_hash}")
            replacement = self._sign(tx.nonce, {"to": tx.to, "data": tx.data, "gas": tx.gas, "value": tx.value},
                                     Fees(max_fee, tip, base_fee))
            ledger.record_replacement(tx, replacement)
            if on_signed is not None:
                on_signed(replacement.tx_hash)
            self._broadcast(replacement, ledger)
            logger.warning("replaced %s (nonce %s, pending too long) by %s: max fee %s -> %s wei, tip %s -> %s",
                           tx.tx_hash, tx.nonce, replacement.tx_hash, tx.max_fee_per_gas, max_fee,
                           tx.max_priority_fee_per_gas, tip)
            return replacement

    def rebroadcast(self, raw: bytes, tx_hash: str) -> None:
        """Send a transaction signed earlier again (a crash between recording and broadcasting)."""
        with self._translated("rebroadcast"):
            try:
                self._w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:
                if "already known" not in exc.message.lower():
                    raise

    def lookup(self, tx_hash: str) -> tuple[Literal["mined", "pending", "unknown"], TxReceipt | None]:
        """Where ``tx_hash`` is now, without waiting: mined (with its receipt), pending, unknown."""
        with self._translated("lookup"):
            try:
                return "mined", self._w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                pass
            try:
                self._w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                return "unknown", None
            return "pending", None

    def buy_outcome(self, receipt: TxReceipt) -> BuyReceipt:
        """The :class:`BuyReceipt` of a mined swap; :class:`ChainRevertError` when it reverted."""
        with self._translated("receipt"):
            if receipt["status"] != 1:
                tx_hash = receipt["transactionHash"].to_0x_hex()
                tx = self._w3.eth.get_transaction(tx_hash)
                sent = {"to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
                raise ChainRevertError(self._replay_reason(sent, receipt), tx_hash=tx_hash)
            return self._buy_receipt(receipt)

    def pending_nonce(self) -> int:
        with self._translated("nonce"):
            return self._w3.eth.get_transaction_count(self.treasury_address, "pending")

    def receipt_for(self, tx_hash: str) -> BuyReceipt | None:
        """The outcome of a swap sent earlier, for retrying a buy without paying twice.

        Returns its :class:`BuyReceipt` once mined (waiting while the node holds it pending),
        ``None`` when the node does not know the transaction, and raises
        :class:`ChainRevertError` when it reverted.
        """
        with self._translated("receipt lookup"):
            try:
                receipt = self._w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                try:
                    self._w3.eth.get_transaction(tx_hash)
                except TransactionNotFound:
                    return None
                receipt = self._wait_for_receipt(tx_hash)
            if receipt["status"] != 1:
                tx = self._w3.eth.get_transaction(tx_hash)
                sent = {"to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
                raise ChainRevertError(self._replay_reason(sent, receipt), tx_hash=tx_hash)
            return self._buy_receipt(receipt)

    # --- Ops ----------------------------------------------------------------------------

    def balances(self) -> TreasuryBalances:
        """The treasury's ZAR, AZR and gas-coin balances."""
        with self._translated("balances"):
            address = self.treasury_address
            return TreasuryBalances(
                zar=from_base_units(self._zar.functions.balanceOf(address).call(), self._token_decimals(self._zar)),
                azr=from_base_units(self._azr.functions.balanceOf(address).call(), self._token_decimals(self._azr)),
                native=from_base_units(self._w3.eth.get_balance(address), 18),
            )

    # --- Internals ----------------------------------------------------------------------

    @property
    def _path(self) -> list[ChecksumAddress]:
        return [self._zar.address, self._azr.address]

    def _token_decimals(self, token: Contract) -> int:
        decimals = self._decimals.get(token.address)
        if decimals is None:
            decimals = self._decimals[token.address] = token.functions.decimals().call()
        return decimals

    def _transact(
        self,
        contract: Contract,
        function: str,
        args: list[Any],
        fees: Fees,
        *,
        ledger: TxLedger,
        policy: FeePolicy,
        purpose: TxPurpose,
        on_signed: Callable[[str], None] | None = None,
    ) -> TxReceipt:
        """Sign (the ledger gives the nonce and keeps the signed transaction), send, and wait for
        one transaction -- replacing it when it stays pending longer than ``policy.replace_after``.

        The node's pending nonce is only a floor: the ledger knows the nonces taken by
        transactions still in flight, which a node may not count yet.
        """
        call = {"to": contract.address, "data": contract.encode_abi(function, args=args), "gas": self._config.gas_limit,
                "value": 0}
        signed = ledger.record(sender=self.treasury_address, chain_id=self.chain_id,
                               pending_nonce=self.pending_nonce(),
                               sign=lambda nonce: self._sign(nonce, call, fees), purpose=purpose)
        if on_signed is not None:
            on_signed(signed.tx_hash)
        self._broadcast(signed, ledger)
        logger.info("sent %s.%s as %s (nonce %s)", contract.address, function, signed.tx_hash, signed.nonce)
        receipt = self._await([signed], ledger=ledger, policy=policy, on_signed=on_signed)
        if receipt["status"] != 1:
            reason = self._replay_reason(call, receipt)
            tx_hash = receipt["transactionHash"].to_0x_hex()
            logger.warning("%s.%s in %s reverted: %s", contract.address, function, tx_hash, reason)
            raise ChainRevertError(reason, tx_hash=tx_hash)
        return receipt

    def _sign(self, nonce: int, call: dict[str, Any], fees: Fees) -> SignedTx:
        tx = {"type": 2, "chainId": self.chain_id, "nonce": nonce, **call, **fees.fields()}
        signed = self._account.sign_transaction(tx)
        return SignedTx(
            tx_hash=signed.hash.to_0x_hex(), raw=bytes(signed.raw_transaction), sender=self.treasury_address,
            chain_id=self.chain_id, nonce=nonce, to=call["to"], data=call["data"], gas=call["gas"],
            value=call["value"], max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas)

    def _broadcast(self, tx: SignedTx, ledger: TxLedger) -> None:
        """Send ``tx``; tell the ledger whether the node took it. A transport failure (no answer)
        leaves it as signed: the node may have it, a later look-up or rebroadcast settles that."""
        try:
            self._w3.eth.send_raw_transaction(tx.raw)
        except _REFUSED_ERRORS as exc:
            message = exc.message if isinstance(exc, Web3RPCError) else str(exc)
            if "already known" not in message.lower():
                ledger.send_failed(tx, self._scrub(message))
                raise
        except _TRANSPORT_ERRORS:
            # No answer: when the node can tell, a transaction it does not hold frees its nonce
            # (sending the same nonce again is safe: of one nonce's transactions one is mined).
            try:
                self._w3.eth.get_transaction(tx.tx_hash)
            except TransactionNotFound:
                ledger.send_failed(tx, "the node did not receive it")
            except _TRANSPORT_ERRORS:
                pass
            raise
        ledger.sent(tx)

    def _await(self, family: list[SignedTx], *, ledger: TxLedger, policy: FeePolicy,
               on_signed: Callable[[str], None] | None = None) -> TxReceipt:
        """The receipt of whichever of ``family`` (one nonce) is mined; replaces the newest when it
        stays pending longer than ``policy.replace_after``; :class:`TimeExhausted` after
        ``config.receipt_timeout`` seconds."""
        started = last_sent = time.monotonic()
        while True:
            for tx in reversed(family):
                try:
                    receipt = self._w3.eth.get_transaction_receipt(tx.tx_hash)
                except TransactionNotFound:
                    continue
                ledger.mined(tx.tx_hash, status=receipt["status"], block_number=receipt["blockNumber"])
                return receipt
            now = time.monotonic()
            if now - started >= self._config.receipt_timeout:
                raise TimeExhausted(f"{family[-1].tx_hash} not mined after {self._config.receipt_timeout} s")
            if policy.replace_after is not None and now - last_sent >= policy.replace_after:
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

    def _wait_for_receipt(self, tx_hash: str) -> TxReceipt:
        return self._w3.eth.wait_for_transaction_receipt(
            tx_hash,
            timeout=self._config.receipt_timeout,
            poll_latency=self._config.receipt_poll_interval,
        )

    def _replay_reason(self, tx: dict[str, Any], receipt: TxReceipt) -> str:
        """Why a mined transaction reverted: replay it as a call on the state before its block."""
        call = {
            "from": self.treasury_address,
            "to": tx["to"],
            "data": tx["data"],
            "gas": tx["gas"],
            "value": 0,
        }
        try:
            self._w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
        except _REVERT_ERRORS as exc:
            return _revert_reason(exc)
        except _TRANSPORT_ERRORS as exc:
            return f"reason unavailable: the replay failed ({type(exc).__name__})"
        if receipt["gasUsed"] >= tx["gas"]:
            return f"out of gas (gas limit {tx['gas']})"
        return "reason unavailable: the replay did not revert"

    def _buy_receipt(self, receipt: TxReceipt) -> BuyReceipt:
        """The swap's outcome, with the AZR its ``Transfer`` events moved to the treasury.

        Both tokens share one ABI, so each event's log address is checked, not only its
        signature.
        """
        received = sum(
            event["args"]["value"]
            for event in self._azr.events.Transfer().process_receipt(receipt, errors=DISCARD)
            if Web3.to_checksum_address(event["address"]) == self._azr.address
            and Web3.to_checksum_address(event["args"]["receiver"]) == self.treasury_address
        )
        tx_hash = receipt["transactionHash"].to_0x_hex()
        if received == 0:
            raise ChainError(f"transaction {tx_hash} moved no AZR to the treasury")
        return BuyReceipt(
            tx_hash=tx_hash,
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            tokens_received=from_base_units(received, self._token_decimals(self._azr)),
        )

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn provider and EVM exceptions into :class:`ChainError` subclasses."""
        try:
            yield
        except ChainError:
            raise
        except _REVERT_ERRORS as exc:
            raise ChainRevertError(_revert_reason(exc)) from exc
        except BadFunctionCallOutput as exc:
            raise ChainError(f"{action}: a contract returned nothing: is the address right?") from exc
        except Web3RPCError as exc:
            if "revert" in exc.message.lower():
                raise ChainRevertError(_revert_reason(exc)) from exc
            raise ChainTransportError(f"{action}: the node refused the request: {self._scrub(exc.message)}") from None
        except _TRANSPORT_ERRORS as exc:
            raise ChainTransportError(f"{action}: {type(exc).__name__}: {self._scrub(str(exc))}") from None

    def _endpoint(self) -> str:
        uri = self._config.provider_uri
        if uri is None:
            return "embedded"
        parts = urlsplit(uri)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def _scrub(self, text: str) -> str:
        """``text`` without the secret parts a provider URI may hold (API keys, credentials)."""
        uri = self._config.provider_uri
        if uri is None:
            return text
        parts = urlsplit(uri)
        for secret in (parts.path, parts.query, parts.username, parts.password):
            if secret and secret != "/":
                text = text.replace(secret, "***")
        return text


def _revert_reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or (str(exc.args[0]) if exc.args else "")
    for prefix in ("execution reverted: ", "execution reverted"):
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return message.strip() or "reverted without a reason"


def _treasury_account(private_key: str | None) -> LocalAccount:
    if not private_key:
        raise ChainConfigError("the treasury private key is not configured")
    try:
        return Account.from_key(private_key)
    except Exception:
        # Never let the key reach a message or a traceback.
        raise ChainConfigError("the treasury private key is malformed") from None


def _address(value: str | None, label: str) -> ChecksumAddress:
    if not value or not Web3.is_address(value):
        raise ChainConfigError(f"the {label} address is missing or malformed: {value!r}")
    return Web3.to_checksum_address(value)
