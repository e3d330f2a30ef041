"""Admin list columns that render a stored value through `common.display` (never changing it).

    class BonusAdmin(admin.ModelAdmin):
        list_display = ("id", "amount_col", "rate_col")
        amount_col = column("amount", money)
        rate_col = column("rate", rate)

Each column is an `@admin.display(description=..., ordering=<field>)` method, so the list still
sorts on the stored field. A path with ``__`` follows relations (``mlm_stats__pv``); a missing
link renders as the empty mark.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.utils.html import format_html

from common import display
from common.display import EMPTY


def value_at(obj, path: str):
    """``obj.a.b`` for ``"a__b"``; None when a link on the way is missing."""
    for name in path.split("__"):
        try:
            obj = getattr(obj, name)
        except ObjectDoesNotExist:  # a reverse one-to-one without its row
            return None
        if obj is None:
            return None
    return obj


NUMBERS = (display.money, display.tokens, display.rate, display.count)


def column(path: str, render: Callable, description: str | None = None, *, ordering: str | None = None,
           empty=EMPTY, css: str | None = None):
    """A list column showing ``render(value)`` on one line: numbers (money, tokens, rates) in a
    ``num`` cell (right-aligned by the back-office's CSS), anything else ``nowrap``."""
    css = css or ("num" if render in NUMBERS else "nowrap")

    @admin.display(description=description or path.rsplit("__", 1)[-1].replace("_", " "),
                   ordering=ordering or path)
    def show(self, obj):
        value = value_at(obj, path)
        return format_html('<span class="{}">{}</span>', css, empty if value is None else render(value))

    return show
