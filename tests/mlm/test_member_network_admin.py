"""The member network admin (read-only, readable, linked), the set-rank page inside the admin
frame, and the display formatting of the mlm and accounts list pages."""

import re

import pytest
from django.contrib.auth.models import Permission

from accounts.services import wallet_deposit
from mlm.models import RankHistory
from mlm.services import purchase_process
from tests.factories import UserFactory
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    return UserFactory(email="op-network@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def network(root, django_capture_on_commit_callbacks):
    d = member(rank="director", first_name="Dora", last_name="Director")
    s = member(d, first_name="Sam", last_name="Seller")
    p = buy(s, option("1000"))
    with django_capture_on_commit_callbacks(execute=True):
        purchase_process(purchase_id=p.pk)
    return d, s, p


def test_network_page_is_read_only_readable_and_linked(client, operator, network):
    d, s, p = network
    client.force_login(operator)
    r = client.get(f"/admin/mlm/membernetwork/{d.pk}/change/")
    html = r.content.decode()
    assert r.status_code == 200
    # No Save buttons on a page nothing can be saved from; a POST is refused.
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert client.post(f"/admin/mlm/membernetwork/{d.pk}/change/", {"email": "x@example.com"}).status_code == 403
    # Labels for people, amounts with 2 decimals, rates as %.
    assert "Personal volume (PV)" in html and "Full volume (FV, whole downline)" in html
    assert ">gap pv<" not in html and ">pv<" not in html
    assert "1,000.00" in html and "1000.00000000" not in html
    # Links: the referral's network page, the member page, the set-rank page.
    referrals = re.search(r'<table id="referrals">.*?</table>', html, re.S).group(0)
    assert f'href="/admin/mlm/membernetwork/{s.pk}/change/"' in referrals
    assert f'href="/admin/accounts/user/{d.pk}/change/"' in html
    assert f'href="/admin/mlm/membernetwork/{d.pk}/set-rank/"' in html
    upline = client.get(f"/admin/mlm/membernetwork/{s.pk}/change/").content.decode()
    assert f'href="/admin/accounts/user/{d.pk}/change/"' in upline


def test_network_list_formats_volumes(client, operator, network):
    d = network[0]
    client.force_login(operator)
    html = client.get("/admin/mlm/membernetwork/").content.decode()
    assert "1,000.00" in html and "1000.00000000" not in html
    assert f'<a href="/admin/accounts/user/{d.pk}/change/">member page</a>' in html


def test_set_rank_page_keeps_the_admin_frame_and_writes_with_a_reason(client, operator, network):
    d, s, p = network
    client.force_login(operator)
    url = f"/admin/mlm/membernetwork/{s.pk}/set-rank/"
    html = client.get(url).content.decode()
    assert 'id="header"' in html and 'class="breadcrumbs"' in html and 'id="nav-sidebar"' in html
    assert f'href="/admin/accounts/user/{s.pk}/change/"' in html
    # Bad input: an unknown rank, no note → the form again, nothing written.
    r = client.post(url, {"rank": "emperor", "note": ""})
    assert r.status_code == 200 and "errorlist" in r.content.decode()
    assert not RankHistory.objects.filter(user=s).exists()
    r = client.post(url, {"rank": "growth", "note": "contest winner"})
    assert r.status_code == 302 and r["Location"] == f"/admin/accounts/user/{s.pk}/change/"
    h = RankHistory.objects.get(user=s)
    assert (h.new_rank.code, h.reason, h.note, h.created_by) == ("growth", "manual", "contest winner", operator)
    # The same rank again changes nothing.
    client.post(url, {"rank": "growth", "note": "again"})
    assert RankHistory.objects.filter(user=s).count() == 1
    # The root is never ranked; staff without the permission may not.
    assert client.get(f"/admin/mlm/membernetwork/{d.sponsor_id}/set-rank/").status_code == 404
    viewer = UserFactory(email="viewer-net@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_membernetwork"))
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    assert client.post(url, {"rank": "start", "note": "x"}).status_code == 403
    assert RankHistory.objects.filter(user=s).count() == 1


def test_set_rank_action_page_keeps_the_admin_frame(client, operator, network):
    d, s, p = network
    client.force_login(operator)
    r = client.post("/admin/mlm/membernetwork/", {"action": "set_rank", "_selected_action": [s.pk, d.pk]})
    html = r.content.decode()
    assert r.status_code == 200 and 'id="header"' in html and 'id="nav-sidebar"' in html
    assert html.count('name="_selected_action"') == 2


@pytest.mark.parametrize(("url", "shown", "hidden"), [
    ("/admin/mlm/rank/", ["18%", "4%"], ["0.1800", "0.0400"]),
    ("/admin/mlm/investmenttier/", ["%"], ["0.0500"]),
    ("/admin/mlm/plansettings/", ["50%", "200.00"], ["0.5000", "200.00000000"]),
    ("/admin/mlm/bonus/", ["140.00", "14%"], ["140.00000000", "0.1400"]),
    ("/admin/mlm/memberstats/", ["1,000.00"], ["1000.00000000"]),
    ("/admin/mlm/purchaseprocessing/", ["1,000.00"], ["1000.00000000"]),
    ("/admin/accounts/user/", ["0.00"], ["0E-8", ".00000000"]),
    ("/admin/accounts/ledgerentry/", ["1,000.00", "-1,000.00"], ["1000.00000000"]),
    ("/admin/accounts/walletsettings/", ["%"], [".00000000"]),
])
def test_list_pages_use_the_display_formats(client, operator, network, url, shown, hidden):
    client.force_login(operator)
    wallet_deposit(user=network[0], amount="12.5", reference="fmt")
    html = re.sub(r'aria-label="[^"]*"', "", client.get(url).content.decode())  # models' own str()
    for text in shown:
        assert text in html, (url, text)
    for text in hidden:
        assert text not in html, (url, text)
    # Dates on one line: YYYY-MM-DD and the time joined by a no-break space, in a nowrap span.
    if url in ("/admin/mlm/bonus/", "/admin/accounts/ledgerentry/", "/admin/accounts/user/"):
        assert re.search(r'<span class="nowrap">\d{4}-\d\d-\d\d\xa0\d\d:\d\d</span>', html)


def test_money_detail_pages_use_the_display_formats(client, operator, network):
    from accounts.models import LedgerEntry
    from mlm.models import Bonus

    client.force_login(operator)
    bonus = Bonus.objects.filter(kind="differential").first()
    entry = LedgerEntry.objects.filter(amount__gt=0).first()
    for url in (f"/admin/mlm/bonus/{bonus.pk}/change/", f"/admin/accounts/ledgerentry/{entry.pk}/change/"):
        html = client.get(url).content.decode()
        # The fields themselves (a linked related row shows its model's own str()).
        shown = [v for v in re.findall(r'<div class="readonly">(.*?)</div>', html, re.S) if "<a " not in v]
        assert shown and not any(".00000000" in v for v in shown) and 'name="_save"' not in html, url
    assert "14%" in client.get(f"/admin/mlm/bonus/{bonus.pk}/change/").content.decode()
