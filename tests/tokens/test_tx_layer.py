"""The transaction layer on the embedded chain: type-2 fees under a cap, the wall-clock deadline,
the database nonce ledger, replacement of a stuck transaction and its reconciliation.

Pending transactions are real: the tester chain's auto-mining is switched off, so a sent
transaction waits in its pool until the test mines a block (``evm_mine``).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from celery.result import allow_join_result
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from eth_account import Account
from web3 import Web3
from web3.middleware import Web3Middleware

from tests import chain_clock
from tests.concurrency import run_concurrently
from tokens.buy_orders import chain_sweep
from tokens.chain import ChainClient, ChainTransportError, runtime
from tokens.chain.artifacts import load_artifact
from tokens.chain.tx import GWEI, SignedTx
from tokens.chain.txmanager import DbLedger
from tokens.models import BuyOrder, BuyOrderConfig, BuyOrderConfigChange, ChainSender, ChainTransaction
from tokens.observations import price_observe
from tokens.selectors import available_revenue
from tokens.services import (
    buy_order_config_update,
    buy_order_execute,
    buy_order_reconcile,
    buy_order_run_scheduled,
    revenue_track,
)

Tx = ChainTransaction


def mine(chain) -> None:
    """Mine one block with the pool's pending transactions (through the provider's lock)."""
    chain.w3.provider.make_request("evm_mine", [])


def hold_transactions(chain) -> None:
    chain.w3.provider.ethereum_tester.disable_auto_mine_transactions()


def approve_router(chain) -> None:
    """The treasury approves the router once, so that a buy is one transaction: the swap."""
    zar = chain.w3.eth.contract(address=chain.zar_token, abi=load_artifact("Token").abi)
    tx = zar.functions.approve(chain.router, 2**255).build_transaction({
        "from": chain.treasury_address, "chainId": chain.chain_id, "gas": 100_000,
        "nonce": chain.w3.eth.get_transaction_count(chain.treasury_address),
        "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI})
    chain.w3.eth.send_raw_transaction(Account.sign_transaction(tx, chain.treasury_private_key).raw_transaction)


def use_client(chain, w3: Web3 | None = None, *, receipt_timeout: float = 0.3) -> ChainClient:
    client = ChainClient(chain.config(receipt_timeout=receipt_timeout, receipt_poll_interval=0.02),
                         w3=w3 or chain.w3)
    runtime.chain_client_set(client)
    return client


def swap_rows(order: BuyOrder) -> list[Tx]:
    return list(Tx.objects.filter(buy_order=order, purpose="swap").order_by("attempt"))


def make_stuck(row: Tx) -> None:
    Tx.objects.filter(pk=row.pk).update(sent_at=timezone.now() - timedelta(hours=1))


# --- Fees -----------------------------------------------------------------------------------------


def test_a_buy_sends_type_2_transactions_within_the_cap(config, chain):
    buy_order_config_update(max_fee_per_gas="5", priority_fee_per_gas="0.5")
    revenue_track(source="other", amount="10000")

    result = buy_order_execute()

    assert result.success, result.error
    rows = list(Tx.objects.order_by("nonce"))
    assert [row.purpose for row in rows] == ["approve", "swap"]
    assert [row.nonce for row in rows] == [0, 1] and {row.status for row in rows} == {"mined"}
    for row in rows:
        sent = chain.w3.eth.get_transaction(row.tx_hash)
        assert sent["type"] == 2 and sent["nonce"] == row.nonce
        assert sent["maxPriorityFeePerGas"] == GWEI // 2 == row.max_priority_fee_per_gas
        assert sent["maxFeePerGas"] == row.max_fee_per_gas <= 5 * GWEI
        base_fee = chain.w3.eth.get_block(sent["blockNumber"])["baseFeePerGas"]
        assert sent["maxFeePerGas"] >= base_fee + GWEI // 2
    assert BuyOrder.objects.get().tx_hash == rows[1].tx_hash == result.transaction_hash
    assert ChainSender.objects.get().next_nonce == 2


def test_gas_above_the_cap_defers_the_scheduled_buy_and_spends_nothing(config, chain):
    revenue_track(source="other", amount="10000")
    base_fee = chain.w3.eth.get_block("latest")["baseFeePerGas"]
    assert base_fee > GWEI // 100  # the embedded chain starts near 1 gwei
    buy_order_config_update(max_fee_per_gas="0.01", priority_fee_per_gas="0.001")
    before = chain.client().balances()
    now = timezone.now()

    deferred = buy_order_run_scheduled(now=now)

    assert not deferred.success and deferred.code == "gas_above_cap"
    assert "above max_fee_per_gas 0.01 gwei" in deferred.error and "base fee" in deferred.error
    assert not BuyOrder.objects.exists() and not Tx.objects.exists()
    assert chain.client().balances() == before
    assert available_revenue() == Decimal("1000.00")

    buy_order_config_update(max_fee_per_gas="50")
    bought = buy_order_run_scheduled(now=now)  # the next tick of the same period

    assert bought.success, bought.error
    assert BuyOrder.objects.get().status == "completed"


def test_fee_settings_are_validated_and_audited(config):
    for field, value, code in [("max_fee_per_gas", "0", "out_of_range"), ("max_fee_per_gas", "NaN", "invalid"),
                               ("priority_fee_per_gas", "-1", "out_of_range"),
                               ("max_fee_per_gas", "1.0001", "max_decimal_places"),
                               ("tx_deadline_seconds", "5", "out_of_range"), ("tx_deadline_seconds", "1e3", "invalid"),
                               ("replace_after_seconds", True, "invalid"), ("replace_after_seconds", "١٢٠", "invalid")]:
        with pytest.raises(ValidationError) as raised:
            buy_order_config_update(**{field: value})
        assert field in raised.value.message_dict, (field, value)
        if code != "invalid":
            assert raised.value.error_dict[field][0].code == code
    with pytest.raises(ValidationError) as raised:
        buy_order_config_update(max_fee_per_gas="1", priority_fee_per_gas="2")
    assert raised.value.error_dict["priority_fee_per_gas"][0].code == "priority_above_max_fee"
    assert not BuyOrderConfigChange.objects.exists()

    buy_order_config_update(max_fee_per_gas="30", tx_deadline_seconds="300", replace_after_seconds=60)

    assert BuyOrderConfigChange.objects.get().changes == {
        "max_fee_per_gas": {"old": "100.000", "new": "30.000"},
        "tx_deadline_seconds": {"old": "600", "new": "300"},
        "replace_after_seconds": {"old": "180", "new": "60"}}


def test_fee_settings_over_the_api(config, api_client):
    from tests.factories import UserFactory

    api_client.force_authenticate(UserFactory(is_staff=True, is_superuser=True))
    for body in ({"max_fee_per_gas": "abc"}, {"max_fee_per_gas": "-1"}, {"tx_deadline_seconds": "1.5"},
                 {"replace_after_seconds": 5}, {"priority_fee_per_gas": "500", "max_fee_per_gas": "20"}):
        bad = api_client.patch("/api/tokens/settings/", body, format="json")
        assert bad.status_code == 400, body
    assert not BuyOrderConfigChange.objects.exists()

    good = api_client.patch("/api/tokens/settings/", {"max_fee_per_gas": "20.5", "replace_after_seconds": 120},
                            format="json")

    assert good.status_code == 200, good.json()
    shown = api_client.get("/api/tokens/settings/").json()
    assert (shown["max_fee_per_gas"], shown["replace_after_seconds"], shown["tx_deadline_seconds"]) == \
        ("20.500", 120, 600)
    assert set(BuyOrderConfigChange.objects.get().changes) == {"max_fee_per_gas", "replace_after_seconds"}


# --- The deadline -----------------------------------------------------------------------------------


def test_the_swap_deadline_is_the_wall_clock_plus_the_setting(config, chain):
    buy_order_config_update(tx_deadline_seconds=120)
    revenue_track(source="other", amount="10000")
    # The chain's clock runs an hour ahead of the wall clock (tests.chain_clock: the tests' wall).
    chain.w3.provider.ethereum_tester.time_travel(chain_clock.now() + 3600)
    mine(chain)
    price_observe()  # a TWAP window on the chain's clock (only the chain moves on)
    chain.w3.provider.ethereum_tester.time_travel(chain.w3.eth.get_block("latest")["timestamp"] + 1801)
    mine(chain)

    started = chain_clock.now()
    result = buy_order_execute()

    assert not result.success and result.code == "failed"
    assert result.error.startswith("Expired")  # past the wall-clock deadline on the chain's clock
    swap = swap_rows(BuyOrder.objects.get())[0]
    router = chain.w3.eth.contract(address=chain.router, abi=load_artifact("Router").abi)
    _, args = router.decode_function_input(swap.data)
    assert started + 120 <= args["deadline"] <= chain_clock.now() + 120
    assert swap.status == "reverted"
    assert available_revenue() == Decimal("1000.00")


def test_a_swap_mined_after_its_deadline_is_reconciled_as_expired(config, chain, sleeps):
    revenue_track(source="other", amount="10000")
    approve_router(chain)
    use_client(chain)
    hold_transactions(chain)
    before = chain.client().balances()

    result = buy_order_execute()  # sent, never mined while it waits

    assert result.code == "unknown_outcome"
    order = BuyOrder.objects.get()
    _, args = chain.w3.eth.contract(abi=load_artifact("Router").abi).decode_function_input(swap_rows(order)[0].data)
    chain.w3.provider.ethereum_tester.time_travel(args["deadline"] + 60)
    mine(chain)

    order = buy_order_reconcile(order=order)

    assert order.status == "failed" and order.error.startswith("Expired")
    assert swap_rows(order)[0].status == "reverted"
    assert chain.client().balances().zar == before.zar
    assert available_revenue() == Decimal("1000.00")


# --- Replacement ------------------------------------------------------------------------------------


def stuck_order(chain) -> BuyOrder:
    revenue_track(source="other", amount="10000")
    approve_router(chain)
    hold_transactions(chain)
    result = buy_order_execute()
    assert result.code == "unknown_outcome", result
    order = BuyOrder.objects.get()
    assert order.status == "pending" and len(swap_rows(order)) == 1
    return order


def test_a_stuck_swap_is_replaced_and_the_replacement_mined_is_recorded_once(config, chain, sleeps):
    use_client(chain)
    before = chain.client().balances()
    order = stuck_order(chain)
    [original] = swap_rows(order)
    assert buy_order_reconcile(order=order).status == "pending"  # not stuck long enough yet
    assert len(swap_rows(order)) == 1
    make_stuck(original)

    assert buy_order_reconcile(order=order).status == "pending"

    original, replacement = swap_rows(order)
    assert (replacement.nonce, replacement.attempt) == (original.nonce, 1)
    assert replacement.max_fee_per_gas >= original.max_fee_per_gas * Decimal("1.125")
    assert replacement.max_priority_fee_per_gas >= original.max_priority_fee_per_gas * Decimal("1.125")
    assert original.replaced_by_id == replacement.pk and replacement.status == "sent"
    assert BuyOrder.objects.get().tx_hash == replacement.tx_hash

    mine(chain)
    order = buy_order_reconcile(order=order)
    again = buy_order_reconcile(order=order)

    assert order.status == again.status == "completed" and order.tx_hash == replacement.tx_hash
    original, replacement = swap_rows(order)
    assert (original.status, replacement.status) == ("dropped", "mined")
    assert before.zar - chain.client().balances().zar == Decimal("1000")  # once
    assert order.tokens_received > 0


class MineBeforeSending(Web3Middleware):
    """The original is mined just before its replacement reaches the node (a real race)."""

    armed = False

    def wrap_make_request(self, make_request):
        def request(method, params):
            if method == "eth_sendRawTransaction" and MineBeforeSending.armed:
                MineBeforeSending.armed = False
                make_request("evm_mine", [])
            return make_request(method, params)

        return request


def test_when_the_original_is_mined_first_reconciliation_records_it_once(config, chain, sleeps):
    w3 = Web3(chain.w3.provider)
    w3.middleware_onion.add(MineBeforeSending)
    use_client(chain, w3)
    before = chain.client().balances()
    order = stuck_order(chain)
    [original] = swap_rows(order)
    make_stuck(original)
    MineBeforeSending.armed = True

    order = buy_order_reconcile(order=order)  # the replacement is refused: its nonce is used
    if order.status == "pending":
        order = buy_order_reconcile(order=order)

    assert order.status == "completed" and order.tx_hash == original.tx_hash
    original, replacement = swap_rows(order)
    assert original.status == "mined" and replacement.status == "send_failed"
    assert "nonce" in replacement.error.lower()
    assert before.zar - chain.client().balances().zar == Decimal("1000")
    assert buy_order_reconcile(order=order).tx_hash == original.tx_hash


def test_a_bump_above_the_cap_is_recorded_and_waits(config, chain, sleeps):
    use_client(chain)
    order = stuck_order(chain)
    [original] = swap_rows(order)
    make_stuck(original)
    cap = Decimal(original.max_fee_per_gas) / GWEI  # the bump would exceed it
    BuyOrderConfig.objects.update(max_fee_per_gas=cap.quantize(Decimal("0.001")), priority_fee_per_gas=0)

    assert buy_order_reconcile(order=order).status == "pending"

    [original] = swap_rows(order)
    assert "gas above the cap" in original.error and original.status == "sent"
    mine(chain)
    assert buy_order_reconcile(order=order).status == "completed"


@pytest.mark.django_db(transaction=True)
def test_the_buy_replaces_its_own_stuck_swap_while_it_waits(chain):
    revenue_track(source="other", amount="10000")
    approve_router(chain)
    use_client(chain, receipt_timeout=30)
    BuyOrderConfig.objects.update(replace_after_seconds=1)
    hold_transactions(chain)
    results = []
    buyer = threading.Thread(target=lambda: (results.append(buy_order_execute()), connection.close()))
    buyer.start()
    deadline = time.monotonic() + 20
    while Tx.objects.filter(purpose="swap", status="sent").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    mine(chain)
    buyer.join(timeout=30)

    [result] = results
    assert result.success, result.error
    original, replacement = Tx.objects.filter(purpose="swap").order_by("attempt")
    assert (original.status, replacement.status) == ("dropped", "mined")
    assert result.transaction_hash == replacement.tx_hash == BuyOrder.objects.get().tx_hash


def test_a_retry_never_signs_a_second_swap_beside_one_the_node_dropped(config, chain, monkeypatch):
    """The node took the swap, then dropped it from its pool (evicted, as a busy node does with a
    low fee, or a reorganised block): the buy's retry must not sign a second swap with the next
    nonce -- the first could still be mined, and then both would be. The order stays pending and
    the sweep replaces the lost swap on its own nonce: one swap, paid once."""
    use_client(chain)
    before = chain.client().balances()
    nonce_before = chain.w3.eth.get_transaction_count(chain.treasury_address)
    pool = chain.w3.provider.ethereum_tester
    evicted: list = []

    def evict_then_pause(seconds: float) -> None:
        if not evicted:  # eth-tester has no eviction call: empty its pool as a node's eviction would
            evicted.extend(pool._pending_transactions)
            pool._pending_transactions.clear()

    monkeypatch.setattr(runtime, "retry_sleep", evict_then_pause)

    order = stuck_order(chain)  # the retries find the swap gone: pending, unknown outcome, ONE swap signed

    [swap] = swap_rows(order)
    assert len(evicted) == 1 and chain.client().lookup(swap.tx_hash)[0] == "unknown"
    assert "not mined yet (unknown)" in order.error
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Tx.objects.filter(pk=swap.pk).update(created_at=an_hour_ago, sent_at=an_hour_ago)
    BuyOrder.objects.filter(pk=order.pk).update(created_at=an_hour_ago)

    assert chain_sweep()["replaced"] == 1  # the same nonce, fees bumped (an evicted fee was too low)
    mine(chain)
    assert chain_sweep()["orders_settled"] == 1

    order.refresh_from_db()
    swap, replacement = swap_rows(order)
    assert (swap.status, replacement.status, replacement.nonce) == ("dropped", "mined", swap.nonce)
    assert replacement.max_fee_per_gas >= swap.max_fee_per_gas * Decimal("1.125")
    assert order.status == "completed" and order.tx_hash == replacement.tx_hash
    assert before.zar - chain.client().balances().zar == Decimal("1000")  # once
    assert chain.w3.eth.get_transaction_count(chain.treasury_address) == nonce_before + 2  # approve + the swap


def past_the_deadline(chain, swap: Tx) -> int:
    """Move the chain and the wall clock past ``swap``'s deadline; returns the deadline."""
    deadline = chain.client().swap_deadline(swap.data)
    _, args = chain.w3.eth.contract(abi=load_artifact("Router").abi).decode_function_input(swap.data)
    assert deadline == args["deadline"]
    chain.w3.provider.ethereum_tester.time_travel(deadline + 60)  # the next block's time; nothing mined
    chain_clock.advance(max(0, deadline + 60 - runtime.wall_clock()))
    assert runtime.wall_clock() > deadline
    return deadline


