"""Who may run the mlm admin's actions, how much one request may do, and malformed list
parameters (a bad month filter, a non-ASCII member id) answered without a 500."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.utils import timezone

from mlm import admin as mlm_admin
from mlm import engine
from mlm.models import MemberStats, ProcessedPurchase
from mlm.services import purchase_process
from tests.factories import UserFactory
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db

PROCESSING = "/admin/mlm/purchaseprocessing/"
NETWORK = "/admin/mlm/membernetwork/"


def staff(email, *codenames):
    user = UserFactory(email=email, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="mlm", codename__in=codenames))
    return user


def action(client, url, name, ids, *, across=False):
    data = {"action": name, "index": "0", "_selected_action": [str(i) for i in ids]}
    if across:
        data["select_across"] = "1"
    return client.post(url, data)


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def pending(root):
    """A sponsor and four purchases by the referral, none processed yet."""
    d = member(rank="director")
    s = member(d)
    opt = option("1000")
    return d, [buy(s, opt) for _ in range(4)]


def processed(purchases):
    return set(ProcessedPurchase.objects.filter(purchase__in=purchases).values_list("purchase_id", flat=True))


# --- reprocess ----------------------------------------------------------------------------------

def test_a_view_only_operator_may_not_process_purchases(client, pending):
    _, purchases = pending
    client.force_login(staff("view-processing@example.com", "view_purchaseprocessing"))
    html = client.get(PROCESSING).content.decode()
    assert str(purchases[0].pk) in html and 'value="reprocess"' not in html  # listed, not offered
    r = action(client, PROCESSING, "reprocess", [purchases[0].pk], across=True)  # a forged POST
    assert r.status_code == 403
    assert processed(purchases) == set()


def test_the_permission_processes_the_selection_in_id_order_in_one_batch(client, pending, monkeypatch):
    _, (first, second, third, later) = pending
    client.force_login(staff("processor@example.com", "view_purchaseprocessing", "reprocess_purchase"))
    assert 'value="reprocess"' in client.get(PROCESSING).content.decode()
    batches = []
    real = engine.process_batch
    monkeypatch.setattr(engine, "process_batch", lambda ids: batches.append(list(ids)) or real(ids))
    # Picked out of order, and an earlier pending purchase not picked at all: it is processed
    # first, in the same batch, as the purchase's own task would (`purchase_process_pending`).
    r = action(client, PROCESSING, "reprocess", [third.pk, second.pk])
    assert r.status_code == 302
    assert batches == [[first.pk, second.pk, third.pk]]
    assert processed([first, second, third, later]) == {first.pk, second.pk, third.pk}
    assert any("Processed 3 purchase(s)" in t and "1 earlier" in t for t in texts(r))
    # Again: idempotent, nothing new.
    r = action(client, PROCESSING, "reprocess", [third.pk])
    assert processed([later]) == set() and any("Processed 0 purchase(s)" in t for t in texts(r))


def test_a_selection_over_the_cap_is_refused_and_processes_nothing(client, pending, monkeypatch):
    _, purchases = pending
    monkeypatch.setattr(mlm_admin, "REPROCESS_MAX_SELECTED", 3)
    client.force_login(staff("processor-cap@example.com", "view_purchaseprocessing", "reprocess_purchase"))
    r = action(client, PROCESSING, "reprocess", [purchases[0].pk], across=True)  # all 4
    assert r.status_code == 302
    assert processed(purchases) == set()
    assert any("at most 3" in t and "sweeper" in t for t in texts(r))


# --- recalculate volumes ------------------------------------------------------------------------

@pytest.fixture
def stale(root):
    """Two members whose stored team volume is stale (not recalculated since long ago)."""
    d = member(rank="director")
    s = member(d)
    purchase_process(purchase_id=buy(s, option("1000")).pk)
    long_ago = timezone.now() - timedelta(days=30)
    MemberStats.objects.filter(user__in=[d, s]).update(tv_updated_at=long_ago)
    return d, s, long_ago


def recalculated(users, since):
    return set(MemberStats.objects.filter(user__in=users, tv_updated_at__gt=since).values_list("user_id", flat=True))


def test_a_view_only_operator_may_not_recalculate_volumes(client, stale):
    d, s, long_ago = stale
    client.force_login(staff("view-network@example.com", "view_membernetwork"))
    assert 'value="recalculate_volumes"' not in client.get(NETWORK).content.decode()
    r = action(client, NETWORK, "recalculate_volumes", [d.pk], across=True)
    assert r.status_code == 403
    assert recalculated([d, s], long_ago) == set()


def test_the_change_permission_recalculates_up_to_the_cap(client, stale, monkeypatch):
    d, s, long_ago = stale
    client.force_login(staff("network-op@example.com", "view_membernetwork", "change_membernetwork"))
    assert 'value="recalculate_volumes"' in client.get(NETWORK).content.decode()
    monkeypatch.setattr(mlm_admin, "RECALCULATE_MAX_SELECTED", 1)
    r = action(client, NETWORK, "recalculate_volumes", [d.pk], across=True)  # both members: over the cap
    assert r.status_code == 302 and recalculated([d, s], long_ago) == set()
    assert any("at most 1" in t for t in texts(r))
    r = action(client, NETWORK, "recalculate_volumes", [d.pk])
    assert r.status_code == 302 and recalculated([d, s], long_ago) == {d.pk}
    assert MemberStats.objects.get(user=d).tv > 0


# --- malformed parameters -----------------------------------------------------------------------

@pytest.fixture
def operator(db):
    return UserFactory(email="op-authz@example.com", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("month", ["x", "2026-13", "٢٠٢٦-٠١", "2026-1", "0000-01"])
def test_a_bad_month_filter_is_ignored_with_a_message(client, operator, stale, month):
    client.force_login(operator)
    r = client.get("/admin/mlm/bonus/", {"month": month})
    assert r.status_code == 200
    assert any("is not a month" in t for t in texts(r))
    r = client.get("/admin/mlm/bonus/export/", {"format": "csv", "month": month})
    assert r.status_code == 200
    b"".join(r.streaming_content)


def test_a_good_month_filter_still_filters(client, operator, stale):
    client.force_login(operator)
    this_month, other = f"{timezone.now():%Y-%m}", "1999-01"
    rows = b"".join(client.get("/admin/mlm/bonus/export/", {"format": "csv", "month": this_month})
                    .streaming_content).decode().strip().splitlines()
    assert len(rows) > 1
    rows = b"".join(client.get("/admin/mlm/bonus/export/", {"format": "csv", "month": other})
                    .streaming_content).decode().strip().splitlines()
    assert len(rows) == 1  # the header only


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize("text", ["²", "arabic-indic id", "99999999999999999999999"])
def test_a_non_ascii_member_id_is_an_unknown_member(client, operator, stale, text):
    s = stale[1]
    if text == "arabic-indic id":  # int() reads it as the member's id; a member id is typed in ASCII
        text = str(s.pk).translate(ARABIC_INDIC)
    client.force_login(operator)
    r = client.get("/admin/mlm/purchasepreview/", {"option": option("1000").pk, "member": text})
    assert r.status_code == 200
    assert "No member" in r.content.decode()


def test_a_member_id_still_finds_the_member(client, operator, stale):
    d, s, _ = stale
    client.force_login(operator)
    r = client.get("/admin/mlm/purchasepreview/", {"option": option("1000").pk, "member": str(s.pk)})
    assert r.status_code == 200 and "No member" not in r.content.decode()
