"""The back-office site: brand, `/` and "View site" to the dashboard, sections by business."""

import re

import pytest
from django.contrib import admin

from backoffice import sections
from backoffice.site import BackOfficeSite
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BUSINESS_ORDER = ["Members & wallets", "Purchases", "Compensation", "Payouts", "Buy-back", "Import",
                  "System & access"]


@pytest.fixture
def operator(client):
    user = UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_the_default_site_is_the_back_office():
    assert isinstance(admin.site, BackOfficeSite) and admin.site.site_header == "AZR Back-office"


def test_root_redirects_to_the_dashboard_and_view_site_points_there(client, operator):
    assert client.get("/").headers["Location"] == "/admin/"
    page = client.get("/admin/").content.decode()
    assert '<a href="/admin/">View site</a>' in page
    assert "AZR Back-office" in page and "Django administration" not in page
    assert "backoffice/admin.css" in page


def test_sections_come_in_business_order_with_every_registered_model(rf, operator):
    request = rf.get("/admin/")
    request.user = operator
    grouped = admin.site.get_app_list(request)
    assert [s["name"] for s in grouped] == BUSINESS_ORDER
    listed = {f"{m['app_label']}.{m['object_name']}" for s in grouped for m in s["models"]}
    registered = {model._meta.label for model in admin.site._registry}
    assert listed == registered  # none lost
    by_name = {s["name"]: [m["object_name"] for m in s["models"]] for s in grouped}
    assert by_name["Members & wallets"][0] == "User" and by_name["Buy-back"][0] == "BuyOrderDashboard"
    assert {"APIKey", "MaskedToken", "Group", "PeriodicTask"} <= set(by_name["System & access"])
    assert "Bonus" in by_name["Compensation"] and by_name["Payouts"] == ["PayoutRun", "Withdrawal"]


def test_an_unmapped_model_falls_into_its_apps_section_or_else_the_plumbing():
    app_list = [{"name": "Compensation plan", "app_label": "mlm", "models": [
                    {"object_name": "Bonus", "name": "Bonuses"}, {"object_name": "NewThing", "name": "New things"}]},
                {"name": "Somebody's app", "app_label": "thirdparty", "models": [
                    {"object_name": "Widget", "name": "Widgets"}]}]
    grouped = sections.group(app_list)
    assert [(s["name"], [m["object_name"] for m in s["models"]]) for s in grouped] == [
        ("Compensation", ["Bonus", "NewThing"]), ("System & access", ["Widget"])]


def test_a_section_page_lists_its_models_and_an_unknown_one_is_404(client, operator):
    page = client.get("/admin/section/payouts/")
    assert page.status_code == 200 and b"/admin/withdrawals/withdrawal/" in page.content
    assert b"/admin/mlm/payoutrun/" in page.content  # the monthly payout run is money leaving too
    assert b"/admin/tokens/buyorder/" not in page.content.split(b'id="content-main"')[1]
    assert client.get("/admin/section/nope/").status_code == 404
    assert client.get("/admin/tokens/").status_code == 200  # an app's own page still works


def test_the_sidebar_on_a_list_page_shows_the_sections(client, operator):
    page = client.get("/admin/purchases/purchase/").content.decode()
    sidebar = page.split('id="nav-sidebar"')[1].split("</nav>")[0]
    captions = re.findall(r'class="section"[^>]*>([^<]+)</a>', sidebar)
    assert [c.replace("&amp;", "&") for c in captions] == BUSINESS_ORDER


def test_a_staff_user_sees_only_the_sections_and_panels_of_their_permissions(client):
    from django.contrib.auth.models import Permission

    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_withdrawal"))
    client.force_login(clerk)
    page = client.get("/admin/").content.decode()
    assert 'data-kpi="withdrawals-waiting"' in page
    assert 'data-kpi="sales-today"' not in page and 'data-chart="buybacks"' not in page
    sidebar = page.split('id="sections"')[1]
    assert "Payouts" in sidebar and "Compensation" not in sidebar


def test_the_login_page_is_branded(client):
    page = client.get("/admin/login/").content.decode()
    assert "AZR Back-office" in page and "backoffice/admin.css" in page
