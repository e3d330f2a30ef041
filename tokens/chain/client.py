"""The chain client: market quotes and ZAR -> AZR buys through a Uniswap V2 style router.

Amounts are whole tokens as ``Decimal``; on chain they are integers of base units, converted
exactly (see :mod:`tokens.chain.units`). This module builds the contract calls (quote, pair
state, balances, approve + swap, burn) and reads their receipts; the transactions themselves
are built, signed, sent, replaced and awaited by :class:`tokens.chain.sending.TransactionSender`
(EIP-1559 fees under a cap, nonces from a :class:`TxLedger`). A buy's approve and swap run
inside the ledger's exclusive section for the key (two interleaved buys would overwrite each
other's allowance).

Retrying a buy safely: ``buy(on_signed=...)`` hands over the swap transaction's hash before
the transaction is sent, and the ledger keeps the signed bytes. After a
:class:`ChainTransportError`, buy again only when the node refused that swap (the ledger says
``send_failed``): a node that no longer knows a swap it took (evicted from its pool, a
reorganised block) does not mean it cannot be mined. The services settle such a swap through
its own nonce (:func:`tokens.chain.txmanager.swap_outcome`: the mined one, a replacement, a
cancellation, or the same bytes sent again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Literal

from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from tokens.chain.artifacts import load_artifact
from tokens.chain.config import ChainConfig
from tokens.chain.errors import ChainError
from tokens.chain.rpc import checksum_address as _address
from tokens.chain.rpc import connect, endpoint
from tokens.chain.rpc import treasury_account as _treasury_account
from tokens.chain.sending import TransactionSender, TxState, memory_ledger
from tokens.chain.tx import (
    GWEI,
    REPLACEMENT_BUMP,
    FeePolicy,
    FeeQuote,
    Fees,
    MemoryLedger,
    SignedTx,
    TxLedger,
    TxPurpose,
    bumped,
    gwei_to_wei,
)
from tokens.chain.units import from_base_units, to_base_units

__all__ = ["GWEI", "REPLACEMENT_BUMP", "BuyReceipt", "ChainClient", "FeePolicy", "FeeQuote", "Fees", "MemoryLedger",
           "SignedTx", "TransactionSender", "TreasuryBalances", "TxLedger", "TxPurpose", "bumped", "gwei_to_wei"]

logger = logging.getLogger(__name__)

Disposition = Literal["hold", "burn"]
DISPOSITIONS: tuple[Disposition, ...] = ("hold", "burn")

# The ZAR amount whose quote gives the spot price: small against any real pool.
QUOTE_REFERENCE_AMOUNT = Decimal(1)
PRICE_DECIMAL_PLACES = 18
_PRICE_CONTEXT = Context(prec=80)


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
            w3 = connect(config)
        self._config = config
        self._w3 = w3
        self._sender = TransactionSender(w3, _treasury_account(config.treasury_private_key), config)
        token_abi = load_artifact("Token").abi
        self._router = w3.eth.contract(
            address=_address(config.router_address, "router"), abi=load_artifact("Router").abi
        )
        self._azr = w3.eth.contract(address=_address(config.azr_token_address, "AZR token"), abi=token_abi)
        self._zar = w3.eth.contract(address=_address(config.zar_token_address, "ZAR token"), abi=token_abi)
        self._burn_address = _address(config.burn_address, "burn")
        self._decimals: dict[ChecksumAddress, int] = {}
        self._pair: Contract | None = None

    def __repr__(self) -> str:
        return f"<ChainClient {endpoint(self._config.provider_uri)} treasury={self.treasury_address}>"

    @property
    def treasury_address(self) -> ChecksumAddress:
        return self._sender.address

    @property
    def chain_id(self) -> int:
        return self._sender.chain_id

    @property
    def confirmations(self) -> int:
        """Blocks on top of a transaction's block before it counts as mined (``CHAIN_CONFIRMATIONS``)."""
        return self._config.confirmations

    @property
    def sender(self) -> TransactionSender:
        """The transaction layer signing for the treasury on this client's connection."""
        return self._sender

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
        ledger = ledger or memory_ledger
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
                                     ledger=ledger or memory_ledger, policy=policy, purpose="burn")
            return receipt["transactionHash"].to_0x_hex()

    # --- The transaction layer (see tokens.chain.sending) -------------------------------

    def suggest_fees(self, policy: FeePolicy | None = None) -> Fees:
        """Type-2 fees now under ``policy``'s cap (:meth:`TransactionSender.suggest_fees`)."""
        return self._sender.suggest_fees(policy)

    def fee_quote(self, policy: FeePolicy | None = None) -> FeeQuote:
        """The fee figures now, even above the cap (:meth:`TransactionSender.fee_quote`)."""
        return self._sender.fee_quote(policy)

    def replace(self, tx: SignedTx, *, policy: FeePolicy | None = None, ledger: TxLedger | None = None,
                on_signed: Callable[[str], None] | None = None) -> SignedTx:
        """Replace a pending ``tx``: same nonce, bumped fees (:meth:`TransactionSender.replace`)."""
        return self._sender.replace(tx, policy=policy, ledger=ledger, on_signed=on_signed)

    def cancel(self, tx: SignedTx, *, policy: FeePolicy | None = None, ledger: TxLedger | None = None) -> SignedTx:
        """Take a pending ``tx``'s nonce with a zero-value transfer to the treasury itself, at
        bumped fees (:meth:`TransactionSender.cancel`)."""
        return self._sender.cancel(tx, policy=policy, ledger=ledger)

    def swap_deadline(self, data: str) -> int | None:
        """The deadline (Unix time) a swap's call data carries; ``None`` when ``data`` is not a
        call of the router's swap."""
        try:
            function, args = self._router.decode_function_input(data)
        except (ValueError, DecodingError):  # not a function of the router, or not its arguments
            return None
        return int(args["deadline"]) if function.fn_name == "swapExactTokensForTokens" else None

    def rebroadcast(self, raw: bytes, tx_hash: str) -> None:
        """Send a transaction signed earlier again (a crash between recording and broadcasting)."""
        self._sender.rebroadcast(raw, tx_hash)

    def lookup(self, tx_hash: str) -> tuple[TxState, TxReceipt | None]:
        """Where ``tx_hash`` is now, without waiting: mined (deep enough) or confirming, with its
        receipt; pending; unknown."""
        return self._sender.lookup(tx_hash)

    def pending_nonce(self) -> int:
        return self._sender.pending_nonce()

    # --- Swap receipts ------------------------------------------------------------------

    def buy_outcome(self, receipt: TxReceipt) -> BuyReceipt:
        """The :class:`BuyReceipt` of a mined swap; :class:`ChainRevertError` when it reverted."""
        with self._translated("receipt"):
            if receipt["status"] != 1:
                raise self._sender.revert_error(receipt)
            return self._buy_receipt(receipt)

    def receipt_for(self, tx_hash: str) -> BuyReceipt | None:
        """The outcome of a swap sent earlier (an order recorded with a hash only).

        Returns its :class:`BuyReceipt` once mined and ``confirmations`` blocks deep (waiting
        while the node holds it pending or it is not that deep yet),
        ``None`` when the node does not know the transaction, and raises
        :class:`ChainRevertError` when it reverted.
        """
        with self._translated("receipt lookup"):
            receipt = self._sender.receipt_waiting(tx_hash)
            if receipt is None:
                return None
            if receipt["status"] != 1:
                raise self._sender.revert_error(receipt)
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

    def _transact(self, contract: Contract, function: str, args: list[Any], fees: Fees, *, ledger: TxLedger,
                  policy: FeePolicy, purpose: TxPurpose, on_signed: Callable[[str], None] | None = None) -> TxReceipt:
        """One contract call as a transaction of the treasury, mined (see :meth:`TransactionSender.transact`)."""
        call = {"to": contract.address, "data": contract.encode_abi(function, args=args), "gas": self._config.gas_limit,
                "value": 0}
        return self._sender.transact(call, fees, ledger=ledger, policy=policy, purpose=purpose,
                                     label=f"{contract.address}.{function}", on_signed=on_signed)

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

    def _translated(self, action: str) -> AbstractContextManager[None]:
        """Turn provider and EVM exceptions into :class:`ChainError` subclasses."""
        return self._sender.translated(action)
