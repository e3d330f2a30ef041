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


def column(path: str, render: Callable, description: str | None = None, *, ordering: str | None = None,
           empty=EMPTY, nowrap: bool = True):
    """A list column showing ``render(value)``; kept on one line (a date or an amount never
    wraps inside itself) unless ``nowrap=False``."""

    @admin.display(description=description or path.rsplit("__", 1)[-1].replace("_", " "),
                   ordering=ordering or path)
    def show(self, obj):
        value = value_at(obj, path)
        text = empty if value is None else render(value)
        return format_html('<span class="nowrap" style="white-space:nowrap">{}</span>', text) if nowrap else text

    return show
