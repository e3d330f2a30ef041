"""Preview of a purchase over the API and in the admin (§11): the same rules as processing, and
nothing written."""

from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.http import urlencode

from mlm.models import Bonus
from mlm.selectors import purchase_preview, purchase_preview_member
from mlm.services import purchase_process
from tests.factories import UserFactory
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db

D = Decimal
WRITES = ("INSERT", "UPDATE", "DELETE", "SAVEPOINT")


@contextmanager
def writes_nothing():
    with CaptureQueriesContext(connection) as ctx:
        yield
    # The API's throttle counts requests in the database cache when no Redis is configured: not a
    # write of the preview (its SAVEPOINT pair and INSERT/UPDATE touch only django_cache).
    statements = [q["sql"] for q in ctx.captured_queries]
    cache = any("django_cache" in sql for sql in statements)
    writes = [sql for sql in statements if sql.lstrip().upper().startswith(WRITES) and "django_cache" not in sql
              and not (cache and sql.lstrip().upper().startswith(("SAVEPOINT", "RELEASE")))]
    assert writes == []


@pytest.fixture
def line(root):
    """root ← D (director) ← P (builder, pioneer) ← S (start): S's purchase pays D and P."""
    d = member(rank="director")
    p = member(d, rank="builder", pioneer=True)
    s = member(p)
    return d, p, s


@pytest.fixture
def staff(api_client):
    api_client.force_authenticate(UserFactory(email="op-preview@example.com", is_staff=True))
    return api_client


def code_of(exc: ValidationError, field: str) -> str:
    return exc.error_dict[field][0].code


def test_staff_preview_lists_every_bonus_with_its_recipient_and_writes_nothing(line, staff, root):
    d, p, s = line
    opt = option("1000")
    with writes_nothing():
        r = staff.post("/api/mlm/preview/", {"member_id": s.pk, "option": opt.pk, "packs": 2}, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["member_id"], body["email"], body["packs"], D(body["price"])) == (s.pk, s.email, 2, D("2000"))
    rows = {(b["user_id"], b["email"], b["kind"]): D(b["amount"]) for b in body["bonuses"]}
    assert rows[(p.pk, p.email, "differential")] == D("80.00")
    assert rows[(p.pk, p.email, "pioneer")] == D("80.00")
    assert rows[(d.pk, d.email, "differential")] == D("200.00")
    assert rows[(s.pk, s.email, "investment")] == D("100.00")  # T = 2,000: 5%
    assert D(body["total"]) == sum(rows.values())
    same = purchase_preview(user=s, option=opt, packs=2)
    assert sorted((b["user_id"], b["kind"], D(b["amount"])) for b in body["bonuses"]) == \
        sorted((b["user_id"], b["kind"], b["amount"]) for b in same)
    # By e-mail, at a price, on a Grace Day: the Grace Day bonus is there too.
    r = staff.post("/api/mlm/preview/", {"email": s.email, "option": opt.pk, "price": "3000",
                                         "when": "2025-03-01T10:00:00Z"}, format="json")
    assert r.status_code == 200, r.json()
    grace = [b for b in r.json()["bonuses"] if b["kind"] == "grace_day"]
    assert [(b["user_id"], D(b["amount"]), b["options"], b["option_id"]) for b in grace] == \
        [(s.pk, D("150.00"), 3000, opt.pk)]


def test_staff_preview_refuses_bad_input_and_members(line, staff, member_client):
    d, p, s = line
    opt = option("1000")
    assert member_client(s).post("/api/mlm/preview/", {"member_id": s.pk, "option": opt.pk},
                                 format="json").status_code == 403
    for body, field in [({"option": opt.pk}, "member_id"),
                        ({"member_id": s.pk, "email": s.email, "option": opt.pk}, "member_id"),
                        ({"member_id": 10**9, "option": opt.pk}, "member_id"),
                        ({"member_id": s.pk, "option": 10**9}, "option"),
                        ({"member_id": s.pk, "option": opt.pk, "packs": 0}, "packs"),
                        ({"member_id": s.pk, "option": opt.pk, "price": "-5"}, "price"),
                        ({"member_id": s.pk, "option": opt.pk, "when": "soon"}, "when")]:
        r = staff.post("/api/mlm/preview/", body, format="json")
        assert r.status_code == 400 and field in r.json()["errors"], (body, r.json())


