"""The back office as an operator uses it, in a real (headless) Chromium: sign in, the dashboard's
cards and charts, a member's page and genealogy tree, a refund through its confirmation page, an
export of a filtered list, and the API docs rendering with no internet."""

from __future__ import annotations

import csv
import io
import time

import pytest

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select
except ImportError:  # not installed: conftest skips these tests with the reason (in CI: fails them)
    By = Keys = Select = ec = None

from tests.browser.conftest import OPERATOR_EMAIL
from tests.browser.helpers import css, drawn_size, severe_console, wait

pytestmark = pytest.mark.browser

CHARTS = ("sales", "bonuses", "buybacks", "ranks")


def member_url(live_server, user) -> str:
    return f"{live_server.url}/admin/accounts/user/{user.pk}/change/"


# --- Signing in ------------------------------------------------------------------------------------


def test_the_admin_login_form_refuses_a_wrong_password_and_signs_the_operator_in(browser, live_server, login,
                                                                                shoot):
    browser.get(live_server.url + "/admin/")
    css(browser, "input[name=username]")  # an anonymous visitor is sent to the login form
    assert "/admin/login/" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys(OPERATOR_EMAIL)
    browser.find_element(By.NAME, "password").send_keys("not-the-password")
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    assert "enter the correct" in css(browser, ".errornote").text.lower()
    shoot("wrong-password")

    login()

    assert browser.current_url == live_server.url + "/admin/"
    assert "olga" in css(browser, "#user-tools").text.lower()  # the operator's first name


# --- The dashboard ---------------------------------------------------------------------------------


def test_the_root_opens_the_dashboard_with_its_cards_and_four_charts_drawn(browser, live_server, login,
                                                                           buybacks, shoot):
    login()
    browser.get(live_server.url + "/")
    wait(browser, lambda b: b.current_url == live_server.url + "/admin/", message=f"/ went to {browser.current_url}")

    dashboard = css(browser, "section#dashboard")
    cards = dashboard.find_elements(By.CSS_SELECTOR, ".kpi[data-kpi]")  # a <div>, or an <a> to its list
    names = [c.get_attribute("data-kpi") for c in cards]
    assert len(names) >= 4 and len(set(names)) == len(names), names
    for card in cards:
        assert card.text.strip(), f"KPI {card.get_attribute('data-kpi')} is empty"
        assert min(drawn_size(browser, card)) > 0, f"KPI {card.get_attribute('data-kpi')} is not drawn"
    for name in CHARTS:
        chart = dashboard.find_element(By.CSS_SELECTOR, f"svg.chart[data-chart='{name}']")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", chart)
        width, height = drawn_size(browser, chart)
        assert width > 100 and height > 50, f"chart {name} is drawn {width}x{height}"
        marks = chart.find_elements(By.CSS_SELECTOR, ".mark")
        assert len(marks) >= (len(buybacks) if name == "buybacks" else 1), f"chart {name}: {len(marks)} marks"
        assert any(max(drawn_size(browser, m)) > 0 for m in marks), f"chart {name}: its marks have no size"
    shoot("dashboard")
    assert not severe_console(browser)


def test_the_buyback_dashboard_draws_its_chart_and_lists_the_orders(browser, live_server, login, buybacks, shoot):
    login()
    browser.get(live_server.url + "/admin/tokens/buyorderdashboard/")

    chart = css(browser, "#content-main svg")
    width, height = drawn_size(browser, chart)
    assert width > 300 and height > 100, (width, height)
    bars = chart.find_elements(By.CSS_SELECTOR, "rect title, .mark")  # one bar (with its tooltip) per order
    assert len(bars) >= len(buybacks)
    for order in buybacks:
        link = css(browser, f"#content-main a[href$='/admin/tokens/buyorder/{order.pk}/change/']")
        assert link.is_displayed()
    shoot("buyback-dashboard")


# --- The member page and the genealogy tree ----------------------------------------------------------


def tree_node(browser, member, timeout: float = 10):
    return css(browser, f"#genealogy li.tree-node[data-member-id='{member.pk}']", timeout)


def expand(browser, member):
    """Click the member's tree toggle and wait for its children to be fetched and listed."""
    node = tree_node(browser, member)
    toggle = node.find_element(By.CSS_SELECTOR, "button.tree-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", toggle)
    toggle.click()
    wait(browser, lambda b: toggle.get_attribute("aria-expanded") == "true"
         and node.find_elements(By.CSS_SELECTOR, "ul.tree-children li.tree-node"),
         message=f"the children of {member.email} did not appear")
    return node


