from decimal import Decimal

import pytest

from mlm.models import Bonus, Notification, RankHistory
from mlm.services import purchase_process
from tests.factories import UserFactory
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db


@pytest.fixture
def network(root, django_capture_on_commit_callbacks):
    d = member(rank="director")
    s = member(d)
    other = member()
    p = buy(s, option("1000"))
    with django_capture_on_commit_callbacks(execute=True):  # notifications are written after the commit
        purchase_process(purchase_id=p.pk)
    return d, s, other, p


def test_summary_bonuses_team_notifications_are_my_own(network, member_client, api_client):
    d, s, other, p = network
    c = member_client(d)
    r = c.get("/api/mlm/me/summary/")
    assert r.status_code == 200 and r.json()["rank"] == "director" and r.json()["is_active"] is True
    assert Decimal(r.json()["fv"]) == Decimal("1000")
    r = c.get("/api/mlm/me/bonuses/?kind=differential")
    assert r.status_code == 200 and r.json()["count"] == 1
    assert Decimal(r.json()["results"][0]["amount"]) == Decimal("140")
    month = p.created_at.strftime("%Y-%m")
    assert c.get(f"/api/mlm/me/bonuses/?month={month}").json()["count"] == 1
    assert c.get("/api/mlm/me/bonuses/?month=1999-01").json()["count"] == 0
    assert c.get("/api/mlm/me/bonuses/?kind=nope").status_code == 400
    team = c.get("/api/mlm/me/team/?depth=2").json()
    assert [r["id"] for r in team["referrals"]] == [s.pk]
    assert Decimal(team["referrals"][0]["branch_volume"]) == Decimal("1000")
    notes = c.get("/api/mlm/me/notifications/").json()
    assert notes["count"] == 1 and notes["results"][0]["is_read"] is False
    nid = notes["results"][0]["id"]
    # Someone else's data: not visible, not markable.
    oc = member_client(other)
    assert oc.get("/api/mlm/me/bonuses/").json()["count"] == 0
    assert oc.get("/api/mlm/me/team/").json()["referrals"] == []
    assert oc.post(f"/api/mlm/me/notifications/{nid}/read/").status_code == 404
    assert c.post(f"/api/mlm/me/notifications/{nid}/read/").json()["is_read"] is True
    assert c.get("/api/mlm/me/notifications/?unread=true").json()["count"] == 0
    assert c.post("/api/mlm/me/notifications/read-all/").json() == {"updated": 0}
    assert api_client.get("/api/mlm/me/summary/").status_code == 401


@pytest.fixture
def operator(db):
    return UserFactory(email="op-mlm@example.com", is_staff=True, is_superuser=True)


def test_admin_pages_and_actions(network, client, operator):
    d, s, other, p = network
    client.force_login(operator)
    for url in ("/admin/mlm/rank/", "/admin/mlm/bonus/?kind=differential", "/admin/mlm/bonus/?month="
                + p.created_at.strftime("%Y-%m"), "/admin/mlm/rankhistory/",
                "/admin/mlm/poolrun/", "/admin/mlm/notification/", "/admin/mlm/plansettings/1/change/",
                f"/admin/mlm/membernetwork/{s.pk}/change/", f"/admin/mlm/membernetwork/{d.pk}/change/",
                "/admin/mlm/purchaseprocessing/", "/admin/mlm/investmenttier/"):
        assert client.get(url).status_code == 200, url
    page = client.get(f"/admin/mlm/membernetwork/{s.pk}/change/").content.decode()
    assert d.email in page
    # Reprocess: idempotent.
    before = Bonus.objects.count()
    r = client.post("/admin/mlm/purchaseprocessing/", {"action": "reprocess", "_selected_action": [p.pk]})
    assert r.status_code == 302 and Bonus.objects.count() == before
    # Recalculate and set rank with a reason.
    r = client.post("/admin/mlm/membernetwork/", {"action": "recalculate_volumes", "_selected_action": [d.pk]})
    assert r.status_code == 302
    r = client.post("/admin/mlm/membernetwork/", {"action": "set_rank", "_selected_action": [s.pk]})
    assert r.status_code == 200
    r = client.post("/admin/mlm/membernetwork/", {"action": "set_rank", "_selected_action": [s.pk], "apply": "1",
                                                  "rank": "growth", "note": "contest winner"})
    assert r.status_code == 302
    h = RankHistory.objects.get(user=s)
    assert (h.new_rank.code, h.reason, h.note, h.created_by) == ("growth", "manual", "contest winner", operator)
    assert Notification.objects.filter(user=s, kind="rank_change").exists()