def test_a_swap_still_pending_past_its_deadline_is_cancelled_not_replaced(config, chain, sleeps):
    use_client(chain)
    before = chain.client().balances()
    nonce_before = chain.w3.eth.get_transaction_count(chain.treasury_address)
    order = stuck_order(chain)
    [swap] = swap_rows(order)
    make_stuck(swap)
    past_the_deadline(chain, swap)

    assert buy_order_reconcile(order=order).status == "pending"  # cancelled, not mined yet

    swap.refresh_from_db()
    cancel = Tx.objects.get(purpose="cancel")
    assert swap.replaced_by_id == cancel.pk and swap.status == "sent"
    assert (cancel.nonce, cancel.attempt, cancel.buy_order_id) == (swap.nonce, 1, order.pk)
    assert (cancel.to_address, cancel.value, cancel.gas_limit, cancel.data) == (chain.treasury_address, 0, 21_000, "0x")
    assert cancel.max_fee_per_gas >= swap.max_fee_per_gas * Decimal("1.125")
    assert cancel.status == "sent" and len(swap_rows(order)) == 1  # no second swap was signed
    assert BuyOrder.objects.get().tx_hash == swap.tx_hash  # the order's link stays on its swap

    mine(chain)
    order = buy_order_reconcile(order=order)
    again = buy_order_reconcile(order=order)

    assert order.status == again.status == "failed" and order.error.startswith("Expired")
    assert cancel.tx_hash in order.error and "nothing was bought" in order.error
    swap.refresh_from_db()
    cancel.refresh_from_db()
    assert (swap.status, cancel.status) == ("dropped", "mined")
    receipt = chain.w3.eth.get_transaction_receipt(cancel.tx_hash)
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert chain.w3.eth.get_transaction_count(chain.treasury_address) == nonce_before + 2  # approve + the nonce
    assert chain.client().balances().zar == before.zar  # nothing swapped
    assert available_revenue() == Decimal("1000.00")  # the amount is free again


