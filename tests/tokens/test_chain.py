"""The chain layer on a real (embedded) EVM: quotes, swaps, reverts, transport errors, node.

No EVM is mocked. Transport errors are real (a closed port) or injected at the provider
boundary by a web3 middleware. One embedded chain serves the whole module.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from web3 import Web3
from web3.middleware import Web3Middleware

from tokens.chain.client import ChainClient, TreasuryBalances
from tokens.chain.config import (
    DEFAULT_BURN_ADDRESS,
    ChainConfig,
    config_from_settings,
    read_chain_info,
)
from tokens.chain.embedded import (
    EmbeddedChain,
    build_embedded_chain,
    get_embedded_chain,
    reset_embedded_chain,
)
from tokens.chain.errors import (
    ChainConfigError,
    ChainRevertError,
    ChainTransportError,
)
from tokens.chain.node import ChainNode, start_node
from tokens.chain.runtime import client_for
from tokens.chain.units import from_base_units, to_base_units

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAX_SLIPPAGE = Decimal("0.01")
TRANSFER_TOPIC = Web3.keccak(text="Transfer(address,address,uint256)")


@pytest.fixture(scope="module")
def chain() -> EmbeddedChain:
    return build_embedded_chain()


@pytest.fixture(scope="module")
def client(chain: EmbeddedChain) -> ChainClient:
    return chain.client()


def token_balance(chain: EmbeddedChain, token: str, owner: str) -> Decimal:
    contract = chain.w3.eth.contract(address=token, abi=_token_abi())
    return from_base_units(contract.functions.balanceOf(owner).call(), 18)


def _token_abi() -> list[dict[str, Any]]:
    from tokens.chain.artifacts import load_artifact

    return load_artifact("Token").abi


def expected_min_out(client: ChainClient, amount: Decimal) -> Decimal:
    """The buy-order rule: expected tokens = amount / price, less the maximum slippage."""
    return amount / client.quote_price() * (1 - MAX_SLIPPAGE)


# --- Quotes ---------------------------------------------------------------------------------


def test_quote_price_is_the_pools_spot_price_with_the_fee(chain: EmbeddedChain, client: ChainClient) -> None:
    pair = chain.w3.eth.contract(
        address=chain.pair,
        abi=[
            {
                "type": "function",
                "name": "getReserves",
                "stateMutability": "view",
                "inputs": [],
                "outputs": [{"name": "", "type": "uint256"}, {"name": "", "type": "uint256"}],
            }
        ],
    )
    reserve_zar, reserve_azr = pair.functions.getReserves().call()
    one = 10**18
    out = one * 997 * reserve_azr // (reserve_zar * 1000 + one * 997)

    price = client.quote_price()

    assert price == (Decimal(one) / Decimal(out)).quantize(Decimal("1e-18"))
    assert Decimal("0.5") < price < Decimal("0.51")  # ~0.5 ZAR per AZR, plus the 0.3% fee


def test_quote_tokens_out_matches_the_constant_product_formula(client: ChainClient) -> None:
    tokens = client.quote_tokens_out(Decimal("1000"))

    assert isinstance(tokens, Decimal)
    assert Decimal("1990") < tokens < Decimal("2000")


# --- Buying ---------------------------------------------------------------------------------


def test_buy_reports_the_tokens_the_treasury_received(chain: EmbeddedChain, client: ChainClient) -> None:
    before = client.balances()
    quoted = client.quote_tokens_out(Decimal("1000"))
    signed: list[str] = []

    receipt = client.buy(amount=Decimal("1000"), min_tokens_out=Decimal(0), on_signed=signed.append)

    after = client.balances()
    assert receipt.tokens_received == quoted
    assert after.azr - before.azr == receipt.tokens_received
    assert before.zar - after.zar == Decimal("1000")
    assert receipt.burn_tx_hash is None and receipt.burn_error is None
    # The AZR Transfer event to the treasury, told apart from the ZAR one by its address.
    mined = chain.w3.eth.get_transaction_receipt(receipt.tx_hash)
    assert mined["status"] == 1
    assert (mined["blockNumber"], mined["gasUsed"]) == (receipt.block_number, receipt.gas_used)
    treasury_topic = bytes(12) + bytes.fromhex(client.treasury_address[2:])
    azr_in = [
        int.from_bytes(log["data"], "big")
        for log in mined["logs"]
        if log["address"] == chain.azr_token
        and log["topics"][0] == TRANSFER_TOPIC
        and log["topics"][2] == treasury_topic
    ]
    assert from_base_units(sum(azr_in), 18) == receipt.tokens_received
    assert any(log["address"] == chain.zar_token for log in mined["logs"])
    # on_signed got the hash of the swap that was mined, and it can be looked up again.
    assert signed == [receipt.tx_hash]
    assert chain.w3.eth.get_transaction(receipt.tx_hash)["to"] == chain.router
    assert client.receipt_for(receipt.tx_hash) == receipt


def test_receipt_for_an_unknown_transaction_is_none(client: ChainClient) -> None:
    assert client.receipt_for("0x" + "ab" * 32) is None


def test_the_largest_buy_at_the_quoted_price_stays_within_slippage(client: ChainClient) -> None:
    amount = Decimal("1000000")
    minimum = expected_min_out(client, amount)

    started = time.perf_counter()
    receipt = client.buy(amount=amount, min_tokens_out=minimum)
    elapsed = time.perf_counter() - started

    assert receipt.tokens_received >= minimum
    assert elapsed < 1.0


def test_a_buy_beyond_the_slippage_limit_reverts_and_moves_nothing(chain: EmbeddedChain, client: ChainClient) -> None:
    amount = Decimal("50000000")  # ~2.4% price impact on this pool
    minimum = expected_min_out(client, amount)
    before = client.balances()

    with pytest.raises(ChainRevertError) as raised:
        client.buy(amount=amount, min_tokens_out=minimum)

    assert "INSUFFICIENT_OUTPUT_AMOUNT" in raised.value.reason
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in str(raised.value)
    after = client.balances()
    assert (after.zar, after.azr) == (before.zar, before.azr)
    # The reverted swap was mined (it paid gas) and stays a revert when looked up again.
    assert chain.w3.eth.get_transaction_receipt(raised.value.tx_hash)["status"] == 0
    with pytest.raises(ChainRevertError, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        client.receipt_for(raised.value.tx_hash)


def test_burn_disposition_sends_the_bought_tokens_to_the_burn_address(
    chain: EmbeddedChain, client: ChainClient
) -> None:
    treasury_before = client.balances().azr
    burned_before = token_balance(chain, chain.azr_token, DEFAULT_BURN_ADDRESS)

    receipt = client.buy(amount=Decimal("500"), min_tokens_out=Decimal(0), disposition="burn")

    assert receipt.tokens_received > 0
    assert receipt.burn_tx_hash is not None and receipt.burn_error is None
    assert chain.w3.eth.get_transaction_receipt(receipt.burn_tx_hash)["status"] == 1
    assert client.balances().azr == treasury_before
    burned = token_balance(chain, chain.azr_token, DEFAULT_BURN_ADDRESS) - burned_before
    assert burned == receipt.tokens_received


def test_buy_refuses_bad_arguments_before_touching_the_chain(client: ChainClient) -> None:
    with pytest.raises(ValueError):
        client.buy(amount=Decimal("10"), min_tokens_out=Decimal(0), disposition="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.buy(amount=Decimal(0), min_tokens_out=Decimal(0))
    with pytest.raises(ValueError):
        client.buy(amount=Decimal("NaN"), min_tokens_out=Decimal(0))
    with pytest.raises(ValueError):
        client.buy(amount=Decimal("1e-19"), min_tokens_out=Decimal(0))


def test_concurrent_buys_share_one_nonce_writer(client: ChainClient) -> None:
    before = client.balances()
    receipts: list[Any] = []
    errors: list[BaseException] = []

    def buy() -> None:
        try:
            receipts.append(client.buy(amount=Decimal("100"), min_tokens_out=Decimal(0)))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=buy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({receipt.tx_hash for receipt in receipts}) == 4
    after = client.balances()
    assert before.zar - after.zar == Decimal("400")
    assert after.azr - before.azr == sum(receipt.tokens_received for receipt in receipts)


# --- Transport errors -----------------------------------------------------------------------


def fail_once(method: str) -> type[Web3Middleware]:
    """A middleware whose first ``method`` request fails as if the connection dropped."""

    class FailOnce(Web3Middleware):
        armed = True

        def wrap_make_request(self, make_request: Any) -> Any:
            def request(rpc_method: str, params: Any) -> Any:
                if rpc_method == method and FailOnce.armed:
                    FailOnce.armed = False
                    raise requests.ConnectionError(f"injected failure of {rpc_method}")
                return make_request(rpc_method, params)

            return request

    return FailOnce


def test_a_dropped_connection_is_a_transport_error_and_the_retry_pays_once(
    chain: EmbeddedChain, client: ChainClient
) -> None:
    w3 = Web3(chain.w3.provider)
    w3.middleware_onion.add(fail_once("eth_sendRawTransaction"))
    flaky = ChainClient(chain.config(), w3=w3)
    before = flaky.balances()
    signed: list[str] = []

    with pytest.raises(ChainTransportError, match="injected"):
        flaky.buy(amount=Decimal("100"), min_tokens_out=Decimal(0), on_signed=signed.append)

    # The caller's retry: the recorded transaction never reached the node, so buy again.
    assert len(signed) == 1 and flaky.receipt_for(signed[0]) is None
    assert flaky.balances() == before
    receipt = flaky.buy(amount=Decimal("100"), min_tokens_out=Decimal(0), on_signed=signed.append)
    assert signed[-1] == receipt.tx_hash  # the same transaction again when nothing changed
    assert before.zar - flaky.balances().zar == Decimal("100")


def test_an_unreachable_node_is_a_transport_error(chain: EmbeddedChain) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = chain.config(provider_uri=f"http://127.0.0.1:{closed_port}/v3/secret-api-key")
    client = ChainClient(config)

    with pytest.raises(ChainTransportError) as raised:
        client.quote_price()

    assert "secret-api-key" not in str(raised.value)
    assert chain.treasury_private_key[2:] not in str(raised.value)


# --- Configuration and secrets -------------------------------------------------------------


def test_the_private_key_appears_in_no_repr(chain: EmbeddedChain, client: ChainClient) -> None:
    key = chain.treasury_private_key
    config = chain.config()

    assert config.treasury_private_key == key
    for text in (repr(config), str(config), repr(chain), repr(client)):
        assert key[2:] not in text
        assert key[2:].upper() not in text


def test_a_malformed_key_is_not_echoed(chain: EmbeddedChain) -> None:
    secret = "0x" + "5e" * 31 + "zz"

    with pytest.raises(ChainConfigError) as raised:
        ChainClient(chain.config(treasury_private_key=secret), w3=chain.w3)

    assert "5e5e" not in str(raised.value)
    assert raised.value.__suppress_context__


def test_config_from_settings_defaults_to_the_embedded_chain() -> None:
    config = config_from_settings(SimpleNamespace())

    assert config == ChainConfig()
    assert config.provider_uri is None and config.burn_address == DEFAULT_BURN_ADDRESS


def test_config_from_settings_takes_explicit_settings_over_the_info_file(tmp_path: Path) -> None:
    info = {
        "provider_uri": "http://127.0.0.1:8545",
        "chain_id": 1,
        "router": "0x" + "11" * 20,
        "azr_token": "0x" + "22" * 20,
        "zar_token": "0x" + "33" * 20,
        "pair": "0x" + "44" * 20,
        "treasury_private_key": "0x" + "55" * 32,
        "treasury_address": "0x" + "66" * 20,
    }
    (tmp_path / "chain.json").write_text(json.dumps(info))
    settings = SimpleNamespace(
        WEB3_PROVIDER_URI="http://node:8545",
        CHAIN_ROUTER_ADDRESS="0x" + "77" * 20,
        CHAIN_AZR_TOKEN_ADDRESS="",
        CHAIN_INFO_FILE=str(tmp_path / "chain.json"),
        CHAIN_BURN_ADDRESS="",
    )

    config = config_from_settings(settings)

    assert config.provider_uri == "http://node:8545"
    assert config.router_address == "0x" + "77" * 20
    assert config.azr_token_address == info["azr_token"]
    assert config.zar_token_address == info["zar_token"]
    assert config.treasury_private_key == info["treasury_private_key"]
    assert config.burn_address == DEFAULT_BURN_ADDRESS


def test_config_from_settings_without_addresses_or_info_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ChainConfigError, match="not found"):
        config_from_settings(SimpleNamespace(WEB3_PROVIDER_URI="http://node:8545", CHAIN_INFO_FILE=str(tmp_path / "x")))


def test_amounts_convert_exactly() -> None:
    amount = Decimal("123456789012.123456789012345678")
    units = to_base_units(amount, 18)

    assert units == 123456789012123456789012345678
    assert from_base_units(units, 18) == amount
    assert to_base_units(Decimal("1.0000000000000000001"), 18, round_up=True) == 10**18 + 1
    with pytest.raises(ValueError):
        to_base_units(Decimal("1.0000000000000000001"), 18)
    with pytest.raises(ValueError):
        to_base_units(Decimal("-1"), 18)
    with pytest.raises(TypeError):
        to_base_units(1.5, 18)  # type: ignore[arg-type]


# --- The process-wide embedded chain --------------------------------------------------------


@pytest.fixture
def fresh_embedded_chain() -> Iterator[None]:
    reset_embedded_chain()
    yield
    reset_embedded_chain()


@pytest.mark.usefixtures("fresh_embedded_chain")
def test_the_embedded_chain_is_one_per_process_until_reset() -> None:
    first = get_embedded_chain()
    client = client_for(ChainConfig())

    assert get_embedded_chain() is first
    assert client.treasury_address == first.treasury_address
    assert client.chain_id == first.chain_id
    assert first.chain_id not in (1, 1337)
    assert client.balances() == TreasuryBalances(zar=Decimal(100_000_000), azr=Decimal(0), native=Decimal(1000))
    reset_embedded_chain()
    assert get_embedded_chain() is not first


def test_the_client_knows_nothing_of_the_embedded_chain() -> None:
    """The embedded chain builds clients; the runtime chooses between it and a node."""
    for module in ("client.py", "sending.py", "rpc.py", "tx.py"):  # the client and its transaction layer
        tree = ast.parse((PROJECT_ROOT / "tokens" / "chain" / module).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not imported & {"tokens.chain.embedded", "tokens.chain.runtime", "tokens.chain"}, module
    with pytest.raises(ChainConfigError, match="client_for"):
        ChainClient(ChainConfig())


# --- The local JSON-RPC node ----------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChainNode, Path]]:
    info_file = tmp_path_factory.mktemp("chain") / "chain.json"
    node = start_node("127.0.0.1", 0, info_file)
    thread = threading.Thread(target=node.serve_forever, daemon=True)
    thread.start()
    yield node, info_file
    node.shutdown()
    thread.join(timeout=5)


def test_the_node_serves_quotes_and_buys_over_http(node: tuple[ChainNode, Path]) -> None:
    chain_node, info_file = node
    assert os.stat(info_file).st_mode & 0o777 == 0o600
    info = read_chain_info(info_file)
    assert info["provider_uri"] == chain_node.provider_uri
    settings = SimpleNamespace(WEB3_PROVIDER_URI=info["provider_uri"], CHAIN_INFO_FILE=str(info_file))
    client = ChainClient(config_from_settings(settings))
    assert client.treasury_address == info["treasury_address"]
    assert client.chain_id == info["chain_id"]

    before = client.balances().azr
    minimum = expected_min_out(client, Decimal("1000"))
    receipt = client.buy(amount=Decimal("1000"), min_tokens_out=minimum)

    assert receipt.tokens_received >= minimum
    assert client.receipt_for(receipt.tx_hash) == receipt
    assert client.balances().azr - before == receipt.tokens_received


def test_a_revert_over_http_carries_its_reason(node: tuple[ChainNode, Path]) -> None:
    chain_node, info_file = node
    client = ChainClient(
        config_from_settings(SimpleNamespace(WEB3_PROVIDER_URI=chain_node.provider_uri, CHAIN_INFO_FILE=str(info_file)))
    )
    amount = Decimal("1000")

    with pytest.raises(ChainRevertError, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        client.buy(amount=amount, min_tokens_out=client.quote_tokens_out(amount) * 2)


def test_the_node_answers_batches_and_bad_requests(node: tuple[ChainNode, Path]) -> None:
    chain_node, _ = node
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBlockByNumber", "params": ["latest", False]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_noSuchMethod", "params": []},
        {"jsonrpc": "2.0", "id": 4},
    ]

    answers = requests.post(chain_node.provider_uri, json=batch, timeout=5).json()

    assert [answer["id"] for answer in answers] == [1, 2, 3, None]
    assert int(answers[0]["result"], 16) == chain_node.chain.chain_id
    assert answers[1]["result"]["number"].startswith("0x")
    assert len(answers[1]["result"]["logsBloom"]) == 2 + 512
    assert answers[2]["error"]["code"] == -32601
    assert answers[3]["error"]["code"] == -32600
    garbled = requests.post(chain_node.provider_uri, data=b"{not json", timeout=5).json()
    assert garbled["error"]["code"] == -32700


def test_the_node_command_writes_its_info_file_and_removes_it_on_sigterm(tmp_path: Path) -> None:
    info_file = tmp_path / "chain.json"
    log = (tmp_path / "node.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tokens.chain.node", "--port", "0", "--info-file", str(info_file)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not info_file.exists():
            assert process.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, "the node did not start"
            time.sleep(0.05)
        info = read_chain_info(info_file)
        client = ChainClient(
            replace(
                config_from_settings(
                    SimpleNamespace(WEB3_PROVIDER_URI=info["provider_uri"], CHAIN_INFO_FILE=str(info_file))
                ),
                request_timeout=5,
            )
        )
        assert client.quote_price() > 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        log.close()
    assert process.returncode == 0
    assert not info_file.exists()
