"""Buy-orders on the real embedded chain: the spec's examples, limits, swaps, reverts, retries.

Only transport failures are injected, at the provider boundary (a web3 middleware).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask
from web3 import Web3
from web3.middleware import Web3Middleware

from tokens import services
from tokens.chain import ChainClient
from tokens.chain.units import from_base_units
from tokens.models import BuyOrder, BuyOrderConfigChange, Revenue
from tokens.selectors import available_revenue, buy_order_history, buy_order_metrics
from tokens.services import (
    buy_order_config_update,
    buy_order_execute,
    buy_order_preview,
    buy_order_reconcile,
    revenue_track,
)
from tokens.signals import buy_order_completed
from tokens.totals import buy_order_totals_apply

from .conftest import move_spot, swap_azr_for_zar

pytestmark = pytest.mark.django_db
TRANSFER_TOPIC = Web3.keccak(text="Transfer(address,address,uint256)")


def used_order(amount: str, status: str = BuyOrder.Status.COMPLETED, **extra) -> BuyOrder:
    """A buy-order row as history (no chain), using `amount` ZAR."""
    fields = {"amount": Decimal(amount), "quoted_price": Decimal("0.5"), "expected_tokens": Decimal(amount) * 2,
              "min_tokens": Decimal(amount), "max_slippage": Decimal("0.01"), "disposition": "hold",
              "trigger": BuyOrder.Trigger.MANUAL, "status": status}
    if status == BuyOrder.Status.COMPLETED:
        fields.update(tokens_received=Decimal(amount) * 2, price_per_token=Decimal("0.5"),
                      tx_hash="0x" + f"{BuyOrder.objects.count() + 1:064x}")
    fields.update(extra)
    order = BuyOrder.objects.create(**fields)
    buy_order_totals_apply(order=order, old_status=BuyOrder.Status.PENDING)  # as if it settled
    return order


def azr_received_in_receipt(chain, tx_hash: str) -> Decimal:
    receipt = chain.w3.eth.get_transaction_receipt(tx_hash)
    topic = bytes(12) + bytes.fromhex(chain.treasury_address[2:])
    units = sum(int.from_bytes(log["data"], "big") for log in receipt["logs"]
                if log["address"] == chain.azr_token and log["topics"][0] == TRANSFER_TOPIC
                and log["topics"][2] == topic)
    return from_base_units(units, 18)


# --- Available revenue (spec §2) -------------------------------------------------------------


def test_available_revenue_seed_example_is_700(config):
    revenue_track(source="course_sale", amount="5000")
    revenue_track(source="subscription", amount="2000")

    assert available_revenue() == Decimal("700.00")


def test_available_revenue_with_2000_used_is_800(config):
    revenue_track(source="other", amount="10000")
    used_order("2000")

    assert available_revenue() == Decimal("800.00")


def test_pending_orders_reserve_and_failed_ones_do_not(config):
    revenue_track(source="other", amount="10000")
    used_order("1000", status=BuyOrder.Status.PENDING)
    used_order("1000")
    used_order("5000", status=BuyOrder.Status.FAILED)

    assert available_revenue() == Decimal("800.00")


def test_available_revenue_rounds_down_to_the_cent(config):
    revenue_track(source="other", amount="1234.5699")

    assert available_revenue() == Decimal("123.45")


# --- Refusals: no history row -------------------------------------------------------------------


def test_below_the_minimum_is_refused_without_a_row(config):
    revenue_track(source="other", amount="500")  # 10% = 50 < 100

    result = buy_order_execute()

    assert not result.success
    assert "50.00" in result.error and "100" in result.error
    assert BuyOrder.objects.count() == 0


def test_disabled_is_refused_without_a_row(config):
    revenue_track(source="other", amount="10000")
    buy_order_config_update(enabled=False)

    result = buy_order_execute()

    assert not result.success and result.code == "disabled"
    assert "disabled" in result.error
    assert BuyOrder.objects.count() == 0


@pytest.mark.parametrize("price", ["0", "-1", "NaN", "abc", 0.5])
def test_a_bad_price_is_refused_with_a_validation_error(config, price):
    revenue_track(source="other", amount="10000")

    with pytest.raises(ValidationError, match="price"):
        buy_order_execute(price_per_token=price)

    assert BuyOrder.objects.count() == 0


@pytest.mark.parametrize("amount", ["0", "-5", "Infinity", "1e-9", 100.0])
def test_a_bad_amount_is_refused_with_a_validation_error(config, amount):
    with pytest.raises(ValidationError, match="amount"):
        buy_order_execute(amount=amount, price_per_token="0.5")
    assert BuyOrder.objects.count() == 0


def test_an_explicit_amount_is_used_even_beyond_the_revenue_share(config, chain):
    revenue_track(source="other", amount="1000")  # available: 100.00

    result = buy_order_execute(amount="250")

    assert result.success, result.error
    assert result.rand_spent == Decimal("250")
    assert available_revenue() == Decimal("75.00")  # (1000 - 250) x 10%


# --- Real swaps on the embedded chain -----------------------------------------------------------


def test_a_successful_swap_matches_the_receipt(config, chain, django_capture_on_commit_callbacks):
    revenue_track(source="course_sale", amount="5000")
    revenue_track(source="subscription", amount="2000")
    client = chain.client()
    before = client.balances()
    quoted = client.quote_price()
    completed = []
    buy_order_completed.connect(lambda sender, buy_order, **kw: completed.append(buy_order.pk), weak=False,
                                dispatch_uid="test-completed")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = buy_order_execute()
    finally:
        buy_order_completed.disconnect(dispatch_uid="test-completed")

    assert result.success, result.error
    order = BuyOrder.objects.get()
    assert completed == [order.pk]
    received = azr_received_in_receipt(chain, result.transaction_hash)
    assert result.tokens_acquired == received
    assert order.tokens_received_exact == str(received)
    assert order.tokens_received == received.quantize(Decimal("1e-8"), rounding="ROUND_DOWN")
    assert client.balances().azr - before.azr == received
    assert before.zar - client.balances().zar == Decimal("700")
    mined = chain.w3.eth.get_transaction_receipt(result.transaction_hash)
    assert (order.status, order.tx_hash, order.block_number, order.gas_used) == (
        "completed", result.transaction_hash, mined["blockNumber"], mined["gasUsed"])
    assert order.amount == result.rand_spent == Decimal("700.00")
    assert order.price_per_token == result.price_per_token == (Decimal("700") / received).quantize(Decimal("1e-8"))
    # Sized at the TWAP (a quiet pool: the spot), fee and impact included -- what the spot quote says too.
    assert order.twap_price and order.spot_price and abs(order.twap_price / order.spot_price - 1) < Decimal("1e-6")
    assert order.quoted_price == (Decimal("700") / order.expected_tokens).quantize(Decimal("1e-8"))
    assert abs(order.quoted_price / quoted - 1) < Decimal("0.0001")
    assert order.min_tokens == (order.expected_tokens * Decimal("0.99")).quantize(Decimal("1e-8"), "ROUND_DOWN")
    assert received >= order.min_tokens
    assert order.trigger == "manual" and order.period_key is None and order.completed_at
    # The used revenue is no longer available: (7000 - 700) x 10%.
    assert available_revenue() == Decimal("630.00")


def test_the_amount_is_capped_at_the_maximum(config, chain):
    revenue_track(source="other", amount="100000")  # 10% = 10,000
    buy_order_config_update(max_buy_amount="2500")

    result = buy_order_execute()

    assert result.success, result.error
    assert result.rand_spent == Decimal("2500")
    assert BuyOrder.objects.get().amount == Decimal("2500")


def test_a_given_amount_and_price_are_used(config, chain):
    revenue_track(source="other", amount="100000")

    # Within max_price_deviation of the TWAP's ~0.5015 (a price far from it is refused: test_slices_guarding).
    result = buy_order_execute(amount="300", price_per_token="0.50")

    assert result.success, result.error
    order = BuyOrder.objects.get()
    assert order.amount == Decimal("300") and order.quoted_price == Decimal("0.50")
    expected = (Decimal("300") / Decimal("0.50")).quantize(Decimal("1e-8"), "ROUND_DOWN")
    assert order.expected_tokens == expected
    assert order.min_tokens == (expected * Decimal("0.99")).quantize(Decimal("1e-8"), "ROUND_DOWN")


def test_burn_disposition_burns_the_bought_tokens(config, chain):
    revenue_track(source="other", amount="10000")
    buy_order_config_update(disposition="burn")
    azr_before = chain.client().balances().azr

    result = buy_order_execute()

    assert result.success, result.error
    order = BuyOrder.objects.get()
    assert order.disposition == "burn" and order.burn_tx_hash
    assert chain.w3.eth.get_transaction_receipt(order.burn_tx_hash)["status"] == 1
    assert chain.client().balances().azr == azr_before


def beyond_the_slippage(chain) -> int:
    """The spot 1.5% above the TWAP (within the 2% deviation), the slippage 0.5%: the minimum taken
    from the TWAP is more than the pool gives, and the swap reverts. The AZR the mover bought."""
    buy_order_config_update(max_slippage="0.005")
    return move_spot(chain, "0.015")


def test_a_reverted_swap_beyond_the_slippage_is_failed_with_its_reason(config, chain, sleeps):
    revenue_track(source="other", amount="50000000")
    buy_order_config_update(revenue_percentage="1", max_buy_amount="50000000", max_price_impact="0.5")
    beyond_the_slippage(chain)
    before = chain.client().balances()

    result = buy_order_execute()

    assert not result.success
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in result.error
    order = BuyOrder.objects.get()
    assert order.status == "failed" and "INSUFFICIENT_OUTPUT_AMOUNT" in order.error
    assert order.tx_hash == result.transaction_hash
    assert chain.w3.eth.get_transaction_receipt(order.tx_hash)["status"] == 0
    assert order.attempts == 1 and sleeps == []  # not retried
    after = chain.client().balances()
    assert (after.zar, after.azr) == (before.zar, before.azr)
    assert available_revenue() == Decimal("50000000.00")  # a failed order reserves nothing


# --- Transport errors: retried, never paid twice -------------------------------------------------


def flaky_client(chain, method: str, failures: int) -> ChainClient:
    """A client whose first `failures` `method` requests fail as if the connection dropped."""

    class Flaky(Web3Middleware):
        left = failures

        def wrap_make_request(self, make_request):
            def request(rpc_method, params):
                if rpc_method == method and Flaky.left > 0:
                    Flaky.left -= 1
                    raise requests.ConnectionError(f"injected failure of {rpc_method}")
                return make_request(rpc_method, params)

            return request

    w3 = Web3(chain.w3.provider)
    w3.middleware_onion.add(Flaky)
    return ChainClient(chain.config(), w3=w3)


def test_a_transport_error_is_retried_then_succeeds(config, chain, sleeps):
    revenue_track(source="other", amount="10000")
    services.chain_client_set(flaky_client(chain, "eth_sendRawTransaction", failures=2))
    before = chain.client().balances()

    result = buy_order_execute()

    assert result.success, result.error
    assert sleeps == [1, 2]
    order = BuyOrder.objects.get()
    assert order.status == "completed" and order.attempts == 3
    assert before.zar - chain.client().balances().zar == Decimal("1000")  # paid once


def test_a_lost_receipt_is_found_on_retry_and_not_paid_twice(config, chain, sleeps):
    """The swap reached the chain but the answer was lost: the retry finds it by its hash."""
    revenue_track(source="other", amount="10000")
    services.chain_client_set(flaky_client(chain, "eth_getTransactionReceipt", failures=1))
    before = chain.client().balances()

    result = buy_order_execute()

    assert result.success, result.error
    assert sleeps == [1]
    assert before.zar - chain.client().balances().zar == Decimal("1000")  # once, not twice
    assert BuyOrder.objects.get().tx_hash == result.transaction_hash


def test_retries_exhausted_after_sending_leave_the_order_pending_then_reconcile(config, chain, sleeps):
    revenue_track(source="other", amount="10000")
    # The approve's receipt, the swap's receipt and every lookup fail.
    services.chain_client_set(flaky_client(chain, "eth_getTransactionReceipt", failures=100))

    result = buy_order_execute()

    assert not result.success and result.code == "unknown_outcome"
    assert sleeps == [1, 2, 4]
    order = BuyOrder.objects.get()
    assert order.status == "pending" and order.tx_hash and order.attempts == 4
    assert available_revenue() == Decimal("900.00")  # still reserved

    services.chain_client_set(chain.client())
    order = buy_order_reconcile(order=order)

    assert order.status == "completed"
    assert order.tokens_received_exact == str(azr_received_in_receipt(chain, order.tx_hash))


def test_an_unreachable_chain_fails_the_order_when_nothing_was_sent(config, chain, sleeps):
    revenue_track(source="other", amount="10000")
    services.chain_client_set(flaky_client(chain, "eth_getTransactionCount", failures=100))

    result = buy_order_execute(price_per_token="0.5")

    assert not result.success and result.code == "failed"
    assert sleeps == [1, 2, 4]
    order = BuyOrder.objects.get()
    assert order.status == "failed" and "could not be reached" in order.error
    assert available_revenue() == Decimal("1000.00")


# --- Metrics, history, preview ----------------------------------------------------------------------


def test_metrics_after_a_mix_of_outcomes(config, chain, django_assert_max_num_queries):
    revenue_track(source="other", amount="50000000")
    buy_order_config_update(revenue_percentage="1", max_buy_amount="50000000", max_price_impact="0.5")
    moved = beyond_the_slippage(chain)
    failed = buy_order_execute()  # 50 M: beyond the slippage, reverted
    swap_azr_for_zar(chain, moved)
    first = buy_order_execute(amount="1000")
    second = buy_order_execute(amount="3000")
    assert not failed.success and first.success and second.success

    with django_assert_max_num_queries(2):
        metrics = buy_order_metrics()

    tokens = BuyOrder.objects.get(pk=first.order_id).tokens_received + \
        BuyOrder.objects.get(pk=second.order_id).tokens_received
    assert metrics["total_revenue_tracked"] == Decimal("50000000")
    assert metrics["total_tokens_acquired"] == tokens
    assert metrics["total_rand_spent"] == Decimal("4000")
    assert metrics["average_price_per_token"] == (Decimal("4000") / tokens).quantize(Decimal("1e-8"))
    assert metrics["execution_count"] == 3
    assert metrics["success_rate"] == Decimal("0.6667")
    assert metrics["last_execution_time"] == BuyOrder.objects.get(pk=second.order_id).created_at

    rows, total = buy_order_history(limit=2)
    assert total == 3 and [row.pk for row in rows] == [second.order_id, first.order_id]
    rows, total = buy_order_history(status="failed")
    assert total == 1 and rows[0].pk == failed.order_id
    rows, total = buy_order_history(limit=1, offset=2)
    assert total == 3 and rows[0].pk == failed.order_id


def test_metrics_with_nothing(config):
    metrics = buy_order_metrics()

    assert metrics["execution_count"] == 0 and metrics["success_rate"] is None
    assert metrics["average_price_per_token"] is None and metrics["total_tokens_acquired"] == 0


def test_preview_says_what_would_be_bought_and_writes_nothing(config, chain):
    revenue_track(source="course_sale", amount="5000")
    revenue_track(source="subscription", amount="2000")
    counts = (BuyOrder.objects.count(), Revenue.objects.count(), BuyOrderConfigChange.objects.count(),
              PeriodicTask.objects.count())
    block = chain.w3.eth.block_number

    with CaptureQueriesContext(connection) as queries:
        preview = buy_order_preview()

    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    assert counts == (BuyOrder.objects.count(), Revenue.objects.count(), BuyOrderConfigChange.objects.count(),
                      PeriodicTask.objects.count())
    assert chain.w3.eth.block_number == block
    assert preview["would_execute"] and preview["amount"] == Decimal("700.00")
    price = chain.client().quote_price()
    assert abs(preview["price_per_token"] / price - 1) < Decimal("0.0001")  # the TWAP of a quiet pool
    assert preview["price_per_token"] == (Decimal("700") / preview["expected_tokens"]).quantize(Decimal("1e-8"))
    assert [s["amount"] for s in preview["slices"]] == [Decimal("700.00")]
    assert preview["slices"][0]["price_impact"] < Decimal("0.000001")
