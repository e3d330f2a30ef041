"""The audit trail (django-simple-history, common.audit): operators' changes to the plan, the
settings and the withdrawals keep who, when and every field before and after, shown in the
admin; manual ranks are the append-only RankHistory rows; money rows have no history."""

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict

from accounts.models import LedgerEntry, WalletSettings
from common import display
from mlm.models import Bonus, PlanSettings, Rank, RankHistory
from purchases.models import Purchase
from tests.factories import UserFactory
from tests.withdrawals.conftest import earn, trc20
from tokens.models import BuyOrder, BuyOrderConfig, BuyOrderConfigChange, Revenue
from tokens.services import buy_order_config_update
from withdrawals.models import Withdrawal
from withdrawals.services import withdrawal_reject, withdrawal_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(email="op@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def form_data(obj, **changes) -> dict:
    data = {k: ("" if v is None else v) for k, v in model_to_dict(obj).items()}
    data.update(changes)
    return data


def test_rank_rate_change_in_the_admin_is_recorded_with_who_and_before_after(client, operator):
    rank = Rank.objects.order_by("position")[1]
    old_rate = rank.rate
    url = f"/admin/mlm/rank/{rank.pk}/change/"
    response = client.post(url, form_data(rank, rate="0.123400"))
    assert response.status_code == 302, response.content[:2000]
    record = rank.history.latest()
    assert record.history_user == operator and record.history_type == "~"
    delta = record.diff_against(record.prev_record)
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("rate", old_rate, Decimal("0.123400"))]
    page = client.get(f"/admin/mlm/rank/{rank.pk}/history/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "op@example.com" in html and "Revert" not in html
    # Rates as percentages, not the column's 6 decimals; the baseline version is the system's.
    assert f"{display.rate(old_rate, places=4)}</span> → <span class=\"num\">12.34%</span>" in html
    assert "0.123400" not in html and str(old_rate) not in html
    assert "system (history starts)" in html and ">None<" not in html


def test_history_values_show_rates_as_percentages_and_money_without_trailing_zeros():
    from common.audit import audit_value, is_fraction_field

    plan_field = PlanSettings._meta.get_field
    assert is_fraction_field(plan_field("pioneer_rate")) and is_fraction_field(plan_field("branch_cap"))
    assert is_fraction_field(BuyOrderConfig._meta.get_field("max_slippage"))
    assert not is_fraction_field(WalletSettings._meta.get_field("withdrawal_fee"))
    assert audit_value(plan_field("pioneer_rate"), Decimal("0.040000")) == "4%"
    assert audit_value(BuyOrderConfig._meta.get_field("max_slippage"), Decimal("0.0125")) == "1.25%"
    fee = WalletSettings._meta.get_field("withdrawal_fee")
    assert audit_value(fee, Decimal("1500.00000000")) == "1,500.00"
    assert audit_value(fee, Decimal("0.00100000")) == "0.001"  # a change below a cent stays visible
    assert audit_value(plan_field("pioneer_limit"), 50) == 50 and audit_value(fee, None) is None


def test_a_change_without_an_operator_says_system(client, operator):
    wallet = WalletSettings.load()
    wallet.withdrawal_fee = Decimal("2.5")
    wallet.save()  # a command or a service without a user
    html = client.get(f"/admin/accounts/walletsettings/{wallet.pk}/history/").content.decode()
    assert '<span class="audit-system">system</span>' in html and ">None<" not in html
    assert "2.50" in html and "2.50000000" not in html


def test_plan_and_wallet_settings_changes_name_the_operator(client, operator):
    plan = PlanSettings.load()
    response = client.post(f"/admin/mlm/plansettings/{plan.pk}/change/", form_data(plan, pioneer_limit=60))
    assert response.status_code == 302
    record = plan.history.latest()
    assert (record.history_user, record.prev_record.pioneer_limit, record.pioneer_limit) == (operator, 50, 60)
    wallet = WalletSettings.load()
    response = client.post(f"/admin/accounts/walletsettings/{wallet.pk}/change/",
                           form_data(wallet, withdrawal_fee="2.5"))
    assert response.status_code == 302
    record = wallet.history.latest()
    assert record.history_user == operator and record.withdrawal_fee == Decimal("2.5")
    assert client.get(f"/admin/accounts/walletsettings/{wallet.pk}/history/").status_code == 200


def test_buy_order_settings_keep_their_own_audit_and_get_history(client, operator):
    buy_order_config_update(changed_by=operator, revenue_percentage=Decimal("0.2"))  # no request: a service call
    config = BuyOrderConfig.objects.get()
    record = config.history.latest()
    assert record.history_user == operator and record.prev_record.revenue_percentage == Decimal("0.1")
    change = BuyOrderConfigChange.objects.get()
    assert change.changed_by == operator and change.changes["revenue_percentage"]["new"] == "0.2000"
    assert client.get(f"/admin/tokens/buyorderconfig/{config.pk}/history/").status_code == 200


def test_withdrawal_approve_and_reject_record_who(client, operator):
    member = earn(UserFactory(email="alice@example.com"), "200")
    first = withdrawal_request(user=member, amount="20", destination=trc20(1))
    second = withdrawal_request(user=member, amount="30", destination=trc20(2))
    response = client.post("/admin/withdrawals/withdrawal/", {"action": "approve_action", "index": "0",
                                                              "_selected_action": [first.pk]})
    assert response.status_code == 302
    approved = first.history.latest()
    assert (approved.status, approved.history_user, approved.prev_record.status) == ("approved", operator, "requested")
    # a service call outside any request (a task, the shell) names its operator too
    checker = UserFactory(email="checker@example.com", is_staff=True)
    withdrawal_reject(withdrawal=second, reason="Wrong address", rejected_by=checker)
    rejected = second.history.latest()
    assert (rejected.status, rejected.history_user, rejected.reason) == ("rejected", checker, "Wrong address")
    page = client.get(f"/admin/withdrawals/withdrawal/{first.pk}/history/")
    assert page.status_code == 200 and "op@example.com" in page.content.decode()
    assert [h.status for h in first.history.order_by("history_date", "history_id")] == ["requested", "approved"]


def test_history_is_never_written_back(client, operator):
    member = earn(UserFactory(email="alice@example.com"), "200")
    withdrawal = withdrawal_request(user=member, amount="20", destination=trc20(1))
    withdrawal_reject(withdrawal=withdrawal, reason="no", rejected_by=operator)
    requested = withdrawal.history.earliest()
    url = f"/admin/withdrawals/withdrawal/{withdrawal.pk}/history/{requested.history_id}/"
    assert client.get(url).status_code == 200  # a past version can be looked at
    assert client.post(url, {"_change_history": "1"}).status_code == 403
    rank = Rank.objects.order_by("position")[1]
    client.post(f"/admin/mlm/rank/{rank.pk}/change/", form_data(rank, rate="0.2"))
    old = rank.history.earliest()
    assert client.post(f"/admin/mlm/rank/{rank.pk}/history/{old.history_id}/",
                       form_data(old.instance)).status_code == 403
    withdrawal.refresh_from_db()
    rank.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.REJECTED and rank.rate == Decimal("0.2")


def test_manual_rank_set_records_who_before_and_after(client, operator):
    member = UserFactory(email="ranked@example.com")
    ranks = list(Rank.objects.order_by("position"))
    response = client.post("/admin/mlm/membernetwork/", {
        "action": "set_rank", "_selected_action": [member.pk], "apply": "1", "rank": ranks[2].code,
        "note": "promotion agreed"})
    assert response.status_code == 302
    entry = RankHistory.objects.get(user=member)
    assert (entry.reason, entry.created_by, entry.old_rank, entry.new_rank, entry.note) == \
        ("manual", operator, ranks[0], ranks[2], "promotion agreed")
    listing = client.get("/admin/mlm/rankhistory/?reason__exact=manual").content.decode()
    assert "ranked@example.com" in listing and "op@example.com" in listing and "promotion agreed" in listing


def test_money_rows_have_no_history():
    for model in (LedgerEntry, Bonus, Purchase, BuyOrder, Revenue):
        assert not hasattr(model, "history"), model
    for model in (Rank, PlanSettings, WalletSettings, BuyOrderConfig, Withdrawal):
        assert hasattr(model, "history"), model


def test_member_request_and_cancel_over_the_api_name_the_member(member_client, client, operator):
    """Token-authenticated API calls: DRF signs the member in on the request the middleware holds."""
    member = earn(UserFactory(email="alice@example.com"), "200")
    api = member_client(member)
    response = api.post("/api/me/withdrawals/", {"amount": "20", "destination": trc20(1)}, format="json")
    assert response.status_code == 201, response.content
    withdrawal = Withdrawal.objects.get(user=member)
    assert api.post(f"/api/me/withdrawals/{withdrawal.pk}/cancel/").status_code == 200
    assert [(h.status, h.history_user) for h in withdrawal.history.order_by("history_date", "history_id")] == \
        [("requested", member), ("cancelled", member)]
    change_page = client.get(f"/admin/withdrawals/withdrawal/{withdrawal.pk}/change/").content.decode()
    assert f'/admin/withdrawals/withdrawal/{withdrawal.pk}/history/' in change_page  # the History button
