"""The preview shows the fee figures a buy would use (base fee, priority fee, the max fee the
transaction would carry, the cap) and says the buy would defer when gas is above the cap -- in
the service, the API and the admin, on the embedded chain."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common import display
from tests.factories import UserFactory
from tokens.chain.tx import GWEI, FeeQuote, wei_to_gwei
from tokens.models import BuyOrder, ChainTransaction
from tokens.services import buy_order_config_update, buy_order_execute, buy_order_preview, revenue_track

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def staff_client(api_client):
    api_client.force_authenticate(UserFactory(is_staff=True, is_superuser=True))
    return api_client


def test_the_preview_shows_the_fees_the_buy_then_pays(config, chain):
    revenue_track(source="other", amount="7000")
    buy_order_config_update(max_fee_per_gas="50", priority_fee_per_gas="0.5")
    base_fee = chain.w3.eth.get_block("latest")["baseFeePerGas"]

    preview = buy_order_preview()

    assert preview["would_execute"], preview["reason"]
    assert preview["fees"] == {
        "base_fee": wei_to_gwei(base_fee), "priority_fee": Decimal("0.5"),
        "required": wei_to_gwei(base_fee + GWEI // 2),
        "max_fee": wei_to_gwei(min(2 * base_fee + GWEI // 2, 50 * GWEI)), "cap": Decimal("50"), "above_cap": False}
    # The figure shown is the one the transaction carries (no block was mined in between).
    result = buy_order_execute()
    assert result.success, result.error
    swap = ChainTransaction.objects.get(purpose="swap")
    assert swap.max_fee_per_gas == preview["fees"]["max_fee"] * GWEI
    assert swap.max_priority_fee_per_gas == GWEI // 2


def test_gas_above_the_cap_the_preview_says_the_buy_would_defer(config, chain):
    revenue_track(source="other", amount="7000")
    buy_order_config_update(max_fee_per_gas="0.01", priority_fee_per_gas="0.001")
    base_fee = chain.w3.eth.get_block("latest")["baseFeePerGas"]
    assert base_fee > GWEI // 100  # the embedded chain's base fee is above the cap

    preview = buy_order_preview()

    assert not preview["would_execute"]
    assert preview["reason"].startswith("Deferred: gas above the cap")
    assert "above max_fee_per_gas 0.01 gwei" in preview["reason"] and "base fee" in preview["reason"]
    fees = preview["fees"]
    assert fees["above_cap"] and fees["max_fee"] is None and fees["cap"] == Decimal("0.01")
    assert fees["base_fee"] == wei_to_gwei(base_fee) and fees["priority_fee"] == Decimal("0.001")
    assert preview["slices"] and preview["expected_tokens"]  # the plan is still shown
    # What the buy itself says, word for word; it spends nothing.
    result = buy_order_execute()
    assert not result.success and result.code == "gas_above_cap"
    assert result.error == preview["reason"]
    assert not BuyOrder.objects.exists() and not ChainTransaction.objects.exists()


def test_the_price_guard_refusal_comes_before_the_fee_refusal(config, chain):
    buy_order_config_update(max_fee_per_gas="0.01", priority_fee_per_gas="0.001", enabled=False)

    preview = buy_order_preview()

    assert not preview["would_execute"] and preview["reason"].startswith("Buy-orders are disabled")
    assert preview["fees"]["above_cap"]  # the figures are shown whatever the reason


def test_the_api_preview_carries_the_fee_figures(staff_client, chain):
    revenue_track(source="other", amount="7000")
    buy_order_config_update(max_fee_per_gas="50", priority_fee_per_gas="1")

    fees = staff_client.get("/api/tokens/buy-orders/preview/").json()["fees"]

    assert fees["cap"] == "50.000000000" and fees["priority_fee"] == "1.000000000" and fees["above_cap"] is False
    assert Decimal(fees["base_fee"]) > 0
    assert Decimal(fees["max_fee"]) == min(2 * Decimal(fees["base_fee"]) + 1, Decimal(50))

    buy_order_config_update(max_fee_per_gas="0.01", priority_fee_per_gas="0.001")
    body = staff_client.get("/api/tokens/buy-orders/preview/").json()

    assert body["would_execute"] is False and "gas above the cap" in body["reason"]
    assert body["fees"]["above_cap"] is True and body["fees"]["max_fee"] is None
    assert body["fees"]["cap"] == "0.010000000"


def test_the_admin_preview_shows_the_fees_and_the_deferral(operator_client, chain):
    revenue_track(source="other", amount="7000")
    buy_order_config_update(max_fee_per_gas="50", priority_fee_per_gas="1")

    html = operator_client.get("/admin/tokens/buyorder/?preview=1").content.decode()

    assert "priority fee 1 gwei" in html and "would carry a max fee of" in html and "(cap 50 gwei)" in html
    assert "would defer" not in html

    buy_order_config_update(max_fee_per_gas="0.01", priority_fee_per_gas="0.001")
    html = operator_client.get("/admin/tokens/buyorder/?preview=1").content.decode()

    assert "above the cap of 0.01 gwei: the buy would defer" in html
    assert "It would not execute: Deferred: gas above the cap" in html


def test_fee_figures_are_exact_gwei():
    quote = FeeQuote(base_fee=7, priority_fee=GWEI, cap=None)
    assert quote.figures() == {"base_fee": Decimal("0.000000007"), "priority_fee": Decimal(1),
                               "required": Decimal("1.000000007"), "max_fee": Decimal("1.000000014"),
                               "cap": None, "above_cap": False}
    capped = FeeQuote(base_fee=3 * GWEI, priority_fee=GWEI, cap=5 * GWEI)
    assert capped.max_fee == 5 * GWEI and not capped.above_cap  # 2 x base + tip lowered to the cap
    above = FeeQuote(base_fee=5 * GWEI, priority_fee=1, cap=5 * GWEI)
    assert above.above_cap and above.figures()["max_fee"] is None
    assert display.gwei(Decimal("1.500000000")) == "1.5 gwei" and display.gwei(Decimal("100.000")) == "100 gwei"
    assert display.gwei(Decimal("0.000000007")) == "0.000000007 gwei" and display.gwei(None) == display.EMPTY