def test_the_sweep_cancels_an_expired_swap_and_bumps_a_stuck_cancellation(config, chain, sleeps):
    use_client(chain)
    order = stuck_order(chain)
    [swap] = swap_rows(order)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Tx.objects.filter(pk=swap.pk).update(created_at=an_hour_ago, sent_at=an_hour_ago)
    BuyOrder.objects.filter(pk=order.pk).update(created_at=an_hour_ago)

    assert chain_sweep()["replaced"] == 1  # before its deadline a stuck swap is replaced by a swap
    swap, bumped_swap = swap_rows(order)
    assert not Tx.objects.filter(purpose="cancel").exists()
    Tx.objects.filter(pk=bumped_swap.pk).update(created_at=an_hour_ago, sent_at=an_hour_ago)
    past_the_deadline(chain, bumped_swap)

    counts = chain_sweep()

    assert (counts["cancelled"], counts["replaced"]) == (1, 0)
    cancel = Tx.objects.get(purpose="cancel")
    assert cancel.attempt == 2 and bumped_swap.tx_hash in Tx.objects.get(replaced_by=cancel).tx_hash
    Tx.objects.filter(pk=cancel.pk).update(created_at=an_hour_ago, sent_at=an_hour_ago)

    counts = chain_sweep()  # the cancellation, stuck too, is bumped as a cancellation

    assert counts["replaced"] == 1 and counts["orders_settled"] == 0
    first_cancel, second_cancel = Tx.objects.filter(purpose="cancel").order_by("attempt")
    assert (second_cancel.attempt, second_cancel.gas_limit, second_cancel.value) == (3, 21_000, 0)
    assert second_cancel.max_fee_per_gas >= first_cancel.max_fee_per_gas * Decimal("1.125")
    mine(chain)

    counts = chain_sweep()

    assert counts["orders_settled"] == 1
    order.refresh_from_db()
    assert order.status == "failed" and second_cancel.tx_hash in order.error
    assert list(Tx.objects.filter(nonce=swap.nonce).order_by("attempt").values_list("status", flat=True)) == [
        "dropped", "dropped", "dropped", "mined"]


