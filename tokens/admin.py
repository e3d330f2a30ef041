"""The back office of the buy-back: revenue, rates, settings (audited), buy-orders, dashboard."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property

from common import display
from common.admin import ActionPermissionMixin, FormattedReadOnlyMixin, ReadOnlyAdmin, ReadOnlyInline, num
from common.audit import AuditAdmin
from common.columns import column
from common.exports import MONEY, ExportMixin
from tokens import schedule as sched
from tokens import selectors, services, settings_schedule
from tokens.admin_slices import SplitOrderAdminMixin  # also registers the deferral and observation admins
from tokens.dashboard import chart_svg, treasury
from tokens.models import (
    BuyOrder,
    BuyOrderConfig,
    BuyOrderConfigChange,
    BuyOrderDashboard,
    ChainSender,
    ChainTransaction,
    ExchangeRate,
    Revenue,
)


@admin.register(Revenue)
class RevenueAdmin(ReadOnlyAdmin):
    list_display = ["id", "recorded", "source", "amount_in_currency", "zar", "external_ref", "reverses"]
    list_filter = ["source", "currency"]
    search_fields = ["external_ref"]
    date_hierarchy = "recorded_at"

    recorded = column("recorded_at", display.when, "recorded")

    @admin.display(description="amount", ordering="amount")
    def amount_in_currency(self, obj):
        return num(display.money(obj.amount, obj.currency))

    zar = column("amount_zar", display.money, "ZAR")


class ExchangeRateForm(forms.ModelForm):
    class Meta:
        model = ExchangeRate
        fields = ["currency", "rate_to_zar", "valid_from", "note"]

    def clean_currency(self):
        currency = (self.cleaned_data["currency"] or "").strip().upper()
        if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
            raise ValidationError("An ISO 4217 code of 3 letters (e.g. USD).")
        if currency == services.BASE_CURRENCY:
            raise ValidationError("ZAR is the base currency: its rate is always 1.")
        return currency

    def clean_rate_to_zar(self):
        rate = self.cleaned_data["rate_to_zar"]
        if rate is None or rate <= 0:
            raise ValidationError("The rate must be greater than zero.")
        return rate


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    """Rates are added, never edited: the newest row for a currency wins."""

    form = ExchangeRateForm
    list_display = ["currency", "rate", "valid", "note", "created_by", "created"]
    list_filter = ["currency"]
    search_fields = ["currency", "note"]

    rate = column("rate_to_zar", display.tokens, "ZAR per unit")
    valid = column("valid_from", display.when, "valid from")
    created = column("created_at", display.when, "created")

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        row = services.exchange_rate_set(currency=obj.currency, rate_to_zar=obj.rate_to_zar,
                                         valid_from=obj.valid_from, note=obj.note, created_by=request.user)
        obj.pk, obj.created_by, obj.created_at = row.pk, row.created_by, row.created_at


class ConfigChangeInline(ReadOnlyInline):
    model = BuyOrderConfigChange
    fields = ["changed_at", "changed_by", "changes"]
    ordering = ["-changed_at", "-id"]


class BuyOrderConfigForm(forms.ModelForm):
    class Meta:
        model = BuyOrderConfig
        fields = list(services.CONFIG_FIELDS)

    def clean(self):
        data = super().clean()
        for field in self.changed_data:
            if field in data:
                try:
                    data[field] = settings_schedule.clean_config_value(field, data[field])
                except ValidationError as exc:
                    self.add_error(field, exc.message_dict.get(field, exc.messages))
        low, high = data.get("min_buy_amount"), data.get("max_buy_amount")
        if low is not None and high is not None and low > high:
            self.add_error("min_buy_amount", "The minimum must not exceed the maximum.")
        tip, cap = data.get("priority_fee_per_gas"), data.get("max_fee_per_gas")
        if tip is not None and cap is not None and tip > cap:
            self.add_error("priority_fee_per_gas", "The priority fee must not exceed max_fee_per_gas.")
        if data.get("execution_schedule") and data.get("timezone") and not self.errors:
            try:
                data["execution_schedule"] = sched.validate_schedule(data["execution_schedule"], data["timezone"])
            except ValidationError as exc:
                self.add_error("execution_schedule", exc.message_dict.get("execution_schedule", exc.messages))
        return data


@admin.register(BuyOrderConfig)
class BuyOrderConfigAdmin(FormattedReadOnlyMixin, AuditAdmin):
    """The one settings row: saved through the service (validated, audited, schedule synced)."""

    form = BuyOrderConfigForm
    inlines = [ConfigChangeInline]
    list_display = ["__str__", "enabled", "percentage", "execution_schedule", "timezone", "min_zar", "max_zar",
                    "slippage", "disposition", "updated"]
    rate_fields = ("revenue_percentage", "max_slippage")

    percentage = column("revenue_percentage", display.rate, "revenue share")
    min_zar = column("min_buy_amount", display.money, "min buy (ZAR)")
    max_zar = column("max_buy_amount", display.money, "max buy (ZAR)")
    slippage = column("max_slippage", display.rate, "max slippage")
    updated = column("updated_at", display.when, "updated")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field in services.CONFIG_FIELDS}
        services.buy_order_config_update(changed_by=request.user, **changes)


class BuyOrderPaginator(Paginator):
    """The list's count from the running totals when it is filtered by status at most (no COUNT
    over the history); any other filter or a search counts its rows."""

    def __init__(self, *args, status: str | None = None, counted: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.status, self.counted = status, counted

    @cached_property
    def count(self) -> int:
        if self.counted:
            return super().count
        return selectors.buy_order_count(status=self.status)


@admin.register(BuyOrder)
class BuyOrderAdmin(ActionPermissionMixin, SplitOrderAdminMixin, ExportMixin, ReadOnlyAdmin):
    export_fields = [("ID", "id"), ("Created (UTC)", "created_at"), ("Status", "status"), ("Trigger", "trigger"),
                     ("Period", "period_key"), ("Amount (ZAR)", "amount", MONEY),
                     ("Quoted price (ZAR/AZR)", "quoted_price"),
                     ("Expected AZR", "expected_tokens"), ("Minimum AZR", "min_tokens"),
                     ("AZR received", "tokens_received"), ("Price (ZAR/AZR)", "price_per_token"),
                     ("Max slippage", "max_slippage"), ("Disposition", "disposition"), ("Transaction", "tx_hash"),
                     ("Block", "block_number"), ("Gas used", "gas_used"), ("Burn transaction", "burn_tx_hash"),
                     ("Attempts", "attempts"), ("Error", "error"), ("Completed (UTC)", "completed_at")]
    list_display = ["id", "created", "status", "trigger", "zar", "azr", "price", "disposition", "transaction"]
    token_fields = ("quoted_price", "expected_tokens", "min_tokens", "tokens_received", "price_per_token")
    rate_fields = ("max_slippage",)
    hash_fields = ("tx_hash", "burn_tx_hash")
    list_filter = ["status", "trigger", "disposition", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["tx_hash", "period_key", "error"]
    # Fast at a million rows: no second COUNT of the whole table, no date drill-down (a DISTINCT
    # over every row; the date filter does the same job), the count from the running totals.
    show_full_result_count = False

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        params = {key for key in request.GET if key not in ("p", "o", "status__exact")}
        status = request.GET.get("status__exact")
        counted = bool(params) or (status is not None and status not in BuyOrder.Status.values)
        return BuyOrderPaginator(queryset, per_page, orphans, allow_empty_first_page, status=status, counted=counted)
    actions = ["reconcile"]
    change_list_template = "admin/tokens/buyorder/change_list.html"

    created = column("created_at", display.when, "created")
    zar = column("amount", display.money, "ZAR")
    azr = column("tokens_received", display.tokens, "AZR")
    price = column("price_per_token", display.tokens, "ZAR/AZR")

    @admin.display(description="transaction", ordering="tx_hash")
    def transaction(self, obj):
        return display.short_hash(obj.tx_hash, reverse("admin:tokens_buyorder_change", args=[obj.pk]))

    def get_urls(self):
        return [path("run/", self.admin_site.admin_view(self.run_view), name="tokens_buyorder_run")] + \
            super().get_urls()

    def has_run_permission(self, request) -> bool:
        """Spending revenue on chain is adding a buy-order: ``tokens.add_buyorder``, not a view."""
        return request.user.is_active and request.user.is_staff and request.user.has_perm("tokens.add_buyorder")

    def has_reconcile_permission(self, request) -> bool:
        """Settling (or failing) pending orders changes them: ``tokens.change_buyorder``."""
        return request.user.is_active and request.user.is_staff and request.user.has_perm("tokens.change_buyorder")

    def run_view(self, request):
        """This period's scheduled buy, now: at most once per period, like the beat task."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_run_permission(request):
            raise PermissionDenied("Running a buy needs the permission to add buy-orders.")
        result = services.buy_order_run_scheduled(executed_by=request.user)
        if result.success:
            self.message_user(request, f"Bought {result.tokens_acquired} AZR for {result.rand_spent} ZAR "
                                       f"(tx {result.transaction_hash}).", messages.SUCCESS)
        else:
            self.message_user(request, f"Nothing bought: {result.error}", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:tokens_buyorder_changelist"))

    def changelist_view(self, request, extra_context=None):
        if "preview" in request.GET:  # not a list filter
            request.GET = request.GET.copy()
            del request.GET["preview"]
            extra_context = {**(extra_context or {}), "preview": services.buy_order_preview()}
        extra_context = {**(extra_context or {}), "can_run": self.has_run_permission(request)}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Reconcile selected pending orders from the chain", permissions=["reconcile"])
    def reconcile(self, request, queryset):
        for order in queryset.filter(status=BuyOrder.Status.PENDING).order_by("id"):
            order = services.buy_order_reconcile(order=order)
            self.message_user(request, f"Buy-order #{order.pk}: {order.status}.")


@admin.register(BuyOrderDashboard)
class BuyOrderDashboardAdmin(admin.ModelAdmin):
    """Not a list: the dashboard page (chart and metrics), linked from the admin index."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and request.user.has_perm("tokens.view_buyorder")

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied("The buy-back dashboard needs the permission to view buy-orders.")
        context = {
            **self.admin_site.each_context(request),
            "title": "Buy-back dashboard",
            "opts": self.model._meta,
            "metrics": selectors.buy_order_metrics(),
            "available": selectors.available_revenue(),
            "config": selectors.buy_order_config(),
            "chart": chart_svg(selectors.buy_order_chart_points()),
            "treasury": treasury(),
            "recent": selectors.buy_order_history(limit=10)[0],
        }
        return TemplateResponse(request, "admin/tokens/dashboard.html", context)


@admin.register(ChainSender)
class ChainSenderAdmin(ReadOnlyAdmin):
    list_display = ["address", "chain_id", "next_nonce", "updated_at"]


@admin.register(ChainTransaction)
class ChainTransactionAdmin(ReadOnlyAdmin):
    """Every signed transaction, before it was broadcast; replacements point at their successor."""

    list_display = ["tx_hash", "purpose", "buy_order", "nonce", "attempt", "status", "max_fee_per_gas",
                    "max_priority_fee_per_gas", "sent_at", "settled_at"]
    list_filter = ["status", "purpose"]
    search_fields = ["tx_hash"]
    exclude = ["raw_transaction", "data"]
