"""The back office of split orders and the guard: orders listed once, slices on the order's page,
why a buy waited, the observations."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory
from tokens.models import BuyOrder, BuyOrderDeferral, PriceObservation
from tokens.services import buy_order_config_update, buy_order_execute, buy_order_run_scheduled, revenue_track

from .conftest import move_spot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def split_order(chain, settings):
    settings.TOKENS_SLICE_INTERVAL_SECONDS = 60
    buy_order_config_update(revenue_percentage="1", max_buy_amount="100000000", max_price_impact="0.005")
    revenue_track(source="other", amount="50000000")
    assert buy_order_execute().success
    return BuyOrder.objects.get(parent__isnull=True)


def listed(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


def test_the_changelist_lists_orders_not_their_slices(operator_client, split_order):
    slices = set(split_order.slices.values_list("pk", flat=True))
    first = split_order.slices.get(slice_index=0)

    assert listed(operator_client.get("/admin/tokens/buyorder/")) == {split_order.pk}
    assert listed(operator_client.get("/admin/tokens/buyorder/?kind=slices")) == slices
    assert listed(operator_client.get("/admin/tokens/buyorder/?kind=all")) == slices | {split_order.pk}
    # A transaction hash is a slice's: a search finds it without choosing "slices".
    assert listed(operator_client.get(f"/admin/tokens/buyorder/?q={first.tx_hash}")) == {first.pk}
    page = operator_client.get("/admin/tokens/buyorder/").content.decode()
    assert "orders or slices" in page and ">5<" in page  # the filter, and the order's slice count


def test_the_order_page_lists_its_slices_read_only(operator_client, split_order):
    first = split_order.slices.get(slice_index=0)

    response = operator_client.get(f"/admin/tokens/buyorder/{split_order.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "5 slices (listed below)" in page
    assert f"{first.tx_hash[:6]}…{first.tx_hash[-4:]}" in page and f'title="{first.tx_hash}"' in page
    assert "10,000,000.00" in page  # each slice's amount, as money
    assert "0.4" in page and "%" in page  # its price impact, as a rate (just under 0.5%)
    assert page.count("Planned") >= 4
    assert 'name="slices-0-status"' not in page  # nothing to edit


def test_a_slice_page_links_to_its_order_and_shows_why_it_waited(operator_client, chain, split_order):
    second = split_order.slices.get(slice_index=1)
    BuyOrderDeferral.objects.create(trigger="manual", slice_of=second, code="price_deviation",
                                    reason="The pool's spot is 3.10% off its TWAP.", spot_price="0.515",
                                    twap_price="0.5")

    page = operator_client.get(f"/admin/tokens/buyorder/{second.pk}/change/").content.decode()

    assert f"Slice 2 of buy-order #{split_order.pk}" in page
    assert f'href="/admin/tokens/buyorder/{split_order.pk}/change/"' in page
    assert "3%" in page and "0.5150" in page and "0.5000" in page  # the deviation, spot and TWAP


def test_deferrals_are_listed_read_only_with_both_prices(operator_client, chain):
    revenue_track(source="other", amount="100000")
    move_spot(chain, "0.10")
    assert buy_order_run_scheduled().code == "price_deviation"
    deferral = BuyOrderDeferral.objects.get()

    response = operator_client.get("/admin/tokens/buyorderdeferral/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Spot too far from the TWAP" in page and "10" in page
    assert operator_client.get(f"/admin/tokens/buyorderdeferral/{deferral.pk}/change/").status_code == 200
    assert operator_client.get("/admin/tokens/buyorderdeferral/add/").status_code == 403
    assert operator_client.post(f"/admin/tokens/buyorderdeferral/{deferral.pk}/delete/").status_code == 403
    assert BuyOrderDeferral.objects.count() == 1


def test_observations_are_a_list_only(operator_client, chain):
    row = PriceObservation.objects.order_by("-block_number").first()

    response = operator_client.get("/admin/tokens/priceobservation/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "2,000,000,000.00" in page and "4,000,000,000.0000" in page and "0.5000" in page
    assert f"/admin/tokens/priceobservation/{row.pk}/change/" not in page
    assert operator_client.get(f"/admin/tokens/priceobservation/{row.pk}/change/").status_code in (302, 403)


def test_a_staff_user_without_permissions_sees_none_of_it(client, chain):
    client.force_login(UserFactory(email="intern@example.com", is_staff=True))
    for url in ("/admin/tokens/buyorderdeferral/", "/admin/tokens/priceobservation/"):
        assert client.get(url).status_code == 403
