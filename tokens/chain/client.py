"""The chain client: market quotes and ZAR -> AZR buys through a Uniswap V2 style router.

Amounts are whole tokens as ``Decimal``; on chain they are integers of base units, converted
exactly (see :mod:`tokens.chain.units`). Transactions are signed locally with the treasury key,
with fixed gas limits, by one writer per key in this process.

Retrying a buy safely: ``buy(on_signed=...)`` hands over the swap transaction's hash before
the transaction is sent. Keep every such hash; after a :class:`ChainTransportError`, look each
one up with :meth:`ChainClient.receipt_for` before buying again: it waits for a transaction the
node still holds, returns the receipt of a mined one, and returns ``None`` only for one the node
never got (which is then safe to buy again).
"""

from __future__ import annotations

import logging
import threading
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
from web3.types import BlockData, TxReceipt

from tokens.chain.artifacts import load_artifact
from tokens.chain.config import ChainConfig
from tokens.chain.errors import (
    ChainConfigError,
    ChainError,
    ChainRevertError,
    ChainTransportError,
)
from tokens.chain.units import from_base_units, to_base_units

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

# One nonce writer per key: all transactions of one address in this process go through
# its lock, which is held from reading the pending nonce until the receipt is in.
_nonce_locks: dict[str, threading.Lock] = {}
_nonce_locks_guard = threading.Lock()


def _nonce_lock(address: ChecksumAddress) -> threading.Lock:
    with _nonce_locks_guard:
        return _nonce_locks.setdefault(address, threading.Lock())


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
        self._nonce_lock = _nonce_lock(self._account.address)
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
    ) -> BuyReceipt:
        """Swap ``amount`` ZAR for at least ``min_tokens_out`` AZR, for the treasury.

        Approves the router for ``amount`` when its allowance is short, then swaps.
        ``on_signed(tx_hash)`` is called with the swap's hash before it is sent. With
        ``disposition="burn"`` the tokens received are then sent to the burn address.

        Raises :class:`ChainRevertError` when a transaction reverts (e.g. with
        ``INSUFFICIENT_OUTPUT_AMOUNT`` when the price moved beyond ``min_tokens_out``), and
        :class:`ChainTransportError` when the node cannot be reached or refuses a request.
        """
        if disposition not in DISPOSITIONS:
            raise ValueError(f"disposition must be one of {DISPOSITIONS}, not {disposition!r}")
        with self._nonce_lock, self._translated("buy"):
            amount_in = to_base_units(amount, self._token_decimals(self._zar))
            if amount_in == 0:
                raise ValueError("the amount to buy with must be positive")
            min_out = to_base_units(min_tokens_out, self._token_decimals(self._azr), round_up=True)
            block = self._w3.eth.get_block("latest")
            fees = self._fee_fields(block)
            allowance = self._zar.functions.allowance(self.treasury_address, self._router.address).call()
            if allowance < amount_in:
                self._transact(self._zar, "approve", [self._router.address, amount_in], fees)
            # The deadline follows the chain's clock too: the embedded chain's runs ahead.
            deadline = max(int(time.time()), block["timestamp"]) + self._config.deadline_seconds
            receipt = self._transact(
                self._router,
                "swapExactTokensForTokens",
                [amount_in, min_out, self._path, self.treasury_address, deadline],
                fees,
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
                result = self._burn_bought(result, fees)
            return result

    def _burn_bought(self, result: BuyReceipt, fees: dict[str, int]) -> BuyReceipt:
        units = to_base_units(result.tokens_received, self._token_decimals(self._azr))
        try:
            with self._translated("burn"):
                burn = self._transact(self._azr, "transfer", [self._burn_address, units], fees)
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

    def burn(self, amount: Decimal) -> str:
        """Send ``amount`` AZR from the treasury to the burn address; return the tx hash."""
        with self._nonce_lock, self._translated("burn"):
            units = to_base_units(amount, self._token_decimals(self._azr))
            fees = self._fee_fields(self._w3.eth.get_block("latest"))
            receipt = self._transact(self._azr, "transfer", [self._burn_address, units], fees)
            return receipt["transactionHash"].to_0x_hex()

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

    def _fee_fields(self, block: BlockData) -> dict[str, int]:
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:  # a chain without EIP-1559
            return {"gasPrice": self._w3.eth.gas_price}
        tip = self._w3.eth.max_priority_fee
        return {"maxFeePerGas": 2 * base_fee + tip, "maxPriorityFeePerGas": tip}

    def _transact(
        self,
        contract: Contract,
        function: str,
        args: list[Any],
        fees: dict[str, int],
        *,
        on_signed: Callable[[str], None] | None = None,
    ) -> TxReceipt:
        """Sign, send and wait for one transaction; the caller holds the nonce lock.

        The nonce is read from the node (pending) for every transaction, never cached, so a
        failed send leaves nothing stale behind.
        """
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": self._w3.eth.get_transaction_count(self.treasury_address, "pending"),
            "to": contract.address,
            "value": 0,
            "data": contract.encode_abi(function, args=args),
            "gas": self._config.gas_limit,
            **fees,
        }
        signed = self._account.sign_transaction(tx)
        tx_hash = signed.hash.to_0x_hex()
        if on_signed is not None:
            on_signed(tx_hash)
        self._w3.eth.send_raw_transaction(signed.raw_transaction)
        logger.info("sent %s.%s as %s (nonce %s)", contract.address, function, tx_hash, tx["nonce"])
        receipt = self._wait_for_receipt(tx_hash)
        if receipt["status"] != 1:
            reason = self._replay_reason(tx, receipt)
            logger.warning("%s.%s in %s reverted: %s", contract.address, function, tx_hash, reason)
            raise ChainRevertError(reason, tx_hash=tx_hash)
        return receipt

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