def test_a_lost_swap_fails_its_order_only_past_the_deadline_it_carries_then_its_nonce_is_cancelled(
        config, chain, monkeypatch):
    """The node lost the swap (evicted). Lowering ``tx_deadline_seconds`` afterwards does not make
    the order fail early: the swap still carries its own deadline and could be mined until then.
    Past it (and a minute for clock skew) the order fails and its amount is released; the sweep
    then fills the swap's nonce with a cancellation instead of sending a swap that can only
    revert."""
    use_client(chain)
    before = chain.client().balances()
    pool = chain.w3.provider.ethereum_tester
    monkeypatch.setattr(runtime, "retry_sleep", lambda seconds: pool._pending_transactions.clear())
    order = stuck_order(chain)
    [swap] = swap_rows(order)
    assert chain.client().lookup(swap.tx_hash)[0] == "unknown"
    BuyOrderConfig.objects.update(tx_deadline_seconds=30)  # after the signing: the swap keeps 600
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Tx.objects.filter(pk=swap.pk).update(created_at=an_hour_ago, sent_at=an_hour_ago)
    BuyOrder.objects.filter(pk=order.pk).update(created_at=an_hour_ago)  # stale

    assert buy_order_reconcile(order=order).status == "pending"  # its deadline is 600 s after signing

    deadline = chain.client().swap_deadline(swap.data)
    chain_clock.advance(deadline + 30 - runtime.wall_clock())
    assert buy_order_reconcile(order=order).status == "pending"  # within the minute's margin
    chain_clock.advance(31)
    order = buy_order_reconcile(order=order)

    assert order.status == "failed" and order.error.startswith("Abandoned")
    assert available_revenue() == Decimal("1000.00")

    counts = chain_sweep()

    assert (counts["cancelled"], counts["rebroadcast"]) == (1, 0)
    cancel = Tx.objects.get(purpose="cancel")
    assert (cancel.nonce, cancel.gas_limit, cancel.value) == (swap.nonce, 21_000, 0)
    mine(chain)
    Tx.objects.filter(pk=cancel.pk).update(created_at=an_hour_ago)  # the sweep looks at older ones
    assert chain_sweep()["mined"] == 1
    swap.refresh_from_db()
    assert (swap.status, Tx.objects.get(purpose="cancel").status) == ("dropped", "mined")
    assert chain.client().balances().zar == before.zar  # nothing swapped