def child_ids(node) -> set[int]:
    return {int(li.get_attribute("data-member-id"))
            for li in node.find_elements(By.CSS_SELECTOR, ":scope > ul.tree-children > li.tree-node")}


def test_a_member_page_shows_the_upline_actions_and_a_lazily_loaded_genealogy_tree(browser, live_server, login,
                                                                                 network, shoot):
    alice, bob, carol, dave, erin = (network[n] for n in ("alice", "bob", "carol", "dave", "erin"))
    login()

    # erin's page: her upline links back to carol, bob and alice.
    browser.get(member_url(live_server, erin))
    upline = css(browser, "nav#upline")
    hrefs = [a.get_attribute("href") for a in upline.find_elements(By.TAG_NAME, "a")]
    for sponsor in (carol, bob, alice):
        assert member_url(live_server, sponsor) in hrefs, hrefs
    shoot("erin")
    upline.find_element(By.CSS_SELECTOR, f"a[href$='/admin/accounts/user/{alice.pk}/change/']").click()
    wait(browser, lambda b: b.current_url == member_url(live_server, alice))

    # alice's page: the actions, and her tree one level at a time, each fetched when opened.
    for action in ("deposit", "set-rank", "refund", "preview"):
        assert css(browser, f"a.member-action[data-action='{action}']").is_displayed(), action
    genealogy = css(browser, "#genealogy[data-children-url]")
    if not genealogy.find_elements(By.CSS_SELECTOR, f"li.tree-node[data-member-id='{bob.pk}']"):
        expand(browser, alice)  # the tree starts at alice herself, closed
    assert not genealogy.find_elements(By.CSS_SELECTOR, f"li.tree-node[data-member-id='{carol.pk}']"), \
        "grandchildren are in the page before anyone asked for them"

    bob_node = expand(browser, bob)
    assert child_ids(bob_node) == {carol.pk, dave.pk}
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert any(f"/genealogy/{bob.pk}/children" in url for url in fetched), fetched  # asked for on the click
    assert not tree_node(browser, dave).find_elements(By.CSS_SELECTOR, "button.tree-toggle"), "dave has no referrals"
    carol_node = expand(browser, carol)
    assert child_ids(carol_node) == {erin.pk}
    shoot("alice-tree-expanded")

    tree_node(browser, erin).find_element(By.CSS_SELECTOR, "a").click()  # a node links to the member's page
    wait(browser, lambda b: b.current_url == member_url(live_server, erin))


# --- A refund through its confirmation page ----------------------------------------------------------


