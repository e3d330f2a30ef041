"""The chain layer of the tokens app: contracts, embedded chain, chain client, local node.

Pure Python, no Django models; Django settings are read by ``config_from_settings`` only.
"""

from tokens.chain.client import (
    BuyReceipt,
    ChainClient,
    Disposition,
    NodeFollowingClient,
    TreasuryBalances,
    client_from_settings,
)
from tokens.chain.config import ChainConfig, config_from_settings
from tokens.chain.embedded import get_embedded_chain, reset_embedded_chain
from tokens.chain.errors import (
    ChainConfigError,
    ChainError,
    ChainRevertError,
    ChainTransportError,
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
    "TreasuryBalances",
    "client_from_settings",
    "config_from_settings",
    "get_embedded_chain",
    "reset_embedded_chain",
]
