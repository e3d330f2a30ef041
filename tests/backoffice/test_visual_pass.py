"""What the visual pass at 1400×1000 fixed, checked in the HTML: lists titled by what they list,
settings inputs without the column's trailing zeros and with their rates as percentages, the
buy-order list's run button among its tools."""

import re

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(email="op-visual@example.com", is_staff=True, is_superuser=True))


@pytest.mark.parametrize(("url", "title"), [("/admin/purchases/purchase/", "Purchases"),
                                            ("/admin/mlm/bonus/", "Bonuses"),
                                            ("/admin/accounts/ledgerentry/", "Ledger entries"),
                                            ("/admin/withdrawals/withdrawal/", "Withdrawals"),
                                            ("/admin/tokens/buyorder/", "Buy orders"),
                                            ("/admin/legacy_import/importrun/", "Import runs")])
def test_lists_are_titled_by_what_they_list(client, operator, url, title):
    html = client.get(url).content.decode()
    assert f"<h1>{title}</h1>" in html and "Select " not in re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert "to view</h1>" not in html and "to change</h1>" not in html


def test_settings_inputs_show_numbers_as_typed_and_rates_as_percentages(client, operator):
    html = client.get("/admin/mlm/plansettings/1/change/").content.decode()
    assert 'name="active_min_pv" value="200"' in html and "00000000" not in html
    assert re.search(r'name="pioneer_rate" value="0.04"[^>]*> <span class="decimal-hint">= 4%</span>', html)
    html = client.get("/admin/tokens/buyorderconfig/1/change/").content.decode()
    assert 'name="min_buy_amount" value="100"' in html and 'name="max_buy_amount" value="1000000"' in html
    assert re.search(r'name="max_slippage" value="0.01"[^>]*> <span class="decimal-hint">= 1%</span>', html)
    from accounts.models import WalletSettings

    r = client.get(f"/admin/accounts/walletsettings/{WalletSettings.load().pk}/change/", follow=True)
    html = r.content.decode()
    assert 'name="withdrawal_fee" value="1"' in html and 'name="transfer_bonus_rate" value="0.02"' in html


def test_the_run_button_is_one_of_the_buy_order_tools(client, operator):
    html = client.get("/admin/tokens/buyorder/").content.decode()
    tools = re.search(r'<ul class="object-tools">.*?</ul>', html, re.S).group(0)
    assert '<button type="submit" class="object-tool">Run this period\'s buy now</button>' in tools
    assert 'style="padding' not in tools
