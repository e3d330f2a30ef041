"""List and change pages render money with 2 decimals, tokens with 4, rates as %, short linked
hashes and one-line dates (common.display), never the stored 8 places."""

import re
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import wallet_credit
from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory
from tokens.models import BuyOrder
from tokens.services import revenue_track
from withdrawals.services import withdrawal_request

pytestmark = pytest.mark.django_db


def cells(html: str) -> str:
    """The list's cells and the change page's read-only values (not the titles: those are the
    models' str(), owned by their apps)."""
    return " ".join(re.findall(r'<td class="field-[^"]*">(.*?)</td>', html, re.S)
                    + re.findall(r'<div class="readonly">(.*?)</div>', html, re.S))


TX = "0x" + "ab" * 30 + "cdef"


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def order(db):
    return BuyOrder.objects.create(
        status="completed", trigger="manual", amount=Decimal("1639"), quoted_price=Decimal("0.50344767"),
        expected_tokens=Decimal("3255.55189525"), min_tokens=Decimal("3223.0"), max_slippage=Decimal("0.01"),
        disposition="hold", tokens_received=Decimal("3255.55189525"), price_per_token=Decimal("0.50344767"),
        tx_hash=TX, completed_at=timezone.now())


def test_buy_orders_list_and_page(operator_client, order):
    html = cells(operator_client.get("/admin/tokens/buyorder/").content.decode())
    assert "1,639.00" in html and "3,255.5519" in html and "0.5034" in html
    assert f'href="/admin/tokens/buyorder/{order.pk}/change/" title="{TX}" class="hash">0xabab…cdef</a>' in html
    assert "3255.55189525" not in html and "1639.00000000" not in html
    page = cells(operator_client.get(f"/admin/tokens/buyorder/{order.pk}/change/").content.decode())
    assert "3,255.5519" in page and "1%" in page and "1,639.00" in page and "3255.55189525" not in page


def test_purchases_refunds_and_options(operator_client):
    purchase = purchase_create(user=UserFactory(balance="100"), option=OptionFactory(pack_price=Decimal("50")))
    listing = operator_client.get("/admin/purchases/purchase/").content.decode()
    # (the row checkbox's aria-label is the model's str(), owned by the purchases app)
    assert '<span class="num">50.00</span>' in listing and ">50.00000000<" not in listing
    assert f"{purchase.created_at:%Y-%m-%d}\u00a0" in listing  # the date and time on one line
    page = cells(operator_client.get(f"/admin/purchases/purchase/{purchase.pk}/change/").content.decode())
    assert "50.00" in page and "50.00000000" not in page
    options = operator_client.get("/admin/purchases/option/").content.decode()
    assert "0.0500" in options and "50.00" in options


def test_revenue_rates_and_settings(operator_client):
    revenue_track(source="other", amount="1234.5")
    assert "1,234.50 ZAR" in operator_client.get("/admin/tokens/revenue/").content.decode()
    settings_list = operator_client.get("/admin/tokens/buyorderconfig/").content.decode()
    assert "10%" in settings_list and "0.1000" not in settings_list


def test_withdrawals_list_and_page(operator_client):
    member = UserFactory()
    wallet_credit(user=member, wallet="passive", amount="100", reason="adjustment", idempotency_key="t:w")
    withdrawal = withdrawal_request(user=member, amount=Decimal("40"), destination="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
    listing = operator_client.get("/admin/withdrawals/withdrawal/").content.decode()
    assert '<span class="num">40.00</span>' in listing and '<span class="num">39.00</span>' in listing
    assert "40.00000000" not in listing and "TR7NHqje…gjLj6t" in listing
    page = cells(operator_client.get(f"/admin/withdrawals/withdrawal/{withdrawal.pk}/change/").content.decode())
    assert "39.00" in page and "39.00000000" not in page


def test_api_tokens_page_shows_a_one_line_date(operator_client):
    from rest_framework.authtoken.models import Token

    Token.objects.create(user=UserFactory())
    html = operator_client.get("/admin/common/maskedtoken/").content.decode()
    assert f"{timezone.now():%Y-%m-%d}\u00a0" in html
