"""Paths where a buy-order could spend twice, be failed while its swap can still be mined, burn
twice or lose a nonce -- each closed in the transaction ledger or the reconciliation, on the
embedded chain. Found by a review of the buy path; each test fails against the code before it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from web3 import Web3
from web3.middleware import Web3Middleware

from tokens import buy_orders
from tokens.chain.errors import ChainFeeAboveCapError, LedgerRefusal
from tokens.chain.txmanager import NOT_RECEIVED, DbLedger
from tokens.models import BuyOrder, BuyOrderConfig, ChainSender, ChainTransaction
from tokens.services import buy_order_execute, buy_order_reconcile, revenue_track
from tokens.totals import buy_order_totals_problems

from .test_tx_layer import approve_router, fake_signed, make_stuck, stuck_order, swap_rows, use_client

Tx = ChainTransaction


class TakenButUnanswered(Web3Middleware):
    """The node takes the first swap, the answer is lost, and the look-up that follows reaches a
    backend that has not seen it (a load balancer in front of several nodes)."""

    armed = {"send": False, "lookup": False}

    def wrap_make_request(self, make_request):
        def request(method, params):
            if method == "eth_sendRawTransaction" and self.armed["send"]:
                self.armed["send"] = False
                make_request(method, params)  # taken: with auto-mining, mined at once
                raise requests.ConnectionError("the answer was lost")
            if method == "eth_getTransactionByHash" and self.armed["lookup"]:
                self.armed["lookup"] = False
                return {"jsonrpc": "2.0", "id": 1, "result": None}
            return make_request(method, params)

        return request


def test_a_swap_the_node_took_but_denied_is_never_doubled_at_the_next_nonce(config, chain, sleeps):
    """Before: the swap became "send_failed", the retry bought anew at the next nonce (the node's
    pending nonce had moved past the first swap), and both swaps were mined: paid twice."""
    revenue_track(source="other", amount="10000")
    approve_router(chain)  # so that the buy's first transaction is its swap
    w3 = Web3(chain.w3.provider)
    w3.middleware_onion.add(TakenButUnanswered)
    use_client(chain, w3)
    before = chain.client().balances()
    TakenButUnanswered.armed.update(send=True, lookup=True)

    result = buy_order_execute()

    assert result.code == "unknown_outcome", result  # neither failed nor bought twice
    order = BuyOrder.objects.get()
    [swap] = swap_rows(order)
    assert swap.status == "send_failed" and swap.error == NOT_RECEIVED
    assert "may still be held" in order.error

    order = buy_order_reconcile(order=order)

    assert order.status == "completed" and order.tx_hash == swap.tx_hash
    assert [row.status for row in swap_rows(order)] == ["mined"]
    assert before.zar - chain.client().balances().zar == Decimal("1000")  # once


def _order(**fields) -> BuyOrder:
    values = {"amount": Decimal("100"), "quoted_price": Decimal("0.5"), "expected_tokens": 200, "min_tokens": 0,
              "max_slippage": Decimal("0.01"), "disposition": "hold", "trigger": BuyOrder.Trigger.MANUAL,
              "status": BuyOrder.Status.PENDING}
    values.update(fields)
    return BuyOrder.objects.create(**values)


def test_no_swap_is_signed_for_an_order_no_longer_pending(config, chain):
    revenue_track(source="other", amount="10000")
    client = use_client(chain)
    before = client.balances()
    order = _order(status=BuyOrder.Status.FAILED)

    with pytest.raises(LedgerRefusal, match="not pending"):
        client.buy(amount=Decimal("100"), min_tokens_out=Decimal(0), ledger=DbLedger(buy_order_id=order.pk))

    assert not Tx.objects.filter(purpose="swap").exists()
    assert client.balances().zar == before.zar


def test_a_stale_order_is_not_abandoned_once_a_swap_was_signed_for_it(config, chain):
    order = _order()
    # A worker still buying signs its swap between the reconciliation's look and its verdict.
    DbLedger(buy_order_id=order.pk).record(sender=fake_signed(0, 1).sender, chain_id=1, pending_nonce=0,
                                           sign=lambda nonce: fake_signed(nonce, 1), purpose="swap")

    buy_orders._abandon(order, "Abandoned: no transaction was signed.", swaps_seen=0)

    order.refresh_from_db()
    assert order.status == "pending"
    buy_orders._abandon(order, "Abandoned: …", swaps_seen=1)  # what the next look sees: now it may
    order.refresh_from_db()
    assert order.status == "failed"


def test_a_second_burn_for_one_order_is_refused(config, chain):
    revenue_track(source="other", amount="10000")
    BuyOrderConfig.objects.update(disposition="burn")
    client = use_client(chain, receipt_timeout=5)
    result = buy_order_execute()
    assert result.success, result.error
    order = BuyOrder.objects.get()
    assert order.burn_tx_hash
    azr_before = client.balances().azr
    receipt = client.buy_outcome(chain.w3.eth.get_transaction_receipt(order.tx_hash))

    again = buy_orders._finish_burn(client, receipt, order)  # a second actor finishing the same order

    assert again.burn_tx_hash == order.burn_tx_hash and again.burn_error is None  # the one burn, found
    assert Tx.objects.filter(purpose="burn").count() == 1
    assert client.balances().azr == azr_before
    with pytest.raises(LedgerRefusal, match="burn already"):  # and the ledger's own check behind it
        client.burn(receipt.tokens_received, ledger=DbLedger(buy_order_id=order.pk))
    assert client.balances().azr == azr_before


def test_a_refused_replacement_gives_its_nonce_back_to_the_transaction_it_was_for(db):
    ledger = DbLedger()
    first = ledger.record(sender=fake_signed(0, 1).sender, chain_id=1, pending_nonce=0,
                          sign=lambda nonce: fake_signed(nonce, 1), purpose="approve")
    replacement = fake_signed(first.nonce, 2)
    ledger.record_replacement(first, replacement)
    assert Tx.objects.get(tx_hash=first.tx_hash).replaced_by is not None

    ledger.send_failed(replacement, "replacement transaction underpriced")

    row = Tx.objects.get(tx_hash=first.tx_hash)
    assert row.replaced_by is None and row.status == "signed"  # the sweep's head for the nonce again


def test_a_transaction_signed_by_another_key_is_never_replaced_by_this_one(config, chain, sleeps):
    use_client(chain)
    order = stuck_order(chain)
    [swap] = swap_rows(order)
    make_stuck(swap)
    other = ChainSender.objects.create(chain_id=swap.sender.chain_id,
                                       address=Web3.to_checksum_address("0x" + "22" * 20))
    Tx.objects.filter(pk=swap.pk).update(sender=other)  # as after a rotation of the treasury key

    assert buy_order_reconcile(order=order).status == "pending"

    assert [row.tx_hash for row in swap_rows(order)] == [swap.tx_hash]  # no replacement signed


def test_a_failed_slice_and_a_deferred_order_keep_the_running_totals_right(db):
    parent = _order(amount=Decimal("200"), slice_count=2)
    part = _order(parent=parent, slice_index=0)
    deferred = _order()

    buy_orders._fail(part, "Reverted: INSUFFICIENT_OUTPUT_AMOUNT")
    buy_orders._defer(deferred, ChainFeeAboveCapError(required=200 * 10**9, cap=100 * 10**9))

    assert BuyOrder.objects.get(pk=part.pk).status == BuyOrder.Status.FAILED
    assert BuyOrder.objects.get(pk=deferred.pk).status == BuyOrder.Status.FAILED
    assert buy_order_totals_problems() == []
