"""The chain client follows a restarted local node: two real local JSON-RPC nodes, one after
the other on the same port (a restart), each with its own chain and treasury key -- and with a
journal (what `make run` starts), the restarted node has the same chain: old transaction hashes
keep their receipts and balances are the same. A journal that cannot be used gives a fresh
chain, the old file moved aside and a reset notice."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tokens import services
from tokens.chain import ChainClient, ChainError, NodeFollowingClient
from tokens.chain.journal import read_reset_notice, reset_notice_path
from tokens.chain.node import ChainNode, start_node
from tokens.models import BuyOrder
from tokens.services import buy_order_execute, revenue_track

from .conftest import warm_twap


@pytest.fixture
def info_file(tmp_path: Path) -> Path:
    return tmp_path / "chain.json"


@pytest.fixture
def run_node(info_file: Path) -> Iterator[Callable[..., ChainNode]]:
    """`run_node(port, journal=None)` starts a local node (writing `info_file`) and serves it in a thread."""
    running: list[tuple[ChainNode, threading.Thread]] = []

    def run(port: int = 0, journal: Path | None = None) -> ChainNode:
        node = start_node("127.0.0.1", port, info_file, journal=journal)
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


def _port(node: ChainNode) -> int:
    return int(node.provider_uri.rsplit(":", 1)[1])


def test_a_journaled_node_restarts_with_the_same_chain(config, node_settings, run_node, info_file, tmp_path):
    journal = tmp_path / "chain-journal.jsonl"
    first = run_node(0, journal=journal)
    node_settings.WEB3_PROVIDER_URI = first.provider_uri
    revenue_track(source="other", amount="10000")
    bought = buy_order_execute(amount="250")
    assert bought.success, bought.error
    before = services.chain_client().balances()
    first_receipt = services.chain_client().receipt_for(bought.transaction_hash)
    assert before.azr > 0
    assert journal.stat().st_mode & 0o777 == 0o600  # it holds the treasury key

    stop(first, info_file)
    second = run_node(_port(first), journal=journal)

    assert second.chain.treasury_address == first.chain.treasury_address
    assert second.chain.router == first.chain.router
    client = services.chain_client()
    assert client.balances() == before
    order = BuyOrder.objects.get(pk=bought.order_id)
    receipt = client.receipt_for(bought.transaction_hash)
    assert receipt is not None and receipt.block_number == order.block_number
    assert receipt.tokens_received == first_receipt.tokens_received
    # And it goes on from there: the next buy lands on the same chain, and survives a third start.
    again = buy_order_execute(amount="250")
    assert again.success, again.error
    stop(second, info_file)
    third = run_node(_port(first), journal=journal)
    w3 = third.chain.w3
    for tx_hash in (bought.transaction_hash, again.transaction_hash):
        assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    assert read_reset_notice(journal) is None


def test_a_journal_of_other_contracts_gives_a_fresh_chain_loudly(run_node, tmp_path, caplog):
    journal = tmp_path / "chain-journal.jsonl"
    first = run_node(0, journal=journal)
    first.shutdown()
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    header["fingerprint"] = "0" * 64  # recorded with other contract artifacts
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")

    second = run_node(0, journal=journal)

    assert second.chain.treasury_address != first.chain.treasury_address
    notice = read_reset_notice(journal)
    assert notice is not None and "other contracts" in notice["reason"]
    assert Path(notice["stale_journal"]).exists() and Path(notice["stale_journal"]).read_text().startswith("{")
    assert reset_notice_path(journal).parent == journal.parent
    assert "THE LOCAL CHAIN WAS STARTED AFRESH" in caplog.text
    # The new chain is journaled from the start: a restart keeps it.
    second.shutdown()
    assert run_node(0, journal=journal).chain.treasury_address == second.chain.treasury_address


def test_a_torn_last_line_is_ignored_and_a_corrupt_middle_is_not(run_node, tmp_path):
    journal = tmp_path / "chain-journal.jsonl"
    first = run_node(0, journal=journal)
    first.shutdown()
    text = journal.read_text()
    journal.write_text(text + '{"kind": "writes", "set": {"ab')  # the node died mid-write
    assert run_node(0, journal=journal).chain.treasury_address == first.chain.treasury_address
    assert read_reset_notice(journal) is None

    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    assert run_node(0, journal=journal).chain.treasury_address != first.chain.treasury_address
    assert "line 2 is corrupt" in read_reset_notice(journal)["reason"]


def test_the_node_command_keeps_its_chain_across_a_sigterm(tmp_path):
    """The real process, as `make run` starts it: SIGTERM, exit 0, and the next start reopens the chain."""
    info_file, journal = tmp_path / "chain.json", tmp_path / "chain-journal.jsonl"
    command = [sys.executable, "-m", "tokens.chain.node", "--port", "0", "--info-file", str(info_file),
               "--journal", str(journal)]
    treasuries = []
    for _ in range(2):
        process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE,
                                   text=True)
        try:
            for _ in range(300):
                if info_file.exists():
                    break
                assert process.poll() is None, process.stderr.read()
                threading.Event().wait(0.05)
            treasuries.append(json.loads(info_file.read_text())["treasury_address"])
        finally:
            process.terminate()
            _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        assert not info_file.exists()
    assert treasuries[0] == treasuries[1]


def test_after_a_reset_chain_reconcile_names_the_buy_orders_the_chain_lost(config, node_settings, run_node,
                                                                           info_file, tmp_path):
    from django.core.management import call_command

    journal = tmp_path / "chain-journal.jsonl"
    first = run_node(0, journal=journal)
    node_settings.WEB3_PROVIDER_URI = first.provider_uri
    revenue_track(source="other", amount="10000")
    bought = buy_order_execute(amount="250")
    assert bought.success, bought.error
    call_command("chain_reconcile")  # nothing lost: no notice needed, none written
    assert read_reset_notice(journal) is None

    stop(first, info_file)
    journal.write_text(journal.read_text().replace('"version": 1', '"version": 0', 1))  # unusable
    run_node(_port(first), journal=journal)
    notice = reset_notice_path(journal)
    call_command("chain_reconcile", notice=notice)

    result = read_reset_notice(journal)
    assert result["missing_buy_orders"] == [bought.order_id]
    assert Decimal(result["missing_tokens"]) == BuyOrder.objects.get(pk=bought.order_id).tokens_received > 0
    assert Decimal(result["treasury_azr"]) == 0
