"""purchase_refund, its signal, the staff API and the admin action (money-lifecycle §2)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import LedgerEntry
from accounts.selectors import ledger_mismatches
from common.errors import ConflictError
from mlm.models import Bonus
from purchases.models import Purchase, Refund
from purchases.services import purchase_create, purchase_grant, purchase_refund
from purchases.signals import purchase_refunded
from tests.factories import OptionFactory, UserFactory
from tests.mlm.factories import member, option
from tokens.models import Revenue

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def refunded_signals():
    calls = []

    def receiver(sender, purchase, refund, **kwargs):
        calls.append((purchase.pk, refund.pk, purchase.is_refunded))

    purchase_refunded.connect(receiver, dispatch_uid="test-refunded")
    yield calls
    purchase_refunded.disconnect(dispatch_uid="test-refunded")


def test_regular_refund_credits_the_price_back_and_signals_after_commit(django_capture_on_commit_callbacks,
                                                                        refunded_signals):
    buyer = UserFactory(balance="150")
    staff = UserFactory(is_staff=True)
    p = purchase_create(user=buyer, option=OptionFactory(pack_price=D("50")), packs=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        refund = purchase_refund(purchase=p, reason="  changed my mind ", refunded_by=staff)
    assert refunded_signals == []  # not before the commit
    for cb in callbacks:
        cb()
    assert refunded_signals == [(p.pk, refund.pk, True)]
    assert (refund.amount, refund.reason, refund.refunded_by) == (D("150"), "changed my mind", staff)
    assert p.is_refunded and not p.is_counted
    p.refresh_from_db()
    assert p.refunded_at == refund.created_at
    row = LedgerEntry.objects.get(idempotency_key=f"refund:{p.pk}")
    assert (row.wallet, row.amount, row.reason, row.cause, row.created_by) == ("active", D("150"), "refund", refund,
                                                                               staff)
    buyer.refresh_from_db()
    assert buyer.balance_active == D("150")
    assert ledger_mismatches() == []


def test_legacy_refund_moves_no_wallet_money(refunded_signals, django_capture_on_commit_callbacks):
    buyer = UserFactory()
    legacy, _ = purchase_grant(user=buyer, option=OptionFactory(), shares=100, price="5", kind="legacy",
                               idempotency_key="L-1")
    rows = LedgerEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=legacy)
    assert refund.amount == D("5") and LedgerEntry.objects.count() == rows
    assert refunded_signals == [(legacy.pk, refund.pk, True)]


def test_refusals_write_nothing(refunded_signals, django_capture_on_commit_callbacks):
    buyer = UserFactory(balance="50")
    grant, _ = purchase_grant(user=buyer, option=OptionFactory(), shares=10, price="1", kind="bonus",
                              idempotency_key="B-1")
    p = purchase_create(user=buyer, option=OptionFactory(pack_price=D("50")))
    before = (Refund.objects.count(), LedgerEntry.objects.count())
    with pytest.raises(ValidationError) as exc:
        purchase_refund(purchase=grant)
    assert exc.value.error_dict["purchase"][0].code == "not_refundable"
    with pytest.raises(ValidationError) as exc:
        purchase_refund(purchase=p, reason="x" * 256)
    assert exc.value.error_dict["reason"][0].code == "reason_too_long"
    with pytest.raises(ValidationError) as exc:
        purchase_refund(purchase=Purchase(pk=10**9))
    assert exc.value.error_dict["purchase"][0].code == "unknown_purchase"
    assert (Refund.objects.count(), LedgerEntry.objects.count()) == before
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    with pytest.raises(ConflictError) as exc, django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=Purchase.objects.get(pk=p.pk))  # a fresh instance: the lock decides
    assert exc.value.error_dict["purchase"][0].code == "already_refunded"
    assert len(refunded_signals) == 1


# --- API --------------------------------------------------------------------------------------

@pytest.fixture
def staff_client(member_client):
    return member_client(UserFactory(email="staff-refunds@example.com", is_staff=True, is_superuser=True))


@pytest.fixture
def bought(root, django_capture_on_commit_callbacks):
    d = member(rank="director")
    s = member(d)
    from accounts.services import wallet_deposit

    wallet_deposit(user=s, amount="1000", reference="api-refund")
    with django_capture_on_commit_callbacks(execute=True):
        p = purchase_create(user=s, option=option("1000"))
    return d, s, p


def test_api_refund_returns_what_was_taken_back(bought, staff_client, member_client,
                                                django_capture_on_commit_callbacks):
    d, s, p = bought
    with django_capture_on_commit_callbacks(execute=True):
        r = staff_client.post(f"/api/purchases/{p.pk}/refund/", {"reason": "duplicate"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["refund"]["purchase"] == p.pk and body["refund"]["reason"] == "duplicate"
    assert body["refund"]["refunded_by"] == "staff-refunds@example.com"
    taken = body["taken_back"]
    assert D(taken["wallet_credit"]["amount"]) == D("1000") and taken["wallet_credit"]["wallet"] == "active"
    assert {(v["user_id"], v["volume"]) for v in taken["volumes"]} == {(s.pk, "pv"), (s.pk, "monthly_pv"),
                                                                        (d.pk, "fv")}
    # The clawback runs after the commit (a task): the answer says what it takes back, from whom.
    assert taken["clawback_done"] is False
    diff = next(b for b in taken["bonuses"] if b["kind"] == "differential")
    assert (diff["user_id"], D(diff["amount"]), diff["action"], D(diff["debit"])) == (d.pk, D("140"), "reverse",
                                                                                      D("140"))
    assert D(taken["revenue"]["amount"]) == D("1000") and taken["revenue"]["currency"] == "USD"
    assert Bonus.objects.get(purchase=p, kind="differential").status == "reversed"
    assert Revenue.objects.get(external_ref=f"refund:{body['refund']['id']}").amount_zar < 0

    assert member_client(s).get(f"/api/purchases/{p.pk}/").json()["refunded_at"] is not None

    r = staff_client.post(f"/api/purchases/{p.pk}/refund/", {}, format="json")
    assert r.status_code == 409 and r.json()["code"] in ("already_refunded", "invalid", "error")
    assert "already refunded" in r.json()["message"]


def test_api_refund_errors(bought, staff_client, member_client):
    d, s, p = bought
    assert staff_client.post("/api/purchases/999999999/refund/", {}, format="json").status_code == 404
    assert member_client(s).post(f"/api/purchases/{p.pk}/refund/", {}, format="json").status_code == 403
    grant = Bonus.objects.get(purchase=p, kind="investment").granted_purchase
    r = staff_client.post(f"/api/purchases/{grant.pk}/refund/", {}, format="json")
    assert r.status_code == 400 and "bonus auto-purchase" in r.json()["message"]
    r = staff_client.post(f"/api/purchases/{p.pk}/refund/", {"reason": "x" * 300}, format="json")
    assert r.status_code == 400
    assert not Refund.objects.exists()


# --- admin ------------------------------------------------------------------------------------

def test_admin_refund_shows_what_is_taken_back_then_refunds(bought, client, django_capture_on_commit_callbacks):
    d, s, p = bought
    d.refresh_from_db()
    operator = UserFactory(email="op-refunds@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    assert client.get("/admin/purchases/purchase/?refunded=no").status_code == 200
    page = client.post("/admin/purchases/purchase/", {"action": "refund", "_selected_action": [p.pk]})
    assert page.status_code == 200
    html = page.content.decode()
    for text in (f"Purchase #{p.pk}", d.email, "Differential", "140.00", "reverse", "Personal volume this month",
                 "pack-sale revenue", "+1,000.00 USD", 'id="confirm-refund"'):
        assert text in html, text
    assert not Refund.objects.exists()  # the confirmation page changes nothing

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/purchases/purchase/", {"action": "refund", "_selected_action": [p.pk],
                                                       "apply": "1", "reason": "fraud"})
    assert r.status_code == 302
    refund = Refund.objects.get(purchase=p)
    assert (refund.reason, refund.refunded_by) == ("fraud", operator)
    assert Bonus.objects.get(purchase=p, kind="differential").status == "reversed"
    # A second time: the service's refusal is shown, nothing changes.
    r = client.post("/admin/purchases/purchase/", {"action": "refund", "_selected_action": [p.pk],
                                                   "apply": "1", "reason": ""}, follow=True)
    assert "already refunded" in r.content.decode()
    assert Refund.objects.filter(purchase=p).count() == 1
    for url in ("/admin/purchases/refund/", "/admin/mlm/processedrefund/", "/admin/purchases/purchase/?refunded=yes"):
        assert client.get(url).status_code == 200, url


def test_admin_refund_needs_the_permission(bought, client):
    d, s, p = bought
    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    from django.contrib.auth.models import Permission

    clerk.user_permissions.add(Permission.objects.get(codename="view_purchase"))
    client.force_login(clerk)
    page = client.get("/admin/purchases/purchase/").content.decode()
    assert 'value="refund"' not in page
    client.post("/admin/purchases/purchase/", {"action": "refund", "_selected_action": [p.pk], "apply": "1"})
    assert not Refund.objects.exists()
