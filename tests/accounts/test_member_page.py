"""The member page (the member's change page): sections, labels, upline, the lazy genealogy tree
and its JSON view, the actions, the per-purchase refund confirmation."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.genealogy import CHILDREN_LIMIT, upline
from accounts.member_page import SECTION_SIZE, summary_rows
from accounts.models import LedgerEntry, User
from accounts.services import NewMember, members_create_bulk, wallet_deposit
from mlm.services import purchase_process
from purchases.models import Purchase
from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    return UserFactory(email="op-member@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def family(root):
    """grandpa → dad → (kid1 → grandkid, kid2); dad has a purchase."""
    grandpa = UserFactory(email="grandpa@example.com", first_name="Grand", last_name="Pa")
    dad = UserFactory(email="dad@example.com", first_name="Dad", last_name="Smith", sponsor=grandpa,
                      balance="5000")
    kid1 = UserFactory(email="kid1@example.com", first_name="Kid", last_name="One", sponsor=dad)
    kid2 = UserFactory(email="kid2@example.com", first_name="Kid", last_name="Two", sponsor=dad)
    grandkid = UserFactory(email="grandkid@example.com", sponsor=kid1)
    purchase = purchase_create(user=dad, option=OptionFactory(pack_price=Decimal("1234.5")), packs=1)
    purchase_process(purchase_id=purchase.pk)  # PV/FV as after the worker
    return grandpa, dad, kid1, kid2, grandkid, purchase


def page(client, user, query=""):
    r = client.get(f"/admin/accounts/user/{user.pk}/change/{query}")
    assert r.status_code == 200
    return r.content.decode()


def test_member_page_shows_balances_summary_upline_tree_sections_and_actions(client, operator, family):
    grandpa, dad, kid1, kid2, grandkid, purchase = family
    client.force_login(operator)
    html = page(client, dad)
    # Balances with 2 decimals; the plan summary with labels people read, not keys.
    assert "3,765.50 USD" in html  # 5000 − 1234.50
    assert "Personal volume (PV)" in html and "Team volume (TV, qualifying)" in html
    assert "gap pv" not in html and ">pv<" not in html
    # The upline: a nav with a link to the sponsor's member page.
    nav = re.search(r'<nav id="upline".*?</nav>', html, re.S).group(0)
    assert f'href="/admin/accounts/user/{grandpa.pk}/change/"' in nav
    # The tree: the member and his direct children; a toggle only on the child with children.
    assert f'data-children-url="/admin/accounts/user/genealogy/{dad.pk}/children/"' in html
    kid1_li = re.search(rf'<li class="tree-node" data-member-id="{kid1.pk}".*?</li>', html, re.S).group(0)
    kid2_li = re.search(rf'<li class="tree-node" data-member-id="{kid2.pk}".*?</li>', html, re.S).group(0)
    assert 'class="tree-toggle" aria-expanded="false"' in kid1_li and "tree-toggle" not in kid2_li
    assert f'data-member-id="{grandkid.pk}"' not in html  # grandchildren come on demand
    # Sections, and the purchase's refund link to its confirmation page.
    for key in ("purchases", "ledger", "bonuses", "withdrawals", "ranks"):
        assert f'<section id="{key}"' in html
    back = f"next=%2Fadmin%2Faccounts%2Fuser%2F{dad.pk}%2Fchange%2F"
    assert f'href="/admin/purchases/purchase/{purchase.pk}/refund/?{back}"' in html
    assert "1,234.50" in html
    assert f'href="/admin/accounts/ledgerentry/?user__id__exact={dad.pk}"' in html
    # The actions of the contract.
    for action in ("deposit", "set-rank", "refund", "preview"):
        assert f'class="member-action" data-action="{action}"' in html
    assert "/admin/mlm/purchasepreview/?member=dad%40example.com" in html
    assert f"/admin/mlm/membernetwork/{dad.pk}/set-rank/" in html


def test_see_all_filters_are_accepted_by_the_lists(client, operator, family):
    dad = family[1]
    client.force_login(operator)
    for url in ("/admin/purchases/purchase/", "/admin/accounts/ledgerentry/", "/admin/mlm/bonus/",
                "/admin/withdrawals/withdrawal/", "/admin/mlm/rankhistory/"):
        r = client.get(f"{url}?user__id__exact={dad.pk}")
        assert r.status_code == 200, url  # an unknown lookup would redirect to ?e=1


def test_sections_are_paginated_and_hostile_page_numbers_are_harmless(client, operator, root):
    member = UserFactory(email="many@example.com")
    for i in range(SECTION_SIZE + 5):
        wallet_deposit(user=member, amount=Decimal("1"), reference=f"page-{i}")
    client.force_login(operator)
    ledger = re.compile(r'<section id="ledger".*?</section>', re.S)
    first = ledger.search(page(client, member)).group(0)
    assert first.count("<tr>") == SECTION_SIZE + 1 and "ledger_page=2" in first
    second = ledger.search(page(client, member, "?ledger_page=2")).group(0)
    assert second.count("<tr>") == 5 + 1 and "page 2 of 2" in second
    for hostile in ("abc", "-1", "99999", "1e9", "%00"):
        html = page(client, member, f"?ledger_page={hostile}")
        assert ledger.search(html)
    assert LedgerEntry.objects.filter(user=member).count() == SECTION_SIZE + 5  # reading wrote nothing


def test_member_page_query_count_does_not_grow_with_the_network_or_history(client, operator, root):
    small = UserFactory(email="small@example.com", balance="1")  # each section non-empty or empty alike
    members_create_bulk(members=[NewMember(email=f"s{i}@example.com", sponsor=small) for i in range(2)])
    big = UserFactory(email="big@example.com")
    kids = members_create_bulk(members=[NewMember(email=f"b{i}@example.com", sponsor=big) for i in range(60)])
    members_create_bulk(members=[NewMember(email=f"g{i}@example.com", sponsor=kids[i]) for i in range(30)])
    for i in range(30):
        wallet_deposit(user=big, amount=Decimal("2"), reference=f"big-{i}")
    client.force_login(operator)
    page(client, small)  # warm the plan cache
    with CaptureQueriesContext(connection) as q_small:
        page(client, small)
    with CaptureQueriesContext(connection) as q_big:
        html = page(client, big)
    assert len(q_big) == len(q_small), [q["sql"] for q in q_big]
    assert html.count('class="tree-node"') == 60


def test_access_fieldset_is_folded_and_for_superusers_only(client, operator, family):
    dad = family[1]
    client.force_login(operator)
    html = page(client, dad)
    assert 'name="user_permissions"' in html and "collapse" in html and "Access" in html
    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(clerk)
    html = page(client, dad)
    assert 'name="user_permissions"' not in html and 'name="is_superuser"' not in html
    # The clerk's save cannot touch access: is_staff stays as it was whatever is posted.
    r = client.post(f"/admin/accounts/user/{dad.pk}/change/", {
        "email": dad.email, "first_name": "Daddy", "last_name": "Smith", "is_active": "on",
        "is_superuser": "on", "is_staff": "on"})
    assert r.status_code == 302
    dad.refresh_from_db()
    assert dad.first_name == "Daddy" and not dad.is_staff and not dad.is_superuser


# --- the genealogy JSON -----------------------------------------------------------------------

def children_url(user, query=""):
    return f"/admin/accounts/user/genealogy/{user.pk}/children/{query}"


def test_children_json_fields(client, operator, family):
    grandpa, dad, kid1, kid2, grandkid, purchase = family
    client.force_login(operator)
    r = client.get(children_url(dad))
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    data = r.json()
    assert data["next"] is None and [c["id"] for c in data["children"]] == [kid1.pk, kid2.pk]
    first = data["children"][0]
    assert first == {"id": kid1.pk, "email": "kid1@example.com", "name": "Kid One", "rank": "Start",
                     "pv": "0.00", "tv": "0.00", "has_children": True,
                     "url": f"/admin/accounts/user/{kid1.pk}/change/",
                     "children_url": f"/admin/accounts/user/genealogy/{kid1.pk}/children/"}
    assert data["children"][1]["has_children"] is False
    assert client.get(children_url(grandpa)).json()["children"][0]["pv"] == "1,234.50"


def test_children_json_query_count_is_constant_and_pages_are_limited(client, operator, root):
    few = UserFactory(email="few@example.com")
    members_create_bulk(members=[NewMember(email=f"f{i}@example.com", sponsor=few) for i in range(3)])
    many = UserFactory(email="lots@example.com")
    kids = members_create_bulk(members=[NewMember(email=f"m{i}@example.com", sponsor=many)
                                        for i in range(CHILDREN_LIMIT + 7)])
    members_create_bulk(members=[NewMember(email=f"mg{i}@example.com", sponsor=kids[i]) for i in range(50)])
    client.force_login(operator)
    client.get(children_url(few))
    with CaptureQueriesContext(connection) as q_few:
        client.get(children_url(few))
    with CaptureQueriesContext(connection) as q_many:
        data = client.get(children_url(many)).json()
    assert len(q_many) == len(q_few)
    assert len(data["children"]) == CHILDREN_LIMIT
    assert sum(c["has_children"] for c in data["children"]) == 50
    assert data["next"] == children_url(many, f"?offset={CHILDREN_LIMIT}")
    rest = client.get(data["next"]).json()
    assert len(rest["children"]) == 7 and rest["next"] is None
    ids = [c["id"] for c in data["children"] + rest["children"]]
    assert ids == sorted(ids) and len(set(ids)) == CHILDREN_LIMIT + 7


def test_children_json_refuses_bad_input_and_outsiders(client, operator, family):
    dad = family[1]
    client.force_login(operator)
    for bad in ("?offset=abc", "?offset=-5", "?offset=1.5"):
        r = client.get(children_url(dad, bad))
        assert r.status_code == 400 and r.json()["offset"][0]["code"] == "invalid", bad
    assert client.get("/admin/accounts/user/genealogy/987654321/children/").status_code == 404
    # A member (not staff) is sent to the login page; staff without the view permission: 403.
    client.force_login(family[2])
    r = client.get(children_url(dad))
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    client.logout()
    assert client.get(children_url(dad)).status_code == 302
    clerk = UserFactory(email="noperm@example.com", is_staff=True)
    client.force_login(clerk)
    assert client.get(children_url(dad)).status_code == 403


# --- refund one purchase from the member page ------------------------------------------------

def test_refund_link_confirms_then_refunds_once(client, operator, family):
    dad, purchase = family[1], family[5]
    client.force_login(operator)
    url = f"/admin/purchases/purchase/{purchase.pk}/refund/"
    r = client.get(url)
    html = r.content.decode()
    assert r.status_code == 200 and 'id="confirm-refund"' in html and "1,234.50 USD" in html
    assert not Purchase.objects.get(pk=purchase.pk).is_refunded  # the GET wrote nothing
    r = client.post(url, {"apply": "1", "action": "refund", "reason": "asked"})
    assert r.status_code == 302 and r["Location"] == f"/admin/accounts/user/{dad.pk}/change/"
    purchase.refresh_from_db()
    assert purchase.is_refunded and purchase.refund.reason == "asked"
    dad.refresh_from_db()
    assert dad.balance_active == Decimal("5000")
    # Twice: refused with a message, nothing moves again.
    r = client.post(url, {"apply": "1", "action": "refund", "reason": "again"}, follow=True)
    assert "already" in r.content.decode().lower()
    dad.refresh_from_db()
    assert dad.balance_active == Decimal("5000")
    # Refused outright to staff who may not refund, and for an unknown purchase.
    assert client.get("/admin/purchases/purchase/987654/refund/").status_code == 404
    clerk = UserFactory(email="viewer@example.com", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_purchase"))
    client.force_login(clerk)
    assert client.get(url).status_code == 403


def test_refund_from_the_member_page_leads_back_to_it_and_shows_labels_not_codes(client, operator, family):
    dad, purchase = family[1], family[5]
    client.force_login(operator)
    member_url = f"/admin/accounts/user/{dad.pk}/change/"
    url = f"/admin/purchases/purchase/{purchase.pk}/refund/?next={member_url}"
    html = client.get(url).content.decode()
    crumbs = re.search(r'<div class="breadcrumbs">.*?</div>', html, re.S).group(0)
    assert f'<a href="{member_url}">dad@example.com</a>' in crumbs and "/admin/purchases/purchase/" not in crumbs
    assert f'<a href="{member_url}" class="button cancel-link">Cancel</a>' in html
    # Labels from the member page's one map and the models' choices, not stored codes.
    assert "Personal volume (PV)" in html and "Personal volume this month" in html
    assert "Full volume (FV, whole downline)" in html and ", Regular," in html
    cells = set(re.findall(r"<td>([^<]*)</td>", html))
    assert not cells & {"pv", "monthly_pv", "fv", "paid", "pending", "differential", "pioneer",
                        "system_compression"}, cells
    assert re.search(r'<td class="num">−1,234.50</td>', html)  # amounts right-aligned
    # Done: back to where it came from.
    r = client.post(url, {"apply": "1", "action": "refund", "reason": "asked"})
    assert r.status_code == 302 and r["Location"] == member_url


@pytest.mark.parametrize("hostile", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_refund_ignores_a_next_outside_the_site(client, operator, family, hostile):
    dad, purchase = family[1], family[5]
    client.force_login(operator)
    url = f"/admin/purchases/purchase/{purchase.pk}/refund/"
    html = client.get(url, {"next": hostile}).content.decode()
    assert "evil.example" not in html and "javascript:" not in html
    assert '<a href="/admin/purchases/purchase/" class="button cancel-link">Cancel</a>' in html
    r = client.post(f"{url}?next={hostile}", {"apply": "1", "action": "refund", "reason": ""})
    assert r.status_code == 302 and r["Location"] == f"/admin/accounts/user/{dad.pk}/change/"


def test_the_list_action_still_refunds(client, operator, family):
    purchase = family[5]
    client.force_login(operator)
    r = client.post("/admin/purchases/purchase/", {"action": "refund", "_selected_action": [purchase.pk]})
    assert r.status_code == 200 and 'id="confirm-refund"' in r.content.decode()
    r = client.post("/admin/purchases/purchase/", {"action": "refund", "_selected_action": [purchase.pk],
                                                    "apply": "1", "reason": ""}, follow=True)
    assert 'class="success"' in r.content.decode()
    assert Purchase.objects.get(pk=purchase.pk).is_refunded


def test_the_next_rank_is_shown_by_its_name_not_its_code(client, operator, family):
    rows = dict(summary_rows({"next_rank": "builder", "next_rank_name": "Builder"}))
    assert rows == {"Next rank": "Builder"}
    client.force_login(operator)
    html = page(client, family[1])
    assert re.search(r'Next rank</th><td class="num">([^<]*)</td>', html).group(1) == "Builder"


def test_summary_rows_label_every_key():
    rows = dict(summary_rows({"rank": "start", "rank_name": "Start", "rate": Decimal("0.15"), "pv": Decimal("0E-8"),
                              "gap_pv": Decimal("12.345"), "is_pioneer": True, "future_key": 3}))
    assert rows == {"Rank": "Start", "Differential rate": "15%", "Personal volume (PV)": "0.00",
                    "Personal volume still needed for the next rank": "12.34", "Pioneer": "yes",
                    "future key": "3"}


def test_a_long_upline_is_one_query_and_folds_its_middle(client, operator, root):
    chain = members_create_bulk(members=[NewMember(email=f"c{k}@example.com", first_name=f"C{k}",
                                                   sponsor=f"c{k - 1}@example.com" if k else None)
                                         for k in range(40)])
    last = chain[-1]
    client.force_login(operator)
    html = page(client, last)
    nav = re.search(r'<nav id="upline".*?</nav>', html, re.S).group(0)
    links = re.findall(r'href="/admin/accounts/user/(\d+)/change/"', nav)
    assert [int(i) for i in links] == [u.pk for u in chain[:-1]]  # the top first, every sponsor linked
    assert '<details class="upline-folded"><summary>26 more</summary>' in nav
    with CaptureQueriesContext(connection) as q:
        assert [u.pk for u in upline(last)] == [u.pk for u in chain[:-1]]
    assert len(q) == 1


def test_root_page_and_outsiders(client, operator, family):
    grandpa, dad = family[0], family[1]
    client.force_login(operator)
    html = page(client, User.objects.get(is_system_root=True))
    assert 'class="member-action"' not in html and "member-summary" not in html  # no actions, no plan
    assert f'data-member-id="{grandpa.pk}"' in html  # the top of the network
    client.force_login(dad)  # a member, not staff
    r = client.get(f"/admin/accounts/user/{dad.pk}/change/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]


def test_the_member_page_offers_no_delete_and_no_save_and_add_another(admin_client):
    from tests.factories import UserFactory

    member = UserFactory()
    page = admin_client.get(f"/admin/accounts/user/{member.pk}/change/").content.decode()
    assert 'name="_save"' in page  # the profile can still be edited
    assert 'name="_addanother"' not in page and "deletelink" not in page
    assert admin_client.post(f"/admin/accounts/user/{member.pk}/delete/", {"post": "yes"}).status_code == 403
