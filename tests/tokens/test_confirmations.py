"""A transaction counts as mined only ``CHAIN_CONFIRMATIONS`` blocks deep, and a swap taken out
of the chain by a reorganisation before that is sent again on its own nonce and paid once -- on the embedded
chain, with real pending transactions (auto-mining off) and a real reorganisation (the chain
reverted to a snapshot taken before the swap's block).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from tokens.buy_orders import chain_sweep
from tokens.chain import ChainClient, runtime
from tokens.chain.config import ChainConfigError, config_from_settings
from tokens.models import BuyOrder, ChainTransaction
from tokens.services import buy_order_execute, buy_order_reconcile, revenue_track

from .test_tx_layer import make_stuck, mine, stuck_order, swap_rows

Tx = ChainTransaction


def use_client(chain, *, confirmations: int, receipt_timeout: float = 0.3) -> ChainClient:
    client = ChainClient(chain.config(receipt_timeout=receipt_timeout, receipt_poll_interval=0.02,
                                      confirmations=confirmations), w3=chain.w3)
    runtime.chain_client_set(client)
    return client


def backdate(order: BuyOrder) -> None:
    """Old enough for the minute sweep (``replace_after_seconds``)."""
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Tx.objects.filter(buy_order=order).update(created_at=an_hour_ago, sent_at=an_hour_ago)
    BuyOrder.objects.filter(pk=order.pk).update(created_at=an_hour_ago)


@pytest.mark.parametrize(("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("3", 3), (" 12 ", 12), ("1000", 1000)])
def test_the_setting_is_a_whole_number_of_blocks(value, expected):
    assert config_from_settings(SimpleNamespace(CHAIN_CONFIRMATIONS=value)).confirmations == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "two", "1001", "١٢", "1e3"])
def test_a_bad_setting_is_refused_with_its_name(value):
    with pytest.raises(ChainConfigError, match="CHAIN_CONFIRMATIONS"):
        config_from_settings(SimpleNamespace(CHAIN_CONFIRMATIONS=value))


def test_a_swap_counts_as_mined_only_once_deep_enough_and_is_never_replaced_meanwhile(config, chain, sleeps):
    client = use_client(chain, confirmations=2)
    before = chain.client().balances()
    order = stuck_order(chain)
    [swap] = swap_rows(order)
    mine(chain)  # the swap's block
    block = chain.w3.eth.get_transaction_receipt(swap.tx_hash)["blockNumber"]
    make_stuck(swap)  # "pending" for an hour: still, a swap in a block is not replaced

    for depth in (0, 1):
        assert chain.w3.eth.block_number - block == depth
        assert buy_order_reconcile(order=order).status == "pending"
        assert client.lookup(swap.tx_hash)[0] == "confirming"
        [swap] = swap_rows(order)
        assert swap.status == "sent"
        mine(chain)

    order = buy_order_reconcile(order=order)

    assert order.status == "completed" and order.block_number == block
    [swap] = swap_rows(order)
    assert (swap.status, swap.block_number) == ("mined", block)
    assert before.zar - chain.client().balances().zar == Decimal("1000")


def test_a_swap_reorganised_away_before_it_is_deep_enough_is_sent_again_and_paid_once(config, chain, sleeps):
    client = use_client(chain, confirmations=2)
    before = chain.client().balances()
    order = stuck_order(chain)
    [swap] = swap_rows(order)
    tester = chain.w3.provider.ethereum_tester
    fork_point = tester.take_snapshot()
    mine(chain)
    assert buy_order_reconcile(order=order).status == "pending"  # in a block, 0 deep

    tester.revert_to_snapshot(fork_point)  # the block is reorganised away, and the swap with it

    assert client.lookup(swap.tx_hash)[0] == "unknown"
    assert buy_order_reconcile(order=order).status == "pending"  # it could come back: no new swap
    backdate(order)
    assert chain_sweep()["replaced"] == 1  # on its own nonce (fees bumped), never a second swap
    for _ in range(3):
        mine(chain)

    counts = chain_sweep()

    assert counts["orders_settled"] == 1
    order.refresh_from_db()
    swap, replacement = swap_rows(order)
    assert (swap.status, replacement.status, replacement.nonce) == ("dropped", "mined", swap.nonce)
    assert order.status == "completed" and order.tx_hash == replacement.tx_hash
    assert before.zar - chain.client().balances().zar == Decimal("1000")  # once


def test_a_live_buy_waits_for_its_depth_while_blocks_come(config, chain):
    use_client(chain, confirmations=3, receipt_timeout=30)
    revenue_track(source="other", amount="10000")
    stop = threading.Event()

    def blocks() -> None:  # another miner: a block every 50 ms
        while not stop.wait(0.05):
            mine(chain)

    miner = threading.Thread(target=blocks)
    miner.start()
    try:
        result = buy_order_execute()
    finally:
        stop.set()
        miner.join()

    assert result.success, result.error
    order = BuyOrder.objects.get()
    assert order.status == "completed"
    assert chain.w3.eth.block_number - order.block_number >= 3
    assert set(Tx.objects.values_list("status", flat=True)) == {"mined"}
