from decimal import Decimal

import pytest

from purchases.models import Purchase
from tests.factories import OptionFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_projects_list_shows_active_options(member_client):
    active = OptionFactory(pack_shares=1000, pack_price=Decimal("50"))
    OptionFactory(project=active.project, is_active=False)
    body = member_client(UserFactory()).get("/api/projects/").json()
    project = next(p for p in body if p["id"] == active.project_id)
    assert [o["id"] for o in project["options"]] == [active.pk]
    assert Decimal(project["options"][0]["unit_price"]) == Decimal("0.05")


def test_buy_with_idempotency_key(member_client, django_capture_on_commit_callbacks):
    user = UserFactory(balance="120")
    option = OptionFactory()
    client = member_client(user)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/purchases/", {"option": option.pk, "packs": 2}, format="json",
                        HTTP_IDEMPOTENCY_KEY="k-1")
        again = client.post("/api/purchases/", {"option": option.pk, "packs": 2}, format="json",
                            HTTP_IDEMPOTENCY_KEY="k-1")
    assert (r.status_code, again.status_code) == (201, 200)
    assert r.json()["id"] == again.json()["id"] and r.json()["shares"] == 2000
    user.refresh_from_db()
    assert user.balance_active == Decimal("20")
    short = client.post("/api/purchases/", {"option": option.pk, "packs": 1}, format="json")
    assert short.status_code == 400 and "Insufficient" in short.json()["message"]


@pytest.mark.parametrize("payload", [{"option": 999999}, {"option": "x"}, {"packs": 1}, {"option": 1, "packs": 0}])
def test_bad_purchase_input_is_400(member_client, payload):
    r = member_client(UserFactory(balance="100")).post("/api/purchases/", payload, format="json")
    assert r.status_code == 400 and r.json()["message"]
    assert not Purchase.objects.exists()


def test_members_see_only_their_own_purchases(member_client):
    option = OptionFactory()
    alice, bob = UserFactory(balance="100"), UserFactory(balance="100")
    from purchases.services import purchase_create

    mine = purchase_create(user=alice, option=option)
    theirs = purchase_create(user=bob, option=option)
    client = member_client(alice)
    assert [p["id"] for p in client.get("/api/purchases/").json()["results"]] == [mine.pk]
    assert client.get(f"/api/purchases/{mine.pk}/").status_code == 200
    assert client.get(f"/api/purchases/{theirs.pk}/").status_code == 404


def test_purchases_cannot_be_edited_or_deleted_over_the_api(member_client):
    user = UserFactory(balance="100")
    from purchases.services import purchase_create

    p = purchase_create(user=user, option=OptionFactory())
    client = member_client(user)
    assert client.delete(f"/api/purchases/{p.pk}/").status_code == 405
    assert client.patch(f"/api/purchases/{p.pk}/", {"price": "1"}, format="json").status_code == 405
