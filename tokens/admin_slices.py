"""The back office of split orders and the price guard.

- :class:`SplitOrderAdminMixin` (mixed into the buy-order admin): the changelist lists orders,
  not their slices (a filter shows the slices, and a search looks at both -- a transaction hash
  is a slice's); an order's change page lists its slices read-only, a slice's page links to its
  order and shows the guard's deferrals of it.
- :class:`BuyOrderDeferralAdmin`: why a buy waited (code, spot, TWAP, their deviation, when).
- :class:`PriceObservationAdmin`: the recorded readings of the pair's oracle, a list only.

Money is shown with 2 decimals, token quantities and prices (ZAR per AZR) with 4, fractions as
percentages (:mod:`common.display`); nothing here writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from common import display
from common.admin import ReadOnlyAdmin, ReadOnlyInline
from common.columns import column
from tokens import price_guard as pg
from tokens.models import BuyOrder, BuyOrderDeferral, PriceObservation

# The observations keep raw base units; the project's tokens (and the embedded chain's) have 18 decimals.
TOKEN_DECIMALS = 18


def _order_link(order_id: int, text: str):
    return format_html('<a href="{}">{}</a>', reverse("admin:tokens_buyorder_change", args=[order_id]), text)


def _deviation(spot, twap):
    if spot is None or not twap:
        return display.EMPTY
    return display.rate(pg.deviation(Decimal(spot), Decimal(twap)))


class OrderKindFilter(admin.SimpleListFilter):
    """Orders by default (a split order once, not its slices); slices, or both, on request. A
    search looks at orders and slices alike unless a choice is made."""

    title = "orders or slices"
    parameter_name = "kind"

    def __init__(self, request, params, model, model_admin):
        self.searching = bool(request.GET.get("q", "").strip())
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [("slices", "Slices"), ("all", "Orders and slices")]

    def queryset(self, request, queryset):
        kind = self.value()
        if kind == "slices":
            return queryset.filter(parent__isnull=False)
        if kind == "all" or (kind is None and self.searching):
            return queryset
        return queryset.filter(parent__isnull=True)

    def choices(self, changelist):
        yield {"selected": self.value() not in ("slices", "all"), "display": "Orders",
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup})}


class SliceInline(ReadOnlyInline):
    """An order's slices, in order, read-only."""

    model = BuyOrder
    fk_name = "parent"
    verbose_name = "slice"
    verbose_name_plural = "slices"
    fields = ["number", "status", "zar", "azr", "price", "impact", "transaction", "due", "completed", "error"]
    ordering = ["slice_index"]
    show_change_link = True

    @admin.display(description="#")
    def number(self, obj):
        return obj.slice_index + 1

    @admin.display(description="ZAR")
    def zar(self, obj):
        return display.money(obj.amount)

    @admin.display(description="AZR received")
    def azr(self, obj):
        return display.tokens(obj.tokens_received)

    @admin.display(description="ZAR/AZR")
    def price(self, obj):
        return display.tokens(obj.price_per_token if obj.price_per_token is not None else obj.quoted_price)

    @admin.display(description="price impact")
    def impact(self, obj):
        return display.rate(obj.price_impact, places=4)

    @admin.display(description="transaction")
    def transaction(self, obj):
        return display.short_hash(obj.tx_hash)

    @admin.display(description="due")
    def due(self, obj):
        return display.when(obj.due_at)

    @admin.display(description="completed")
    def completed(self, obj):
        return display.when(obj.completed_at)


class DeferralInline(ReadOnlyInline):
    """The guard's deferrals of one slice (why it waited)."""

    model = BuyOrderDeferral
    fk_name = "slice_of"
    fields = ["when", "code", "spot", "twap", "deviation", "reason"]
    ordering = ["-created_at", "-id"]

    @admin.display(description="when")
    def when(self, obj):
        return display.when(obj.created_at)

    @admin.display(description="spot (ZAR/AZR)")
    def spot(self, obj):
        return display.tokens(obj.spot_price)

    @admin.display(description="TWAP (ZAR/AZR)")
    def twap(self, obj):
        return display.tokens(obj.twap_price)

    @admin.display(description="deviation")
    def deviation(self, obj):
        return _deviation(obj.spot_price, obj.twap_price)


