"""The embedded chain: an in-process EVM (eth-tester on py-evm) with the project's market.

On start the chain gets the AZR token, the ZAR stablecoin, a constant-product pair and its
router; a fresh treasury account funded with ether (for gas) and stablecoin; and a pool
seeded so deep that the largest allowed buy moves the price by ~0.05%. The same chain is
served to other processes by the local node (:mod:`tokens.chain.node`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.types import RPCEndpoint, RPCResponse

from tokens.chain.artifacts import load_artifact
from tokens.chain.client import ChainClient
from tokens.chain.config import ChainConfig

TOKEN_DECIMALS = 18
TREASURY_ETHER = 1_000
TREASURY_ZAR = 100_000_000
POOL_ZAR = 2_000_000_000
POOL_AZR = 4_000_000_000  # ~0.5 ZAR per AZR

# Fixed gas limits: no estimation (it is most of a transaction's cost on py-evm).
_DEPLOY_GAS = 2_000_000
_CALL_GAS = 200_000


class SerializedEthereumTesterProvider(EthereumTesterProvider):
    """The tester provider with every request serialized: the tester chain is not thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._request_lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._request_lock:
            return super().make_request(method, params)


@dataclass(frozen=True)
class EmbeddedChain:
    """A running embedded chain and what was deployed on it."""

    w3: Web3
    chain_id: int
    router: ChecksumAddress
    pair: ChecksumAddress
    azr_token: ChecksumAddress
    zar_token: ChecksumAddress
    treasury_address: ChecksumAddress
    treasury_private_key: str = field(repr=False)

    def client(self) -> ChainClient:
        """A client of this chain: its connection, contracts and treasury."""
        return ChainClient(self.config(), w3=self.w3)

    def config(self, **overrides: Any) -> ChainConfig:
        """A :class:`ChainConfig` naming this chain's contracts and treasury.

        Its ``provider_uri`` is ``None``: give the client ``w3=self.w3`` (as :meth:`client`
        does), or it would talk to the process-wide embedded chain.
        """
        values: dict[str, Any] = {
            "router_address": self.router,
            "azr_token_address": self.azr_token,
            "zar_token_address": self.zar_token,
            "pair_address": self.pair,
            "treasury_private_key": self.treasury_private_key,
        }
        values.update(overrides)
        return ChainConfig(**values)


def build_embedded_chain() -> EmbeddedChain:
    """Start a new in-process chain and deploy and seed the market on it (~0.3 s)."""
    w3 = Web3(SerializedEthereumTesterProvider())
    deployer = w3.eth.accounts[0]
    treasury = Account.create()

    azr = _deploy(w3, deployer, "Token", "AZR Token", "AZR", TOKEN_DECIMALS)
    zar = _deploy(w3, deployer, "Token", "ZAR Stablecoin", "ZAR", TOKEN_DECIMALS)
    pair = _deploy(w3, deployer, "Pair", zar.address, azr.address)
    router = _deploy(w3, deployer, "Router", pair.address)

    unit = 10**TOKEN_DECIMALS
    # Liquidity: mint both reserves straight into the pair, then let it sync its reserves.
    _transact(w3, deployer, zar.functions.mint(pair.address, POOL_ZAR * unit))
    _transact(w3, deployer, azr.functions.mint(pair.address, POOL_AZR * unit))
    _transact(w3, deployer, pair.functions.sync())
    _transact(w3, deployer, zar.functions.mint(treasury.address, TREASURY_ZAR * unit))
    _wait(
        w3,
        w3.eth.send_transaction(
            {
                "from": deployer,
                "to": treasury.address,
                "value": TREASURY_ETHER * unit,
                "gas": 21_000,
            }
        ),
    )
    return EmbeddedChain(
        w3=w3,
        chain_id=w3.eth.chain_id,
        router=router.address,
        pair=pair.address,
        azr_token=azr.address,
        zar_token=zar.address,
        treasury_address=treasury.address,
        treasury_private_key=treasury.key.to_0x_hex(),
    )


def _deploy(w3: Web3, deployer: ChecksumAddress, name: str, *args: Any) -> Contract:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = _wait(w3, factory.constructor(*args).transact({"from": deployer, "gas": _DEPLOY_GAS}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def _transact(w3: Web3, deployer: ChecksumAddress, function: Any) -> None:
    _wait(w3, function.transact({"from": deployer, "gas": _CALL_GAS}))


def _wait(w3: Web3, tx_hash: HexBytes) -> Any:
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # the tester mines every transaction
    if receipt["status"] != 1:
        raise RuntimeError(f"embedded chain setup transaction {tx_hash.to_0x_hex()} reverted")
    return receipt


_chain: EmbeddedChain | None = None
_chain_lock = threading.Lock()


def get_embedded_chain() -> EmbeddedChain:
    """The process-wide embedded chain, built on first use."""
    global _chain
    chain = _chain
    if chain is None:
        with _chain_lock:
            if _chain is None:
                _chain = build_embedded_chain()
            chain = _chain
    return chain


def reset_embedded_chain() -> None:
    """Forget the process-wide embedded chain; the next use builds a fresh one."""
    global _chain
    with _chain_lock:
        _chain = None