def test_a_swap_deadline_is_read_only_from_a_swap(chain):
    client = chain.client()
    assert client.swap_deadline("0x") is None
    assert client.swap_deadline("0xdeadbeef" + "00" * 64) is None  # not a function of the router
    swap = chain.w3.eth.contract(abi=load_artifact("Router").abi).encode_abi(
        "swapExactTokensForTokens", [1, 0, [chain.zar_token, chain.azr_token], chain.treasury_address, 1234])
    assert client.swap_deadline(swap) == 1234
    assert client.swap_deadline(swap[:-64]) is None  # cut short


# --- Nonces -----------------------------------------------------------------------------------------


def fake_signed(nonce: int, n: int) -> SignedTx:
    address = Web3.to_checksum_address("0x" + "11" * 20)
    return SignedTx(tx_hash="0x" + f"{n:064x}", raw=b"\x02", sender=address, chain_id=1, nonce=nonce, to=address,
                    data="0x", gas=21_000, value=0, max_fee_per_gas=2, max_priority_fee_per_gas=1)


@pytest.mark.django_db(transaction=True)
def test_the_nonce_row_never_hands_out_a_nonce_twice_under_20_threads():
    address = Web3.to_checksum_address("0x" + "11" * 20)
    counter = iter(range(1, 10**6))
    counter_lock = threading.Lock()

    def sign(nonce: int) -> SignedTx:
        with counter_lock:
            n = next(counter)
        return fake_signed(nonce, n)

    def work() -> None:
        for _ in range(5):
            tx = DbLedger().record(sender=address, chain_id=1, pending_nonce=0, sign=sign, purpose="other")
            DbLedger().sent(tx)

    _, errors = run_concurrently(work, 20)

    assert errors == []
    assert sorted(Tx.objects.values_list("nonce", flat=True)) == list(range(100))
    assert ChainSender.objects.get().next_nonce == 100