class SplitOrderAdminMixin:
    """Mixed into ``BuyOrderAdmin`` (before ``ReadOnlyAdmin``); see the module docstring."""

    def get_list_filter(self, request):
        return [OrderKindFilter, *super().get_list_filter(request)]

    def get_list_display(self, request):
        return [*super().get_list_display(request), "slice_info"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "split"]

    def get_inlines(self, request, obj):
        inlines = list(super().get_inlines(request, obj))
        if obj is not None and obj.slice_count:
            inlines.append(SliceInline)
        if obj is not None and obj.parent_id:
            inlines.append(DeferralInline)
        return inlines

    @admin.display(description="slices", ordering="slice_count")
    def slice_info(self, obj):
        if obj.parent_id:
            return f"{obj.slice_index + 1} of #{obj.parent_id}"
        return obj.slice_count or display.EMPTY

    @admin.display(description="split order")
    def split(self, obj):
        if obj.parent_id:
            return _order_link(obj.parent_id, f"Slice {obj.slice_index + 1} of buy-order #{obj.parent_id}")
        if obj.slice_count:
            return f"{obj.slice_count} slices (listed below)"
        return "One swap (not split)."


@admin.register(BuyOrderDeferral)
class BuyOrderDeferralAdmin(ReadOnlyAdmin):
    """Why a buy (or a slice) waited: nothing was spent; the next tick tried again."""

    list_display = ["when", "code", "trigger", "period_key", "slice", "spot", "twap", "deviation", "reason"]
    list_filter = ["code", "trigger", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["period_key", "reason"]
    list_select_related = ["slice_of"]

    when = column("created_at", display.when, "when")

    @admin.display(description="slice")
    def slice(self, obj):
        if obj.slice_of_id is None:
            return display.EMPTY
        part = obj.slice_of
        return _order_link(part.pk, f"#{part.parent_id} slice {part.slice_index + 1}")

    @admin.display(description="spot (ZAR/AZR)", ordering="spot_price")
    def spot(self, obj):
        return display.tokens(obj.spot_price)

    @admin.display(description="TWAP (ZAR/AZR)", ordering="twap_price")
    def twap(self, obj):
        return display.tokens(obj.twap_price)

    @admin.display(description="deviation")
    def deviation(self, obj):
        return _deviation(obj.spot_price, obj.twap_price)


@admin.register(PriceObservation)
class PriceObservationAdmin(ReadOnlyAdmin):
    """The readings the TWAP is computed from: a list, no page per row."""

    list_display = ["block_number", "block_time", "chain_id", "pair_address", "spot", "zar_reserve", "azr_reserve",
                    "observed"]
    list_display_links = None
    list_filter = ["chain_id", "pair"]
    search_fields = ["=block_number", "pair"]
    show_full_result_count = False

    def has_view_permission(self, request, obj=None):
        return obj is None and super().has_view_permission(request, obj)

    @admin.display(description="block time", ordering="block_timestamp")
    def block_time(self, obj):
        return display.when(datetime.fromtimestamp(int(obj.block_timestamp), tz=UTC))

    @admin.display(description="pair")
    def pair_address(self, obj):
        return display.short_hash(obj.pair)

    @admin.display(description="spot (ZAR/AZR)")
    def spot(self, obj):
        if not obj.reserve_azr:
            return display.EMPTY
        return display.tokens(Decimal(obj.reserve_base) / Decimal(obj.reserve_azr))

    @admin.display(description="reserve ZAR")
    def zar_reserve(self, obj):
        return display.money(Decimal(obj.reserve_base).scaleb(-TOKEN_DECIMALS))

    @admin.display(description="reserve AZR")
    def azr_reserve(self, obj):
        return display.tokens(Decimal(obj.reserve_azr).scaleb(-TOKEN_DECIMALS))

    observed = column("observed_at", display.when, "recorded")
