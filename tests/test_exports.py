"""CSV and XLSX exports of the admin lists (common.exports): the list's filters, search and date
hierarchy, streamed, machine-readable, safe to open in a spreadsheet, staff with view permission."""

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from accounts.models import LedgerEntry
from accounts.services import wallet_deposit
from common.exports import csv_value, safe_text
from purchases.models import Purchase
from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory
from tests.withdrawals.conftest import earn, trc20
from withdrawals.services import withdrawal_approve, withdrawal_request

pytestmark = pytest.mark.django_db

LEDGER = "/admin/accounts/ledgerentry/"
WITHDRAWALS = "/admin/withdrawals/withdrawal/"


@pytest.fixture
def operator(client):
    user = UserFactory(email="op@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def ledger():
    alice, bob = UserFactory(email="alice@example.com"), UserFactory(email="bob@example.com")
    for i in range(3):
        wallet_deposit(user=alice, amount=Decimal("10.505"), reference=f"a{i}", description="=HYPERLINK(\"x\")")
    wallet_deposit(user=bob, amount=Decimal("7"), reference="b0", description="@SUM(1)")
    return alice, bob


def csv_rows(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def xlsx_rows(response) -> list[tuple]:
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    return list(book.worksheets[0].iter_rows(values_only=True))


def test_csv_follows_the_list_search_and_filters(client, operator, ledger):
    rows = csv_rows(client.get(LEDGER + "export/?format=csv&q=alice"))
    header, body = rows[0], rows[1:]
    assert header[:5] == ["ID", "Created (UTC)", "Member", "Wallet", "Amount (USD)"]
    assert [r[2] for r in body] == ["alice@example.com"] * 3
    # money: 2 places, no separators (half-even: 10.505 → 10.50, 31.515 → 31.52); dates ISO 8601 in UTC
    assert {r[4] for r in body} == {"10.50"} and {r[5] for r in body} == {"10.50", "21.01", "31.52"}
    assert datetime.fromisoformat(body[0][1]).utcoffset().total_seconds() == 0
    # the same filter the list page uses
    everyone = csv_rows(client.get(LEDGER + "export/?format=csv"))[1:]
    assert len(everyone) == LedgerEntry.objects.count() == 4
    assert csv_rows(client.get(LEDGER + "export/?format=csv&reason__exact=deposit&q=bob"))[1:] == \
        [r for r in everyone if r[2] == "bob@example.com"]
    assert csv_rows(client.get(LEDGER + "export/?format=csv&reason__exact=refund"))[1:] == []


def test_status_and_date_hierarchy_filters(client, operator):
    alice = earn(UserFactory(email="alice@example.com"), "200")
    first = withdrawal_request(user=alice, amount="20", destination=trc20(1))
    withdrawal_request(user=alice, amount="30", destination=trc20(2))
    withdrawal_approve(withdrawal=first, approved_by=operator)
    rows = csv_rows(client.get(WITHDRAWALS + "export/?format=csv&status__exact=approved"))
    header, body = rows[0], rows[1:]
    assert [int(r[0]) for r in body] == [first.pk]
    assert body[0][header.index("Approved by")] == "op@example.com"
    assert body[0][header.index("Net (USD)")] == "19.00"  # 20 less the 1 USD fee
    year = first.created_at.year
    assert len(csv_rows(client.get(WITHDRAWALS + f"export/?format=csv&created_at__year={year}"))) == 3
    assert len(csv_rows(client.get(WITHDRAWALS + f"export/?format=csv&created_at__year={year - 1}"))) == 1


def test_purchases_kind_filter_and_xlsx(client, operator):
    member = UserFactory(email="buyer@example.com", balance="500")
    option = OptionFactory(pack_price=Decimal("50"))
    purchase_create(user=member, option=option)
    purchase_create(user=member, option=option, packs=2)
    response = client.get("/admin/purchases/purchase/export/?format=xlsx&kind__exact=regular")
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert 'filename="purchase-' in response["Content-Disposition"]
    rows = xlsx_rows(response)
    assert rows[0][:3] == ("ID", "Created (UTC)", "Member")
    body = rows[1:]
    assert len(body) == Purchase.objects.filter(kind="regular").count() == 2
    price = rows[0].index("Price (USD)")
    assert sorted(r[price] for r in body) == [50, 100]  # numbers, not text
    assert all(isinstance(r[1], datetime) for r in body)
    assert {r[2] for r in body} == {"buyer@example.com"}
    assert xlsx_rows(client.get("/admin/purchases/purchase/export/?format=xlsx&kind__exact=legacy")) == [rows[0]]


def test_formula_injection_is_neutralised(client, operator, ledger):
    rows = csv_rows(client.get(LEDGER + "export/?format=csv"))
    described = {r[7] for r in rows[1:]}
    assert described == {"'=HYPERLINK(\"x\")", "'@SUM(1)"}
    book = load_workbook(io.BytesIO(b"".join(client.get(LEDGER + "export/?format=xlsx").streaming_content)))
    cells = [row[7] for row in book.worksheets[0].iter_rows(min_row=2)]
    assert {c.value for c in cells} == {"'=HYPERLINK(\"x\")", "'@SUM(1)"}
    assert {c.data_type for c in cells} == {"s"}  # text, never a formula
    # numbers are numbers: a negative amount is not "neutralised" into text
    assert csv_value(Decimal("-12.5"), "money") == "-12.50" and safe_text("-12") == "'-12"
    assert csv_value("\tx") == "'\tx" and csv_value("\rx") == "'\rx" and csv_value("+1") == "'+1"


def test_xlsx_drops_characters_xml_forbids(client, operator):
    entry = wallet_deposit(user=UserFactory(), amount=Decimal("1"), reference="ctl")
    # The services refuse control characters now (common.text); a row stored before that may hold them.
    LedgerEntry.objects.filter(pk=entry.pk).update(description="bell\x07 and soh\x01")
    rows = xlsx_rows(client.get(LEDGER + "export/?format=xlsx"))
    assert rows[1][7] == "bell and soh"


def test_only_staff_with_view_permission(client, ledger):
    url = LEDGER + "export/?format=csv"
    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(UserFactory(email="member@example.com"))
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    staff = UserFactory(email="staff@example.com", is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_ledgerentry"))
    client.force_login(staff)
    assert len(csv_rows(client.get(url))) == 5


def test_bad_format_and_bad_filter_are_refused(client, operator, ledger):
    response = client.get(LEDGER + "export/?format=pdf")
    assert response.status_code == 400 and b"csv or xlsx" in response.content
    response = client.get(LEDGER + "export/?format=csv&amount__nonsense=1")
    assert response.status_code == 400 and b"filters" in response.content


def test_csv_streams_without_counting_or_paging(client, operator, ledger):
    """One SELECT for the rows (read through the iterator), however many there are; none of the
    list page's counts."""
    def export_queries():
        with CaptureQueriesContext(connection) as ctx:
            rows = csv_rows(client.get(LEDGER + "export/?format=csv"))
        return rows, [q["sql"] for q in ctx.captured_queries if "accounts_ledgerentry" in q["sql"]]

    rows, queries = export_queries()
    assert len(rows) == 5
    for i in range(20):
        wallet_deposit(user=ledger[1], amount=Decimal("1"), reference=f"more{i}")
    more_rows, more_queries = export_queries()
    assert len(more_rows) == 25 and len(more_queries) == len(queries) == 1
    assert "COUNT(" not in more_queries[0].upper() and "LIMIT" not in more_queries[0].upper()


@pytest.mark.parametrize("url", ["/admin/purchases/purchase/", "/admin/mlm/bonus/", LEDGER, WITHDRAWALS,
                                 "/admin/tokens/buyorder/"])
def test_list_pages_link_to_exports_with_their_query(client, operator, url):
    response = client.get(url + "?q=alice&p=1")
    assert response.status_code == 200
    html = response.content.decode()
    for fmt in ("csv", "xlsx"):
        assert f'class="export-link" data-format="{fmt}" href="{url}export/?format={fmt}&amp;q=alice"' in html
    # the page's own tools are still there (the export template wraps the list's own template)
    if "buyorder" in url:
        assert "Run this period" in html
    assert client.get(url + "export/?format=csv&q=alice").status_code == 200


def test_every_row_is_exported_not_one_page(client, operator):
    member = earn(UserFactory(email="many@example.com"), "5000")
    for i in range(105):
        withdrawal_request(user=member, amount="11", destination=trc20(i + 10), idempotency_key=f"k{i}")
    assert len(csv_rows(client.get(WITHDRAWALS + "export/?format=csv&p=2"))) == 106