def test_the_ledger_follows_a_node_ahead_fills_refused_nonces_and_never_goes_back(db):
    address = Web3.to_checksum_address("0x" + "11" * 20)
    ledger = DbLedger()

    def record(pending: int, n: int) -> SignedTx:
        return ledger.record(sender=address, chain_id=1, pending_nonce=pending,
                             sign=lambda nonce: fake_signed(nonce, n), purpose="other")

    first = record(7, 1)  # another wallet used the key: the node is ahead
    ledger.sent(first)
    refused = record(0, 2)
    ledger.send_failed(refused, "underpriced")
    assert (first.nonce, refused.nonce) == (7, 8)
    assert record(0, 3).nonce == 8  # the refused nonce is taken again: no gap
    assert record(0, 4).nonce == 9  # a node behind (a lagging replica) does not take the row back
    assert ChainSender.objects.get().next_nonce == 10


# --- Two processes, one key --------------------------------------------------------------------------


@pytest.fixture
def node(tmp_path):
    """A real local node over HTTP (the embedded chain served by tokens.chain.node) in a thread."""
    from tokens.chain.node import start_node

    info_file = tmp_path / "chain.json"
    node = start_node("127.0.0.1", 0, info_file)
    thread = threading.Thread(target=node.serve_forever, daemon=True)
    thread.start()
    yield node, info_file
    node.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def workers(node, tmp_path, monkeypatch):
    """Two Celery worker processes on Redis, each its own process, same database and node."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import quote

    from celery import Celery
    from django.conf import settings as django_settings

    chain_node, info_file = node
    redis_url = os.environ["TEST_REDIS_URL"]
    db = django_settings.DATABASES["default"]
    database_url = (f"postgresql://{quote(db['USER'] or '')}{':' + quote(db['PASSWORD']) if db['PASSWORD'] else ''}"
                    f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    queue = f"tx-layer-test-{os.getpid()}"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_ALLOW_INSECURE_KEY": "1",
           "DATABASE_URL": database_url, "CELERY_BROKER_URL": redis_url, "WEB3_PROVIDER_URI": chain_node.provider_uri,
           "CHAIN_INFO_FILE": str(info_file), "CHAIN_ROUTER_ADDRESS": "", "CHAIN_AZR_TOKEN_ADDRESS": "",
           "CHAIN_ZAR_TOKEN_ADDRESS": "", "CHAIN_TREASURY_PRIVATE_KEY": "", "CELERY_TASK_ALWAYS_EAGER": "0"}
    processes = []
    for name in ("w1", "w2"):
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed below
        processes.append((subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "--result-backend", redis_url, "worker", "--pool", "solo",
             "-Q", queue, "-n", f"{name}-{os.getpid()}@localhost", "--include", "tests.tokens.tx_worker_tasks",
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)  # Celery prefers it to any broker_url given
    app = Celery("tx-layer-test")
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_default_queue=queue,
                    broker_connection_retry_on_startup=True)
    try:
        deadline = time.monotonic() + 90
        while len(app.control.ping(timeout=1) or []) < 2:
            assert time.monotonic() < deadline, "the workers did not start: " + " | ".join(
                (tmp_path / f"{name}.log").read_text()[-2000:] for name in ("w1", "w2"))
            assert all(process.poll() is None for process, _ in processes), "a worker exited"
        yield app, queue
    finally:
        for process, _ in processes:
            process.terminate()
        for process, log in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_sending_for_one_key_never_share_a_nonce(node, workers):
    chain_node, _ = node
    app, queue = workers
    chain = chain_node.chain
    client = ChainClient(chain.config(provider_uri=chain_node.provider_uri))
    client.buy(amount=Decimal("100"), min_tokens_out=Decimal(0), ledger=DbLedger())  # AZR to burn
    first_nonce = chain.w3.eth.get_transaction_count(chain.treasury_address)
    zar_before = client.balances().zar

    results = [app.send_task("tests.tokens.buy_and_burn_for_key", args=[3], queue=queue) for _ in range(8)]
    # An in-process worker started by an earlier test (start_worker) leaves Celery believing this
    # process is a worker, where a blocking get() is refused; this test is the client.
    with allow_join_result():
        outcomes = [result.get(timeout=240) for result in results]

    assert len({outcome["pid"] for outcome in outcomes}) == 2  # both processes sent
    hashes = [tx_hash for outcome in outcomes for tx_hash in outcome["hashes"]]
    assert len(hashes) == len(set(hashes)) == 48  # 24 swaps and 24 burns
    last_nonce = chain.w3.eth.get_transaction_count(chain.treasury_address)
    rows = Tx.objects.filter(nonce__gte=first_nonce)
    assert sorted(rows.values_list("nonce", flat=True)) == list(range(first_nonce, last_nonce))  # each once
    assert set(rows.values_list("status", flat=True)) == {"mined"}
    assert set(hashes) <= set(rows.values_list("tx_hash", flat=True))
    assert not Tx.objects.filter(status="send_failed").exists()  # no "nonce too low"
    for tx_hash in hashes:
        assert chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    assert zar_before - client.balances().zar == 24  # every buy paid once


# --- The sweep ---------------------------------------------------------------------------------------


def test_the_sweep_replaces_a_stuck_transaction_of_any_purpose_and_records_the_mined_one(config, chain, sleeps):
    from tokens.tasks import chain_tx_sweep

    revenue_track(source="other", amount="10000")
    assert buy_order_execute(amount="200").success  # the treasury holds AZR to burn
    client = use_client(chain)
    hold_transactions(chain)
    with pytest.raises(ChainTransportError):  # not mined while it waited
        client.burn(Decimal("1"), ledger=DbLedger())
    stuck = Tx.objects.get(purpose="burn")
    assert stuck.status == "sent"
    assert chain_sweep()["replaced"] == 0  # not pending long enough
    Tx.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(hours=1))
    make_stuck(stuck)

    assert chain_sweep()["replaced"] == 1

    stuck.refresh_from_db()
    replacement = stuck.replaced_by
    assert replacement.nonce == stuck.nonce and replacement.max_fee_per_gas > stuck.max_fee_per_gas
    mine(chain)
    Tx.objects.filter(pk=replacement.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert chain_tx_sweep()["mined"] == 1  # the beat task
    assert chain_sweep()["mined"] == 0  # once
    assert list(Tx.objects.filter(purpose="burn").order_by("attempt").values_list("status", flat=True)) == [
        "dropped", "mined"]
    assert chain.w3.eth.get_transaction_receipt(replacement.tx_hash)["status"] == 1


def test_the_sweep_is_a_seeded_beat_task(db):
    from django_celery_beat.models import PeriodicTask

    from tokens.defaults import CHAIN_SWEEP_NAME

    task = PeriodicTask.objects.get(name=CHAIN_SWEEP_NAME)
    assert task.task == "tokens.chain_tx_sweep" and task.enabled
    assert (task.interval.every, task.interval.period) == (1, "minutes")
