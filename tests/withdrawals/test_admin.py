"""The withdrawal queue in the admin: every action calls the services."""

import csv
import io
from decimal import Decimal

import pytest

from accounts.models import User
from tests.factories import UserFactory
from tests.withdrawals.conftest import earn, trc20
from withdrawals.models import Withdrawal
from withdrawals.services import withdrawal_approve, withdrawal_request

pytestmark = pytest.mark.django_db

URL = "/admin/withdrawals/withdrawal/"


@pytest.fixture
def operator(client):
    user = UserFactory(email="op@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def queue():
    alice = earn(UserFactory(email="alice@example.com"), "200")
    bob = earn(UserFactory(email="=bob@example.com"), "200")  # a formula-looking e-mail for the CSV
    return [withdrawal_request(user=alice, amount="20", destination=trc20(1)),
            withdrawal_request(user=alice, amount="30", destination=trc20(2)),
            withdrawal_request(user=bob, amount="40", destination=trc20(3))]


def act(client, action, withdrawals, **extra):
    data = {"action": action, "_selected_action": [w.pk for w in withdrawals], **extra}
    if "apply" not in extra:
        data["index"] = "0"
    return client.post(URL, data)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_queue_filters_search_and_read_only_rows(client, operator, queue):
    for query in ("", "?status__exact=requested", "?method__exact=USDT-TRC20", f"?q={trc20(2)}", "?q=alice",
                  "?created_at__year=2026"):
        assert client.get(URL + query).status_code == 200, query
    assert client.get(URL + "?q=alice").context["cl"].result_count == 2
    detail = client.get(f"{URL}{queue[0].pk}/change/")
    assert detail.status_code == 200 and b"Save" not in detail.content  # read-only
    assert client.get(URL + "add/").status_code == 403
    assert client.post(f"{URL}{queue[0].pk}/delete/").status_code == 403


def test_bulk_approve_and_errors_are_shown(client, operator, queue):
    withdrawal_approve(withdrawal=queue[0])
    r = act(client, "approve_action", queue)
    assert r.status_code == 302
    r = client.get(URL)
    text = " ".join(messages_of(r))
    assert "2 withdrawal(s) approved" in text
    assert f"#{queue[0].pk}: Withdrawal #{queue[0].pk} is approved" in text
    assert set(Withdrawal.objects.values_list("status", flat=True)) == {"approved"}
    assert Withdrawal.objects.get(pk=queue[1].pk).approved_by == operator


def test_export_approved_as_csv(client, operator, queue):
    withdrawal_approve(withdrawal=queue[0])
    withdrawal_approve(withdrawal=queue[2])
    r = act(client, "export_approved_csv_action", queue)
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert r.streaming
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0] == ["id", "member", "method", "destination", "net_amount", "created_at"]
    assert [row[0] for row in rows[1:]] == [str(queue[0].pk), str(queue[2].pk)]  # approved ones only
    assert rows[1][1:5] == ["alice@example.com", "USDT-TRC20", trc20(1), "19.00000000"]
    assert rows[2][1] == "'=bob@example.com"  # never a spreadsheet formula


def test_mark_paid_page(client, operator, queue):
    for w in queue[:2]:
        withdrawal_approve(withdrawal=w)
    page = act(client, "mark_paid_action", queue)
    assert page.status_code == 200
    assert f"tx_ref_{queue[0].pk}".encode() in page.content
    assert f"tx_ref_{queue[2].pk}".encode() not in page.content  # not approved: not listed
    r = act(client, "mark_paid_action", queue, apply="1", **{f"tx_ref_{queue[0].pk}": " 0xpaid1 ",
                                                            f"tx_ref_{queue[1].pk}": ""})
    assert r.status_code == 302
    statuses = dict(Withdrawal.objects.values_list("pk", "status"))
    assert [statuses[w.pk] for w in queue] == ["paid", "approved", "requested"]
    paid = Withdrawal.objects.get(pk=queue[0].pk)
    assert (paid.tx_ref, paid.paid_by) == ("0xpaid1", operator)


def test_mark_paid_with_no_approved_one_warns(client, operator, queue):
    r = act(client, "mark_paid_action", queue)
    assert r.status_code == 302
    assert "None of the selected withdrawals is approved" in " ".join(messages_of(client.get(URL)))


def test_reject_page_gives_the_money_back(client, operator, queue):
    alice = queue[0].user
    withdrawal_approve(withdrawal=queue[1])
    page = act(client, "reject_action", queue[:2])
    assert page.status_code == 200 and trc20(1).encode() in page.content
    assert act(client, "reject_action", queue[:2], apply="1", reason="").status_code == 200  # reason required
    assert Withdrawal.objects.filter(status="rejected").count() == 0
    r = act(client, "reject_action", queue[:2], apply="1", reason="KYC incomplete.")
    assert r.status_code == 302
    assert list(Withdrawal.objects.filter(status="rejected").values_list("reason", flat=True)) == [
        "KYC incomplete."] * 2
    assert User.objects.get(pk=alice.pk).balance_passive == Decimal("200")


def test_the_queue_refuses_an_operators_own_withdrawal(client, operator):
    own = withdrawal_request(user=earn(operator, "100"), amount="30", destination=trc20(7))

    act(client, "approve_action", [own])

    text = " ".join(messages_of(client.get(URL)))
    assert "is your own: another operator must approve it" in text
    assert Withdrawal.objects.get(pk=own.pk).status == "requested"


def test_approving_and_paying_are_two_permissions(client, queue):
    from django.contrib.auth.models import Permission

    def operator_with(*codenames):
        user = UserFactory(is_staff=True)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="withdrawals",
                                                            codename__in=("view_withdrawal", *codenames)))
        client.force_login(user)
        return user

    operator_with("change_withdrawal")  # the queue's other actions, not the two steps
    assert act(client, "approve_action", queue[:1]).status_code == 403
    assert Withdrawal.objects.get(pk=queue[0].pk).status == "requested"

    checker = operator_with("approve_withdrawal")
    act(client, "approve_action", queue[:1])
    assert Withdrawal.objects.get(pk=queue[0].pk).approved_by == checker
    assert act(client, "mark_paid_action", queue[:1], apply="1",
               **{f"ref_{queue[0].pk}": "0xabc"}).status_code == 403  # the checker does not pay

    operator_with("pay_withdrawal")
    page = act(client, "mark_paid_action", queue[:1])
    assert page.status_code == 200 and "Mark withdrawals paid" in page.content.decode()