def test_member_preview_shows_my_outcome_and_my_uplines_total_without_names(root, member_client):
    a = member(rank="builder", pioneer=True)
    s = member(a)
    opt = option("5000", shares=100000)  # unit 0.05
    client = member_client(s)
    with writes_nothing():
        r = client.post("/api/mlm/me/preview/", {"option": opt.pk}, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    rows = purchase_preview(user=s, option=opt)
    own = [(b["kind"], D(b["amount"])) for b in body["own"]]
    assert own == [(b["kind"], b["amount"]) for b in rows if b["user_id"] == s.pk]
    assert ("investment", D("500.00")) in own  # T = 5,000: 10%
    assert body["own"][0]["options"] == 10000 and body["own"][0]["option_id"] == opt.pk
    assert D(body["referral"]) == D("50.00")  # the sponsor's 1%, an amount
    assert D(body["upline_total"]) == D("200.00") + D("200.00") + D("500.00")  # A: 4% + pioneer 4%; root: 10%
    text = r.content.decode()
    assert a.email not in text and str(a.pk) not in [str(v) for v in body.values()] and "user_id" not in text
    # Buying it pays what the preview said.
    p = buy(s, opt)
    purchase_process(purchase_id=p.pk)
    paid = Bonus.objects.filter(purchase=p)
    assert [(b.kind, b.amount) for b in paid.filter(user=s).order_by("id")] == own
    assert sum(b.amount for b in paid.filter(kind="referral")) == D(body["referral"])
    assert sum(b.amount for b in paid.filter(kind__in=["differential", "pioneer", "system_compression"])) == \
        D(body["upline_total"])


def test_member_preview_refuses_what_cannot_be_bought(root, member_client):
    s = member()
    hidden = option("1000", is_active=False)
    c = member_client(s)
    for body in ({"option": hidden.pk}, {"option": 10**9}, {"option": option("1000").pk, "packs": 0}):
        r = c.post("/api/mlm/me/preview/", body, format="json")
        assert r.status_code == 400 and list(r.json()["errors"]) in (["option"], ["packs"]), r.json()
    with pytest.raises(ValidationError) as exc:
        purchase_preview_member(user=s, option=hidden)
    assert code_of(exc.value, "option") == "inactive_option"
    with pytest.raises(ValidationError) as exc:
        purchase_preview_member(user=s, option=10**9)
    assert code_of(exc.value, "option") == "unknown_option"


def test_preview_errors_carry_codes(root):
    s = member()
    opt = option("1000")
    for kwargs, field, code in [({"price": "abc"}, "price", "invalid_price"),
                                ({"price": "0"}, "price", "invalid_price"),
                                ({"packs": 0}, "packs", "invalid_packs"),
                                ({"when": datetime(2025, 3, 1)}, "when", "naive_datetime")]:
        with pytest.raises(ValidationError) as exc:
            purchase_preview(user=s, option=opt, **kwargs)
        assert code_of(exc.value, field) == code, kwargs
    with pytest.raises(ValidationError) as exc:
        purchase_preview(user=root, option=opt)
    assert code_of(exc.value, "user") == "system_root"
    assert purchase_preview(user=s, option=opt, when=datetime(2025, 3, 1, tzinfo=UTC))  # aware: fine


@pytest.fixture
def operator(db):
    return UserFactory(email="op-preview-admin@example.com", is_staff=True, is_superuser=True)


def test_admin_preview_page_shows_the_rows_and_writes_nothing(line, client, operator):
    d, p, s = line
    opt = option("1000")
    client.force_login(operator)
    assert "Preview a purchase" in client.get("/admin/mlm/").content.decode()
    network = client.get(f"/admin/mlm/membernetwork/{s.pk}/change/").content.decode()
    assert f"/admin/mlm/purchasepreview/?{urlencode({'member': s.email})}" in network
    page = client.get(f"/admin/mlm/purchasepreview/?member={s.pk}")
    assert page.status_code == 200 and 'id="purchase-preview"' in page.content.decode()
    assert "preview-bonuses" not in page.content.decode()
    before = (Bonus.objects.count(), s.purchases.count() if hasattr(s, "purchases") else None)
    with writes_nothing():
        page = client.get("/admin/mlm/purchasepreview/", {"member": s.email, "option": opt.pk, "packs": 2})
    html = page.content.decode()
    assert page.status_code == 200 and 'id="preview-bonuses"' in html
    for email in (d.email, p.email, s.email):
        assert email in html
    assert "200.00" in html  # D's differential on 2,000
    assert (Bonus.objects.count(), s.purchases.count() if hasattr(s, "purchases") else None) == before
    # A bad member or price is shown on the form, not raised.
    html = client.get("/admin/mlm/purchasepreview/", {"member": "nobody@example.com", "option": opt.pk,
                                                      "packs": 1}).content.decode()
    assert "No member" in html and "preview-bonuses" not in html
    html = client.get("/admin/mlm/purchasepreview/", {"member": s.pk, "option": opt.pk, "packs": 1,
                                                      "price": "-1"}).content.decode()
    assert "errorlist" in html and "preview-bonuses" not in html


def test_member_summary_api_shows_the_loyalty_streak(root, member_client):
    s = member()
    body = member_client(s).get("/api/mlm/me/summary/").json()
    assert (body["loyalty_streak"], body["is_loyalty_qualified"]) == (0, False)
