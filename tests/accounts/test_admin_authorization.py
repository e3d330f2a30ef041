"""Who may do what on the members' admin: back-office logins are changed by superusers only,
only superusers create them, the money actions need their own permissions and never serve the
operator's own account, the member page's sections follow the view permissions of their models,
the genealogy JSON refuses a huge offset, the wallet settings list writes nothing for outsiders."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from accounts.models import LedgerEntry, User, WalletSettings
from accounts.services import wallet_deposit
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "An0ther-long-passphrase!"


def staff(email, *codenames, **extra):
    """A staff login (not superuser) with the given permissions (codenames, any app)."""
    user = UserFactory(email=email, is_staff=True, **extra)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    assert user.user_permissions.count() == len(codenames)
    return user


@pytest.fixture
def clerk(db):
    return staff("clerk@example.com", "view_user", "change_user", "add_user")


@pytest.fixture
def boss(db):
    return UserFactory(email="boss@example.com", is_staff=True, is_superuser=True)


def password_form():
    return {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}


def profile_form(user, **changes):
    return {"email": user.email, "first_name": user.first_name, "last_name": user.last_name,
            "is_active": "on", **changes}


# --- 1. back-office logins are changed by superusers only ----------------------------------

def test_an_operator_who_may_change_members_cannot_take_over_a_back_office_login(client, clerk, boss):
    colleague = staff("colleague@example.com")
    member = UserFactory(email="plain@example.com")
    client.force_login(clerk)
    for target in (boss, colleague):
        url = f"/admin/accounts/user/{target.pk}/password/"
        assert client.get(url).status_code == 403
        assert client.post(url, password_form()).status_code == 403
        # The change form is shown read-only; a save is refused.
        html = client.get(f"/admin/accounts/user/{target.pk}/change/").content.decode()
        assert 'name="email"' not in html
        r = client.post(f"/admin/accounts/user/{target.pk}/change/",
                        profile_form(target, email="attacker@example.com"))
        assert r.status_code == 403
        target.refresh_from_db()
        assert target.email != "attacker@example.com" and target.is_active
        assert not target.check_password(NEW_PASSWORD)
    # A member is still his to edit.
    assert client.get(f"/admin/accounts/user/{member.pk}/password/").status_code == 200
    r = client.post(f"/admin/accounts/user/{member.pk}/change/", profile_form(member, email="new@example.com"))
    assert r.status_code == 302
    member.refresh_from_db()
    assert member.email == "new@example.com"


def test_a_superuser_still_changes_back_office_logins(client, clerk, boss):
    other_boss = UserFactory(email="boss2@example.com", is_staff=True, is_superuser=True)
    client.force_login(boss)
    for target in (clerk, other_boss):
        url = f"/admin/accounts/user/{target.pk}/password/"
        assert client.get(url).status_code == 200
        assert client.post(url, password_form()).status_code == 302
        r = client.post(f"/admin/accounts/user/{target.pk}/change/",
                        profile_form(target, email=f"renamed-{target.pk}@example.com", is_staff="on",
                                     is_superuser="on" if target.is_superuser else ""))
        assert r.status_code == 302
        target.refresh_from_db()
        assert target.check_password(NEW_PASSWORD) and target.email == f"renamed-{target.pk}@example.com"


# --- 2. only superusers create back-office logins ------------------------------------------

def test_the_add_form_offers_no_staff_status_to_a_non_superuser(client, clerk, boss):
    client.force_login(clerk)
    assert 'name="is_staff"' not in client.get("/admin/accounts/user/add/").content.decode()
    r = client.post("/admin/accounts/user/add/", {"email": "sneaky@example.com", "first_name": "S",
                                                  "last_name": "N", "is_staff": "on", "is_superuser": "on"})
    assert r.status_code == 302
    created = User.objects.get(email="sneaky@example.com")
    assert not created.is_staff and not created.is_superuser
    # A superuser still creates staff logins.
    client.force_login(boss)
    assert 'name="is_staff"' in client.get("/admin/accounts/user/add/").content.decode()
    r = client.post("/admin/accounts/user/add/", {"email": "newstaff@example.com", "first_name": "N",
                                                  "last_name": "S", "is_staff": "on"})
    assert r.status_code == 302 and User.objects.get(email="newstaff@example.com").is_staff


# --- 3. deposit and transfer: their own permissions, never the operator's own account --------

def test_deposit_and_transfer_need_their_own_permissions(client):
    alice = UserFactory(email="alice@example.com", balance="100")
    bob = UserFactory(email="bob@example.com")
    # The stock "add ledger entry" permission no longer moves money.
    operator = staff("cashier@example.com", "view_user", "add_ledgerentry")
    client.force_login(operator)
    deposit, transfer = f"/admin/accounts/user/{bob.pk}/deposit/", f"/admin/accounts/user/{alice.pk}/transfer/"
    before = LedgerEntry.objects.count()
    assert client.get(deposit).status_code == 403
    assert client.post(deposit, {"amount": "5", "reference": "d-1"}).status_code == 403
    assert client.get(transfer).status_code == 403
    assert client.post(transfer, {"receiver": bob.email, "wallet": "active", "amount": "5",
                                  "reference": "t-1"}).status_code == 403
    assert LedgerEntry.objects.count() == before
    operator.user_permissions.add(*Permission.objects.filter(codename__in=["deposit", "transfer_between_members"]))
    assert client.post(deposit, {"amount": "5", "reference": "d-1"}).status_code == 302
    assert client.post(transfer, {"receiver": bob.email, "wallet": "active", "amount": "5",
                                  "reference": "t-1"}).status_code == 302
    bob.refresh_from_db()
    assert bob.balance_active == Decimal("10")


def test_an_operator_never_moves_money_into_or_out_of_his_own_account(client):
    operator = staff("cashier@example.com", "view_user", "deposit", "transfer_between_members", balance="100")
    member = UserFactory(email="member@example.com", balance="100")
    client.force_login(operator)
    before = LedgerEntry.objects.count()
    r = client.post(f"/admin/accounts/user/{operator.pk}/deposit/", {"amount": "1000", "reference": "self-1"})
    assert r.status_code == 200 and "your own account" in r.content.decode()
    transfer = {"wallet": "active", "amount": "50"}
    r = client.post(f"/admin/accounts/user/{member.pk}/transfer/",
                    {**transfer, "receiver": operator.email, "reference": "to-me"})
    assert r.status_code == 200 and "your own account" in r.content.decode()
    r = client.post(f"/admin/accounts/user/{operator.pk}/transfer/",
                    {**transfer, "receiver": member.referral_code, "reference": "from-me"})
    assert r.status_code == 200 and "your own account" in r.content.decode()
    assert LedgerEntry.objects.count() == before
    operator.refresh_from_db()
    member.refresh_from_db()
    assert operator.balance_active == member.balance_active == Decimal("100")


# --- 4. the member page's sections follow their models' view permissions ------------------

def test_a_member_viewer_sees_the_profile_but_not_the_sections_he_may_not_view(client):
    member = UserFactory(email="watched@example.com", first_name="Wat", last_name="Ched")
    wallet_deposit(user=member, amount=Decimal("7"), reference="cash-desk-42", description="cash desk 42")
    viewer = staff("viewer@example.com", "view_user")
    client.force_login(viewer)
    url = f"/admin/accounts/user/{member.pk}/change/"
    r = client.get(url)
    html = r.content.decode()
    assert r.status_code == 200 and "watched@example.com" in html and "Wat" in html
    for key in ("purchases", "ledger", "bonuses", "withdrawals", "ranks"):
        assert f'<section id="{key}"' not in html and f'data-tab="{key}"' not in html
    assert "cash desk 42" not in html
    for action in ("deposit", "transfer", "set-rank"):  # nor the money actions they could not run
        assert f'data-action="{action}"' not in html
    viewer.user_permissions.add(Permission.objects.get(codename="view_ledgerentry"))
    html = client.get(url).content.decode()
    assert '<section id="ledger"' in html and "cash desk 42" in html
    assert '<section id="purchases"' not in html and '<section id="bonuses"' not in html


# --- 5. the genealogy JSON's offset ---------------------------------------------------------

@pytest.mark.parametrize("bad", ["99999999999999999999", "1000000001", "%2B5", "%205", "%D9%A1", "", "-0"])
def test_children_json_refuses_an_offset_that_is_not_plain_digits_or_too_large(client, boss, bad):
    member = UserFactory()
    client.force_login(boss)
    r = client.get(f"/admin/accounts/user/genealogy/{member.pk}/children/?offset={bad}")
    assert r.status_code == 400 and r.json()["offset"][0]["code"] == "invalid", bad


def test_children_json_accepts_the_largest_offset(client, boss):
    member = UserFactory()
    UserFactory(sponsor=member)
    client.force_login(boss)
    r = client.get(f"/admin/accounts/user/genealogy/{member.pk}/children/?offset=1000000000")
    assert r.status_code == 200 and r.json()["children"] == []
    assert len(client.get(f"/admin/accounts/user/genealogy/{member.pk}/children/?offset=0").json()["children"]) == 1


# --- 6. the wallet settings list writes nothing for staff who may not see it ------------------

def test_the_wallet_settings_list_checks_the_permission_before_creating_the_row(client):
    WalletSettings.objects.all().delete()
    client.force_login(staff("nosy@example.com", "view_user"))
    assert client.get("/admin/accounts/walletsettings/").status_code == 403
    assert not WalletSettings.objects.exists()
    client.force_login(staff("reader@example.com", "view_walletsettings"))
    assert client.get("/admin/accounts/walletsettings/").status_code == 200
    assert WalletSettings.objects.exists()
