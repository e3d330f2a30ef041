"""The back-office's number, rate, hash and date rendering (common.display)."""

from datetime import UTC, datetime
from decimal import Decimal

from common import display


def test_money_has_two_decimals_and_separators():
    assert display.money("80569.6000000000", "ZAR") == "80,569.60 ZAR"
    assert display.money(Decimal("0E-8")) == "0.00"
    assert display.money("-0.001") == "0.00"
    assert display.money("2.345") == "2.34"  # half-even, the ledger's rounding
    assert display.money(None) == display.EMPTY
    assert display.money("not a number") == display.EMPTY


def test_tokens_have_four_decimals():
    assert display.tokens("160000.12345678", "AZR") == "160,000.1235 AZR"
    assert display.tokens(0) == "0.0000"


def test_rates_are_percentages():
    assert display.rate("0.1500") == "15%"
    assert display.rate("0.0125") == "1.25%"
    assert display.rate(Decimal("0.33333")) == "33.33%"
    assert display.rate(None) == display.EMPTY


def test_short_hash_keeps_the_whole_hash_in_the_tooltip_and_escapes():
    tx = "0x" + "ab" * 32
    html = display.short_hash(tx, "/admin/tokens/buyorder/1/change/")
    assert ">0xabab…abab</a>" in html and f'title="{tx}"' in html
    assert "&lt;script&gt;" in display.short_hash("<script>alert(1)</script>-long-enough")
    assert display.short_hash("") == display.EMPTY


def test_dates_are_on_one_line():
    text = display.when(datetime(2026, 12, 6, 10, 28, 59, tzinfo=UTC))
    assert "\n" not in text and " " not in text and text.startswith("2026-12-06")


def test_signed_money_shows_the_sign_of_a_change():
    assert display.signed_money("80.1", "USD") == "+80.10 USD"
    assert display.signed_money("-12.5") == "-12.50"
    assert display.signed_money("0.001") == "0.00"
    assert display.signed_money(None) == display.EMPTY


def test_money_rows_name_themselves_with_two_decimals_not_eight():
    """Titles, breadcrumbs and links show a row's ``str``: money with 2 decimals, labels not codes."""
    from accounts.models import LedgerEntry, User
    from mlm.models import Bonus
    from purchases.models import Option, Project, Purchase
    from tokens.models import BuyOrder, ExchangeRate, Revenue
    from withdrawals.models import Withdrawal

    d8 = Decimal("1500.50000000")
    user = User(email="ann@example.com")
    project = Project(name="AQUIX")
    purchase = Purchase(pk=7, user=user, project=project, option=Option(project=project, name="Builder"),
                        shares=50000, price=d8, kind=Purchase.Kind.REGULAR)
    shown = {
        str(purchase): "#7 ann@example.com 50,000 × AQUIX = 1,500.50 USD (Regular)",
        str(Bonus(user_id=3, kind=Bonus.Kind.SYSTEM_COMPRESSION, amount=d8)):
            "System compression (root) 1,500.50 USD → 3",
        str(LedgerEntry(user=user, wallet="active", amount=-d8, reason=LedgerEntry.Reason.DEPOSIT)).split(" (")[0]:
            "ann@example.com active -1,500.50 USD",
        str(Withdrawal(pk=4, amount=d8, status=Withdrawal.Status.REQUESTED)).split(" (")[0]:
            "Withdrawal #4 1,500.50 USD",
        str(Revenue(source="other", amount=d8, currency="USD", amount_zar=Decimal("27009.00000000"))):
            "Other 1,500.50 USD (= 27,009.00 ZAR)",
        str(BuyOrder(pk=9, amount=d8, status="pending")).split(" (")[0]: "Buy-order #9 1,500.50 ZAR",
    }
    for got, expected in shown.items():
        assert got == expected
        assert "00000" not in got
    assert "18.2500 ZAR" in str(ExchangeRate(currency="USD", rate_to_zar=Decimal("18.25000000"),
                                             valid_from=datetime(2026, 1, 1, tzinfo=UTC)))


def test_counts_have_thousands_separators():
    assert display.count(40000) == "40,000"
    assert display.count(0) == "0"
    assert display.count(None) == display.EMPTY
