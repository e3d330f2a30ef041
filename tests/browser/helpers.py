"""What the browser tests do with a page: wait for a thing, find it, measure it."""

from __future__ import annotations

WAIT = 10  # seconds any one thing may take to appear


def wait(browser, condition, timeout: float = WAIT, message: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition, message)


def css(browser, selector: str, timeout: float = WAIT):
    """The first element matching `selector`, once it is in the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, selector)), timeout,
                f"no {selector!r} on {browser.current_url}")


def drawn_size(browser, element) -> tuple[float, float]:
    """The element's rendered width and height (CSS pixels)."""
    rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];",
                                  element)
    return rect[0], rect[1]


def severe_console(browser) -> list[str]:
    """The browser console's errors since the last call (failed loads, uncaught exceptions)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
            and "/favicon.ico " not in entry["message"]]  # asked for by the browser itself, not by a page
