"""The browser tests: one headless Chromium (Debian's `chromium` + `chromium-driver`, installed by
`make browser`) driven by Selenium against pytest-django's live server.

- No browser here: the tests are skipped with the reason; in CI (REQUIRE_SERVICES=1) that is an error.
- The browser reaches nothing but the live server: every other host name fails to resolve, so a page
  that needs the internet (a CDN) shows it.
- Every test leaves a full-page screenshot in $BROWSER_SCREENSHOTS (default: var/screenshots/):
  `<test>.png` at its end (`<test>-FAILED.png` and `-FAILED.html` when it failed) and
  `<test>--<step>.png` for the steps it shoots on the way. A run first removes the previous run's.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from tests.browser.helpers import wait

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
MISSING = "Chromium/chromedriver not found: run `make browser`"
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "var" / "screenshots")

OPERATOR_EMAIL = "operator@example.com"
OPERATOR_PASSWORD = "operator-pass-123"  # noqa: S105 - a test login


def _required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def browser_problem() -> str | None:
    """Why no browser can be started here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{MISSING} ({path} is missing)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: run `make install` (it is in the dev extras)"
    return None


def pytest_collection_modifyitems(config, items):
    problem = browser_problem()
    if problem is None or _required():
        return  # in CI the driver fixture fails with the same reason instead
    skip = pytest.mark.skip(reason=problem)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_failed = report.failed
    elif report.failed:  # setup failed
        item.browser_failed = True
    return report


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, started after the test database exists so that it stops (and lets
    go of its connections) before the database is dropped."""
    return live_server


@pytest.fixture(scope="session")
def downloads() -> Path:
    path = Path(tempfile.mkdtemp(prefix="browser-downloads-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def driver(downloads):
    """One headless Chromium for the session (starting one takes ~1 s)."""
    problem = browser_problem()
    if problem:
        pytest.fail(f"{problem} (REQUIRE_SERVICES=1: the browser tests must run)", pytrace=False)
    os.environ["SE_OFFLINE"] = "true"  # never let selenium-manager download a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions", "--lang=en-US",
                # Offline: only the live server resolves (a CDN asset would fail to load).
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "safebrowsing.enabled": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {
        "behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True})
    yield browser
    browser.quit()


def _save_full_page(browser, path: Path) -> None:
    """A screenshot of the whole page, not only the 1400x1000 window."""
    try:
        browser.execute_script("window.scrollTo(0, 0);")  # sticky parts (the sidebar) where they start
        size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": max(size["width"], 1), "height": min(max(size["height"], 1), 3000),
                     "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
    except Exception:  # noqa: BLE001 - a screenshot never hides the test's own result
        browser.save_screenshot(str(path))


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The screenshots folder, emptied of the previous run's test shots (only those) once per session."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in [*SCREENSHOTS.glob("test_*.png"), *SCREENSHOTS.glob("test_*-FAILED.html")]:
        old.unlink()
    return SCREENSHOTS


@pytest.fixture
def shoot(request, driver, screenshots):
    """`shoot("step")` saves the page now; the test's last page is saved after it, pass or fail."""
    name = _safe(request.node.name)

    def take(step: str) -> Path:
        path = screenshots / f"{name}--{_safe(step)}.png"
        _save_full_page(driver, path)
        return path

    yield take
    failed = getattr(request.node, "browser_failed", False)
    _save_full_page(driver, screenshots / f"{name}{'-FAILED' if failed else ''}.png")
    if failed:
        (screenshots / f"{name}-FAILED.html").write_text(driver.page_source)


@pytest.fixture
def browser(driver, live_server, shoot, downloads):
    """The session's browser on a clean slate (no cookies, no downloads), for this test's live server."""
    driver.get(live_server.url + "/static/admin/css/base.css")  # any page of the server's origin
    driver.delete_all_cookies()
    for leftover in downloads.iterdir():
        leftover.unlink()
    driver.get_log("browser")  # drop the previous test's console
    return driver


@pytest.fixture
def login(browser, live_server, operator):
    """`login()` signs the operator in through the admin's own login form."""
    from selenium.webdriver.common.by import By

    def sign_in(email: str = OPERATOR_EMAIL, password: str = OPERATOR_PASSWORD):
        browser.get(live_server.url + "/admin/login/?next=/admin/")
        browser.find_element(By.NAME, "username").send_keys(email)
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "form#login-form [type=submit], form [type=submit]").click()
        wait(browser, lambda b: "/admin/login/" not in b.current_url,
             message=f"still on the login page: {browser.current_url}")
        return browser

    return sign_in


@pytest.fixture
def operator(transactional_db):
    """A superuser, signed in through the real form by `login`."""
    from accounts.services import member_create

    return member_create(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD, first_name="Olga",
                         last_name="Operator", is_staff=True, is_superuser=True)


@pytest.fixture
def chain(transactional_db, chain, monkeypatch):
    """The tests' embedded chain (tests/conftest.py), used by the live server's threads too (they
    share the process), with no real pauses between retries."""
    from tokens.chain import runtime

    monkeypatch.setattr(runtime, "retry_sleep", lambda seconds: None)
    return chain


@pytest.fixture
def network(transactional_db, operator):
    """The demo network (`seed_demo`: two projects, alice → bob → {carol → erin, dave}, their purchases
    processed by the plan, the demo revenue), as a dict of the members and projects by name."""
    from django.core.management import call_command

    from accounts.models import User
    from purchases.models import Project

    call_command("seed_demo", stdout=io.StringIO())
    members = {u.email.split("@")[0]: u for u in User.objects.filter(email__endswith="@example.com")}
    projects = {p.name: p for p in Project.objects.all()}
    return {**members, "projects": projects}


@pytest.fixture
def buybacks(network, chain):
    """Two completed buy-backs on the embedded chain, a day apart (the chart needs a time axis)."""
    from datetime import timedelta

    from django.utils import timezone

    from tokens.models import BuyOrder
    from tokens.services import buy_order_execute, revenue_track

    revenue_track(source="other", amount="20000", external_ref="browser:revenue")
    orders = []
    for amount in ("400", "250"):
        result = buy_order_execute(amount=Decimal(amount))
        assert result.success, result
        orders.append(BuyOrder.objects.get(pk=result.order_id))
    BuyOrder.objects.filter(pk=orders[0].pk).update(completed_at=timezone.now() - timedelta(days=1),
                                                    created_at=timezone.now() - timedelta(days=1))
    return orders
