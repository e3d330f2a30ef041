"""The chain client follows a restarted local node: two real local JSON-RPC nodes, one after
the other on the same port (a restart), each with its own chain and treasury key."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tokens import services
from tokens.chain import ChainClient, ChainError, NodeFollowingClient
from tokens.chain.node import ChainNode, start_node
from tokens.services import buy_order_execute, revenue_track

from .conftest import warm_twap


@pytest.fixture
def info_file(tmp_path: Path) -> Path:
    return tmp_path / "chain.json"


@pytest.fixture
def run_node(info_file: Path) -> Iterator[Callable[[int], ChainNode]]:
    """`run_node(port)` starts a local node (writing `info_file`) and serves it in a thread."""
    running: list[tuple[ChainNode, threading.Thread]] = []

    def run(port: int = 0) -> ChainNode:
        node = start_node("127.0.0.1", port, info_file)
        thread = threading.Thread(target=node.serve_forever, daemon=True)
        thread.start()
        running.append((node, thread))
        return node

    yield run
    for node, thread in running:
        if thread.is_alive():
            node.shutdown()
            thread.join(timeout=5)


def stop(node: ChainNode, info_file: Path) -> None:
    """What stopping `python -m tokens.chain.node` does: stop serving, remove the info file."""
    node.shutdown()
    info_file.unlink()


@pytest.fixture
def node_settings(settings, info_file: Path):
    """The web and worker's settings for a local node: its URL and info file, no CHAIN_* values."""
    for name in ("CHAIN_ROUTER_ADDRESS", "CHAIN_AZR_TOKEN_ADDRESS", "CHAIN_ZAR_TOKEN_ADDRESS",
                 "CHAIN_TREASURY_PRIVATE_KEY"):
        setattr(settings, name, "")
    settings.CHAIN_INFO_FILE = str(info_file)
    services.chain_client_set(None)
    yield settings
    services.chain_client_set(None)


def test_buys_follow_a_restarted_node_without_restarting_the_process(config, node_settings, run_node, info_file):
    first = run_node(0)
    node_settings.WEB3_PROVIDER_URI = first.provider_uri
    revenue_track(source="other", amount="10000")
    warm_twap(first.chain)

    assert buy_order_execute(amount="250").success
    old = services.chain_client()
    assert old.treasury_address == first.chain.treasury_address

    stop(first, info_file)
    assert services.chain_client() is old  # between stop and start: kept, its calls fail as transport errors
    second = run_node(int(first.provider_uri.rsplit(":", 1)[1]))  # the restart: same port, a new chain
    assert second.provider_uri == first.provider_uri
    assert second.chain.treasury_address != first.chain.treasury_address
    services.chain_client()  # the new node's client, for the observations
    warm_twap(second.chain)

    result = buy_order_execute(amount="250")

    assert result.success, result.error
    client = services.chain_client()
    assert client is not old and client.treasury_address == second.chain.treasury_address
    assert services.chain_client() is client  # one client while the info file stays the same
    assert second.chain.w3.eth.get_transaction_receipt(result.transaction_hash)["status"] == 1
    # What every buy did before: the old key has nothing on the new chain.
    with pytest.raises(ChainError):
        old.buy(amount=Decimal("1"), min_tokens_out=Decimal("0.5"))


def test_an_unchanged_or_rewritten_but_equal_info_file_keeps_the_client(node_settings, run_node, info_file):
    node = run_node(0)
    node_settings.WEB3_PROVIDER_URI = node.provider_uri
    follower = NodeFollowingClient()
    client = follower.get()
    assert follower.get() is client

    info_file.write_text(info_file.read_text())  # touched, same content: same configuration
    assert follower.get() is client


def test_a_client_set_explicitly_is_kept_whatever_the_info_file_says(node_settings, run_node, info_file):
    node = run_node(0)
    node_settings.WEB3_PROVIDER_URI = node.provider_uri
    pinned = node.chain.client()
    services.chain_client_set(pinned)
    info_file.unlink()
    run_node(0)  # another node rewrites the file

    assert services.chain_client() is pinned


def test_without_a_node_the_first_client_is_a_configuration_error(node_settings, info_file):
    node_settings.WEB3_PROVIDER_URI = "http://127.0.0.1:9"

    with pytest.raises(ChainError, match="not found"):
        services.chain_client()
    assert not info_file.exists()


def test_the_embedded_chain_has_nothing_to_follow(node_settings):
    node_settings.WEB3_PROVIDER_URI = ""
    client = services.chain_client()
    assert isinstance(client, ChainClient) and services.chain_client() is client