def test_a_refund_goes_through_its_confirmation_page(browser, live_server, login, network, shoot):
    from purchases.models import Purchase, Refund

    purchase = Purchase.objects.get(user=network["erin"], kind="regular")
    login()
    browser.get(live_server.url + "/admin/purchases/purchase/")

    css(browser, f"input.action-select[value='{purchase.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("refund")
    go = browser.find_element(By.CSS_SELECTOR, "#changelist-form button[name=index]")
    go.click()
    wait(browser, ec.staleness_of(go), message="the refund action did not leave the list")

    # The confirmation: what will be taken back, and nothing is written before the operator confirms.
    heading = css(browser, "#content-main h2")
    assert f"#{purchase.pk}" in heading.text and "erin@example.com" in heading.text
    assert not Refund.objects.exists()
    browser.find_element(By.NAME, "reason").send_keys("customer asked, browser test")
    shoot("confirmation")
    confirm = browser.find_element(By.CSS_SELECTOR, "#confirm-refund, form [type=submit][name=apply]")
    confirm.click()
    wait(browser, ec.staleness_of(confirm), message="confirming did not leave the confirmation page")

    success = css(browser, "ul.messagelist li.success")
    assert "Refunded 1 purchase" in success.text
    assert "/admin/purchases/purchase/" in browser.current_url
    purchase.refresh_from_db()
    assert purchase.refunded_at is not None
    refund = Refund.objects.get(purchase=purchase)
    assert refund.reason == "customer asked, browser test" and refund.refunded_by.email == OPERATOR_EMAIL


# --- Export of a filtered list -----------------------------------------------------------------------


def downloaded(downloads, suffix: str, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in downloads.iterdir() if p.name.endswith(suffix)]
        if done and not any(p.name.endswith(".crdownload") for p in downloads.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} file downloaded: {[p.name for p in downloads.iterdir()]}")


def export(browser, downloads, fmt: str) -> tuple[list[str], list[list[str]]]:
    """Click the list's `fmt` export link; the downloaded file's header and (non-empty) rows, as text."""
    for old in downloads.iterdir():
        old.unlink()
    css(browser, f"a.export-link[data-format='{fmt}']").click()
    path = downloaded(downloads, f".{fmt}")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    else:
        import openpyxl

        sheet = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    return rows[0], [r for r in rows[1:] if any(cell.strip() for cell in r)]


def assert_exported(header, body, purchases, *, absent_emails=(), absent_words=()):
    """The export holds exactly `purchases`: as many rows, the same ids (when a column is the id), their
    buyers, and none of `absent_emails` / `absent_words`."""
    text = "\n".join(",".join(r) for r in body)
    assert len(body) == len(purchases), text
    id_column = next((i for i, h in enumerate(header) if h.strip().lower() in ("id", "#", "purchase", "purchase id")),
                     None)
    if id_column is not None:
        assert {int(float(r[id_column])) for r in body} == {p.pk for p in purchases}, text
    for purchase in purchases:
        assert purchase.user.email in text, f"{purchase.user.email}'s purchase #{purchase.pk} is not in the export"
    for word in (*absent_emails, *absent_words):
        assert word not in text, f"{word!r} is in the export, not in the list"


def test_a_filtered_and_searched_list_exports_only_its_rows(browser, live_server, login, network, downloads, shoot):
    from purchases.models import Purchase

    aquix = network["projects"]["AQUIX"]
    in_aquix = list(Purchase.objects.filter(project=aquix).select_related("user"))
    buyers = {p.user.email for p in in_aquix}
    outsiders = set(Purchase.objects.exclude(user__email__in=buyers).values_list("user__email", flat=True))
    assert in_aquix and outsiders
    login()
    browser.get(live_server.url + "/admin/purchases/purchase/")

    # A filter: the export links carry it, and the CSV holds the filtered rows only.
    css(browser, "#changelist-filter")
    browser.find_element(By.XPATH, "//*[@id='changelist-filter']//a[normalize-space()='AQUIX']").click()
    wait(browser, lambda b: f"project__id__exact={aquix.pk}" in b.current_url)
    for fmt in ("csv", "xlsx"):
        href = css(browser, f"a.export-link[data-format='{fmt}']").get_attribute("href")
        assert f"project__id__exact={aquix.pk}" in href, href
    shoot("filtered-list")
    assert_exported(*export(browser, downloads, "csv"), in_aquix, absent_emails=outsiders, absent_words=["JETUP"])

    # The filter and a search: both exports hold what the list shows.
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("carol", Keys.ENTER)
    wait(browser, lambda b: "q=carol" in b.current_url and f"project__id__exact={aquix.pk}" in b.current_url)
    carols = [p for p in in_aquix if p.user.email == "carol@example.com"]
    assert carols and len(carols) < len(in_aquix)
    others = (buyers | outsiders) - {"carol@example.com"}
    assert_exported(*export(browser, downloads, "csv"), carols, absent_emails=others, absent_words=["JETUP"])
    assert_exported(*export(browser, downloads, "xlsx"), carols, absent_emails=others, absent_words=["JETUP"])


# --- The API docs, offline ---------------------------------------------------------------------------


RESOURCES = "return performance.getEntriesByType('resource').map(e => e.name)"


def test_the_api_docs_render_with_no_internet(browser, live_server, shoot):
    for page, drawn, operations in (
        ("/api/docs/", ".swagger-ui .information-container .title", ".opblock"),  # Swagger UI drew the schema
        ("/api/redoc/", "h1", "li[data-item-id]"),  # Redoc its title and menu
    ):
        browser.get(live_server.url + page)

        wait(browser, lambda b, drawn=drawn: any("AZR back-office API" in e.text
                                                 for e in b.find_elements(By.CSS_SELECTOR, drawn)),
             message=f"{page} drew no title")
        assert len(browser.find_elements(By.CSS_SELECTOR, operations)) > 5, f"{page} lists no operations"
        shoot(page.strip("/").replace("/", "-"))
        assert not severe_console(browser)  # every script and style of the project loaded, nothing else was asked
        loaded = browser.execute_script(RESOURCES)
        outside = [url for url in loaded if not url.startswith(live_server.url + "/")]
        assert loaded and not outside, outside  # no font, logo or script from another host, not even tried
