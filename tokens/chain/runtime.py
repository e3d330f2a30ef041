"""The chain runtime of a process: which client, one lock, and the retries.

- :func:`client_for` chooses the chain: the process-wide embedded chain when the
  configuration names no provider, else a node over HTTP. It is the one place that knows
  both, so the client module never imports the embedded chain (which builds clients).
- :func:`chain_client` is the process's client, following a restarted local node
  (:class:`NodeFollowingClient`); :func:`chain_client_set` pins one (tests, an override).
- :data:`chain_lock` serializes this process's chain calls (the embedded chain is not
  thread-safe); :func:`with_retries` runs a call under it, retrying transport errors
  after 1 s, 2 s, 4 s (capped at 30 s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from tokens.chain.client import ChainClient
from tokens.chain.config import ChainConfig, chain_info_path, chain_info_stamp, config_from_settings
from tokens.chain.errors import ChainConfigError, ChainTransportError
from tokens.chain.rpc import treasury_account

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_DELAYS = (1, 2, 4)  # seconds before retry 1, 2, 3
RETRY_DELAY_CAP = 30

# The embedded chain is not thread-safe: every chain call of the services goes through this lock.
chain_lock = threading.RLock()

# The pause between retries; tests replace it (``tokens.chain.runtime.retry_sleep = ...``).
retry_sleep: Callable[[float], None] = time.sleep


def client_for(config: ChainConfig) -> ChainClient:
    """A client for ``config``: the process-wide embedded chain when it names no provider
    (its unset addresses and key come from the embedded deployment), else the node."""
    if config.provider_uri is not None:
        return ChainClient(config)
    from tokens.chain.embedded import get_embedded_chain

    chain = get_embedded_chain()
    return ChainClient(_fill_from(config, chain.config()), w3=chain.w3)


def client_from_settings() -> ChainClient:
    """A client for the chain the Django settings point at (the embedded one by default)."""
    return client_for(config_from_settings())


def _fill_from(config: ChainConfig, defaults: ChainConfig) -> ChainConfig:
    """``config`` with its unset contract addresses and key taken from ``defaults``."""
    names = ("router_address", "azr_token_address", "zar_token_address", "treasury_private_key", "pair_address")
    return replace(config, **{name: getattr(config, name) or getattr(defaults, name) for name in names})


class NodeFollowingClient:
    """The process's chain client, built again when the local node behind it is restarted.

    A restarted local node (``python -m tokens.chain.node``) is a new chain: new contracts and
    a new treasury key, written to its info file. A client built from the old file signs with
    a key the new chain never funded ("cannot afford txn gas") until the process restarts. So
    before handing out the client, :meth:`get` checks the info file's stamp (one ``stat``);
    when it changed, it reads the configuration again and builds a new client if that differs.
    While the file is missing (the node is between stop and start) the current client is kept:
    its calls fail as transport errors, which the buy-order service retries, and the retry
    gets the new node's client. Without an info file (the embedded chain, or every ``CHAIN_*``
    setting given) there is nothing to follow. A client given to :meth:`set` is kept as is.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: ChainClient | None = None
        self._config: ChainConfig | None = None
        self._stamp: tuple[int, ...] | None = None
        self._pinned = False

    def get(self) -> ChainClient:
        with self._lock:
            client = self._client
            if client is not None and self._pinned:
                return client
            path = chain_info_path()
            stamp = chain_info_stamp(path) if path is not None else None
            if client is not None and (stamp is None or stamp == self._stamp):
                return client
            try:
                config = config_from_settings()
            except ChainConfigError:
                if client is None:
                    raise
                logger.warning("chain: the info file %s cannot be read now; keeping the current client", path)
                return client
            if client is None or config != self._config:
                if client is not None:
                    logger.warning("chain: the node's info file %s changed (a restarted node?): a new client "
                                   "for treasury %s", path, treasury_account(config.treasury_private_key).address)
                client = client_for(config)
                self._client, self._config = client, config
            self._stamp = stamp
            return client

    def set(self, client: ChainClient | None) -> None:
        """Use ``client`` as is from now on (tests, an override); ``None`` forgets it."""
        with self._lock:
            self._client, self._config, self._stamp = client, None, None
            self._pinned = client is not None


_clients = NodeFollowingClient()


def chain_client() -> ChainClient:
    """The process-wide chain client (the embedded chain unless ``WEB3_PROVIDER_URI`` is set).

    Follows a restarted local node: when its info file changes, the next call builds a
    client for the new chain and treasury key (no restart of the web or worker needed).
    """
    return _clients.get()


def chain_client_set(client: ChainClient | None) -> None:
    """Replace the process-wide client (tests, or an override) -- kept as is; None resets."""
    _clients.set(client)


def wall_clock() -> int:
    """Unix seconds from this machine's clock: what a swap's deadline is counted from (never the
    chain's own time, which a lagging node or a withheld transaction would stretch)."""
    return int(time.time())


def retry_delay(attempt: int) -> float:
    """The pause before retry ``attempt + 1``."""
    return min(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)], RETRY_DELAY_CAP)


def with_retries(operation: Callable[[], T], *, what: str, sleep: Callable[[float], None] | None = None,
                 on_attempt: Callable[[int], None] | None = None) -> T:
    """Run ``operation`` under the chain lock; after a transport error wait 1 s, 2 s, 4 s and
    retry (3 retries), then let the last error through. ``sleep`` defaults to :data:`retry_sleep`."""
    sleep = sleep or retry_sleep
    for attempt in range(len(RETRY_DELAYS) + 1):
        if on_attempt is not None:
            on_attempt(attempt + 1)
        try:
            with chain_lock:
                return operation()
        except ChainTransportError as exc:
            if attempt == len(RETRY_DELAYS):
                raise
            delay = retry_delay(attempt)
            logger.warning("%s: transport error (%s); retry %s in %ss", what, exc, attempt + 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")
