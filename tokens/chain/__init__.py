"""The chain layer of the tokens app: contracts, embedded chain, chain client, local node, and
the process's runtime (client factory, lock, retries -- :mod:`tokens.chain.runtime`).

The client (:mod:`tokens.chain.client`, contract calls) and the transaction layer it uses
(:mod:`tokens.chain.sending`: fees, nonces, signing, broadcast, replacement; :mod:`tokens.chain.rpc`:
error translation) know nothing of the embedded chain; the embedded chain builds clients; the
runtime chooses between the embedded chain and a node.

Pure Python, no Django models (except :mod:`tokens.chain.txmanager`, the database's nonce ledger,
which is not imported here); Django settings are read by ``config_from_settings`` only.
"""

from tokens.chain.client import BuyReceipt, ChainClient, Disposition, PairState, TreasuryBalances
from tokens.chain.config import ChainConfig, config_from_settings
from tokens.chain.embedded import get_embedded_chain, reset_embedded_chain
from tokens.chain.errors import (
    ChainConfigError,
    ChainError,
    ChainRevertError,
    ChainTransportError,
)
from tokens.chain.runtime import (
    NodeFollowingClient,
    chain_client,
    chain_client_set,
    chain_lock,
    client_for,
    client_from_settings,
    with_retries,
)

__all__ = [
    "BuyReceipt",
    "ChainClient",
    "ChainConfig",
    "ChainConfigError",
    "ChainError",
    "ChainRevertError",
    "ChainTransportError",
    "Disposition",
    "NodeFollowingClient",
    "PairState",
    "TreasuryBalances",
    "chain_client",
    "chain_client_set",
    "chain_lock",
    "client_for",
    "client_from_settings",
    "config_from_settings",
    "get_embedded_chain",
    "reset_embedded_chain",
    "with_retries",
]
