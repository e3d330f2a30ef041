"""The back office: settings through the service, rates, the run button, the dashboard chart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common import display
from tests.factories import UserFactory
from tokens.models import BuyOrder, BuyOrderConfigChange, ExchangeRate
from tokens.selectors import buy_order_config, exchange_rate_current
from tokens.services import revenue_track

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def settings_form(**overrides):
    config = buy_order_config()
    data = {"revenue_percentage": config.revenue_percentage, "execution_schedule": config.execution_schedule,
            "timezone": config.timezone, "min_buy_amount": config.min_buy_amount,
            "max_buy_amount": config.max_buy_amount, "max_slippage": config.max_slippage,
            "disposition": config.disposition, "enabled": "on" if config.enabled else "",
            "max_price_deviation": config.max_price_deviation, "twap_window_seconds": config.twap_window_seconds,
            "max_price_impact": config.max_price_impact,
            "max_fee_per_gas": config.max_fee_per_gas, "priority_fee_per_gas": config.priority_fee_per_gas,
            "tx_deadline_seconds": config.tx_deadline_seconds, "replace_after_seconds": config.replace_after_seconds,
            "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0", "changes-MIN_NUM_FORMS": "0",
            "changes-MAX_NUM_FORMS": "1000"}
    data.update(overrides)
    return data


def test_settings_are_saved_through_the_service_with_audit(operator_client):
    url = "/admin/tokens/buyorderconfig/1/change/"
    assert operator_client.get(url).status_code == 200

    response = operator_client.post(url, settings_form(revenue_percentage="0.15", execution_schedule="monthly"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    config = buy_order_config()
    assert config.revenue_percentage == Decimal("0.15") and config.execution_schedule == "monthly"
    change = BuyOrderConfigChange.objects.get()
    assert change.changed_by.email == "ops@example.com" and set(change.changes) == {"revenue_percentage",
                                                                                 "execution_schedule"}
    bad = operator_client.post(url, settings_form(max_slippage="1.5", execution_schedule="every day"))
    assert bad.status_code == 200 and bad.context["adminform"].form.errors
    assert BuyOrderConfigChange.objects.count() == 1


def test_a_rate_is_added_never_edited(operator_client):
    response = operator_client.post("/admin/tokens/exchangerate/add/", {
        "currency": "eur", "rate_to_zar": "20.1", "valid_from_0": "2026-01-01", "valid_from_1": "00:00:00",
        "note": "ECB"})

    assert response.status_code == 302
    assert exchange_rate_current(currency="EUR").rate_to_zar == Decimal("20.1")
    row = ExchangeRate.objects.get(currency="EUR")
    assert operator_client.post(f"/admin/tokens/exchangerate/{row.pk}/delete/").status_code == 403


def test_run_button_buys_once_per_period_and_the_dashboard_draws_it(operator_client, chain):
    revenue_track(source="other", amount="10000")

    operator_client.post("/admin/tokens/buyorder/run/")
    operator_client.post("/admin/tokens/buyorder/run/")

    order = BuyOrder.objects.get()
    assert order.status == "completed" and order.trigger == "scheduled"
    assert operator_client.get("/admin/tokens/buyorder/run/").status_code == 405
    page = operator_client.get("/admin/tokens/buyorderdashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-chart="buybacks"' in html and 'class="mark tokens"' in html and 'class="mark price"' in html
    assert display.tokens(order.tokens_received) in html  # 4 decimals, not the stored 8
    assert "/admin/tokens/buyorderdashboard/" in operator_client.get("/admin/").content.decode()
    preview = operator_client.get("/admin/tokens/buyorder/?preview=1")
    assert preview.status_code == 200 and b"nothing was written" in preview.content
    assert BuyOrder.objects.count() == 1


def test_the_dashboard_without_orders(operator_client):
    page = operator_client.get("/admin/tokens/buyorderdashboard/")

    assert page.status_code == 200 and b"No completed buy-orders yet" in page.content


def staff_with(*codenames: str):
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="tokens", codename__in=codenames))
    return user


def test_a_view_only_operator_cannot_run_a_buy_reconcile_or_see_the_run_button(client, chain):
    revenue_track(source="other", amount="10000")
    client.force_login(staff_with("view_buyorder"))

    assert client.post("/admin/tokens/buyorder/run/").status_code == 403
    assert not BuyOrder.objects.exists()
    page = client.get("/admin/tokens/buyorder/")
    assert page.status_code == 200 and "Run this period" not in page.content.decode()
    form = page.context["action_form"]  # None: no action is theirs
    assert form is None or "reconcile" not in repr(form.fields["action"].choices)
    forged = client.post("/admin/tokens/buyorder/", {"action": "reconcile", "select_across": "1", "index": "0",
                                                     "_selected_action": []})
    assert forged.status_code == 403
    assert client.get("/admin/tokens/buyorderdashboard/").status_code == 200  # viewing is theirs


def test_running_a_buy_needs_the_add_permission_and_reconciling_the_change_one(client, chain):
    revenue_track(source="other", amount="10000")
    client.force_login(staff_with("view_buyorder", "add_buyorder", "change_buyorder"))

    page = client.get("/admin/tokens/buyorder/")
    assert "Run this period" in page.content.decode()
    assert "reconcile" in repr(page.context["action_form"].fields["action"].choices)
    client.post("/admin/tokens/buyorder/run/")
    assert BuyOrder.objects.get().status == "completed"


def test_the_buy_back_dashboard_needs_the_view_permission(client):
    client.force_login(staff_with())  # staff, no permission at all

    assert client.get("/admin/tokens/buyorderdashboard/").status_code == 403
