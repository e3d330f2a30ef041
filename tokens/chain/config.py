"""Chain configuration: from Django settings, and the info file of the local node."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokens.chain.errors import ChainConfigError

DEFAULT_BURN_ADDRESS = "0x000000000000000000000000000000000000dEaD"
# A Uniswap V2 swap costs ~110k gas, an ERC-20 approve or transfer ~50k: this caps each
# transaction of a buy without estimating gas (estimation is most of a transaction's cost
# on the embedded chain, and a node's estimate can be wrong when state changes under it).
DEFAULT_GAS_LIMIT = 300_000

# Keys of the info file written by the local node (``python -m tokens.chain.node``).
CHAIN_INFO_KEYS = (
    "provider_uri",
    "chain_id",
    "router",
    "azr_token",
    "zar_token",
    "pair",
    "treasury_private_key",
    "treasury_address",
)


@dataclass(frozen=True)
class ChainConfig:
    """Where the chain is and which contracts and key to use.

    ``provider_uri=None`` selects the embedded chain of this process; the addresses and key
    left ``None`` then come from its deployment. The private key is left out of ``repr``.
    """

    provider_uri: str | None = None
    router_address: str | None = None
    azr_token_address: str | None = None
    zar_token_address: str | None = None
    treasury_private_key: str | None = field(default=None, repr=False)
    # The V2 pair the price oracle reads; None: the router's ``pair()`` (the project's router).
    pair_address: str | None = None
    burn_address: str = DEFAULT_BURN_ADDRESS
    gas_limit: int = DEFAULT_GAS_LIMIT
    request_timeout: float = 30.0
    receipt_timeout: float = 120.0
    receipt_poll_interval: float = 0.5
    deadline_seconds: int = 600
    # Blocks mined on top of a transaction's block before it is recorded as mined (0: its first
    # receipt). A receipt less deep can still be reorganised away on a public chain.
    confirmations: int = 0


# Setting -> (ChainConfig field, info-file key): what the info file fills in when the setting is empty.
_FROM_INFO_FILE = {
    "CHAIN_ROUTER_ADDRESS": ("router_address", "router"),
    "CHAIN_AZR_TOKEN_ADDRESS": ("azr_token_address", "azr_token"),
    "CHAIN_ZAR_TOKEN_ADDRESS": ("zar_token_address", "zar_token"),
    "CHAIN_TREASURY_PRIVATE_KEY": ("treasury_private_key", "treasury_private_key"),
}


def config_from_settings(settings: Any = None) -> ChainConfig:
    """The chain configuration from Django settings (or any object with those attributes).

    ``WEB3_PROVIDER_URI`` unset or empty: the embedded chain. Set: that node, with the
    router, token and stablecoin addresses and the treasury key from ``CHAIN_*`` settings;
    any of them left empty is read from the info file ``CHAIN_INFO_FILE`` that the local
    node writes.
    """
    if settings is None:
        from django.conf import settings

    provider_uri = _setting(settings, "WEB3_PROVIDER_URI")
    burn_address = _setting(settings, "CHAIN_BURN_ADDRESS") or DEFAULT_BURN_ADDRESS
    gas_limit = int(getattr(settings, "CHAIN_GAS_LIMIT", None) or DEFAULT_GAS_LIMIT)
    confirmations = _confirmations(settings)
    if provider_uri is None:
        return ChainConfig(burn_address=burn_address, gas_limit=gas_limit, confirmations=confirmations)

    values = {field: _setting(settings, name) for name, (field, _) in _FROM_INFO_FILE.items()}
    info_file = chain_info_path(settings)
    if info_file is not None:
        info = read_chain_info(info_file)
        from_info = {field: info[key] for field, key in _FROM_INFO_FILE.values()}
        values = {field: value or from_info[field] for field, value in values.items()}
    return ChainConfig(provider_uri=provider_uri, burn_address=burn_address, gas_limit=gas_limit,
                       confirmations=confirmations, pair_address=_setting(settings, "CHAIN_PAIR_ADDRESS"),
                       **values)


MAX_CONFIRMATIONS = 1000


def _confirmations(settings: Any) -> int:
    """``CHAIN_CONFIRMATIONS``: a whole number of blocks, 0 to :data:`MAX_CONFIRMATIONS`."""
    value = _setting(settings, "CHAIN_CONFIRMATIONS")
    if value is None:
        return 0
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_CONFIRMATIONS:
        raise ChainConfigError(f"CHAIN_CONFIRMATIONS must be a whole number of blocks from 0 to "
                               f"{MAX_CONFIRMATIONS}, not {value!r}")
    return int(value)


def chain_info_path(settings: Any = None) -> Path | None:
    """The info file :func:`config_from_settings` reads, or ``None`` when it reads none (the
    embedded chain, or a node with every ``CHAIN_*`` address and the key set)."""
    if settings is None:
        from django.conf import settings
    if _setting(settings, "WEB3_PROVIDER_URI") is None:
        return None
    missing = [name for name in _FROM_INFO_FILE if _setting(settings, name) is None]
    if not missing:
        return None
    info_file = _setting(settings, "CHAIN_INFO_FILE")
    if info_file is None:
        raise ChainConfigError(f"WEB3_PROVIDER_URI is set but not {', '.join(missing)}, and there is no "
                               "CHAIN_INFO_FILE")
    return Path(info_file)


def chain_info_stamp(path: str | os.PathLike[str]) -> tuple[int, int, int, int] | None:
    """What changes whenever the node rewrites its info file -- (device, inode, size, mtime in
    ns); ``None`` while there is no file (the node is stopped). One ``stat``, no read: cheap
    enough to check before every use of a client. :func:`write_chain_info` replaces the file,
    so a rewrite always has a new inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _setting(settings: Any, name: str) -> str | None:
    value = getattr(settings, name, None)
    if value is None:
        return None
    return str(value).strip() or None


def read_chain_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The info file written by the local node; :class:`ChainConfigError` if unusable."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChainConfigError(
            f"chain info file {path} not found: start the local node "
            "(python -m tokens.chain.node) or set the CHAIN_* settings"
        ) from None
    except (OSError, ValueError) as exc:
        raise ChainConfigError(f"chain info file {path} is unreadable: {exc}") from None
    if not isinstance(info, dict) or not all(key in info for key in CHAIN_INFO_KEYS):
        raise ChainConfigError(f"chain info file {path} lacks some of {', '.join(CHAIN_INFO_KEYS)}")
    return info


def write_chain_info(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Write the info file atomically, readable by its owner only (it holds a private key)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({key: info[key] for key in CHAIN_INFO_KEYS}, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
