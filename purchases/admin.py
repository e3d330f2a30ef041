from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from common import display
from common.admin import ActionPermissionMixin, ReadOnlyAdmin, next_url, num
from common.columns import column
from common.exports import MONEY, ExportMixin
from purchases.models import Option, Project, Purchase, Refund
from purchases.selectors import refund_preview
from purchases.services import purchase_refund

REFUND_MAX_SELECTED = 50


class OptionInline(admin.TabularInline):
    model = Option
    extra = 0
    fields = ("name", "pack_shares", "pack_price", "is_active")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "created")
    list_filter = ("is_active",)
    search_fields = ("name",)
    inlines = [OptionInline]

    created = column("created_at", display.when, "created")

    def has_delete_permission(self, request, obj=None):
        return False  # purchases point at projects: deactivate instead


@admin.register(Option)
class OptionAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "shares", "pack_price_usd", "unit_price_usd", "is_active")
    list_filter = ("project", "is_active")
    search_fields = ("name", "project__name")
    list_select_related = ("project",)

    shares = column("pack_shares", display.count, "shares per pack")
    pack_price_usd = column("pack_price", display.money, "pack price (USD)")

    @admin.display(description="per share (USD)")
    def unit_price_usd(self, obj):
        return num(display.tokens(obj.unit_price))  # 4 places: a share costs cents

    def has_delete_permission(self, request, obj=None):
        return False


class RefundedFilter(admin.SimpleListFilter):
    title = "refunded"
    parameter_name = "refunded"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(refunded_at__isnull=self.value() == "no")
        return queryset


class RefundForm(forms.Form):
    reason = forms.CharField(max_length=255, required=False, help_text="Why (kept with each refund).",
                             widget=forms.TextInput(attrs={"size": 60}))


@admin.register(Purchase)
class PurchaseAdmin(ActionPermissionMixin, ExportMixin, ReadOnlyAdmin):
    export_fields = [("ID", "id"), ("Created (UTC)", "created_at"), ("Member", "user__email"),
                     ("Project", "project__name"), ("Option", "option__name"), ("Kind", "kind"), ("Packs", "packs"),
                     ("Shares", "shares"), ("Price (USD)", "price", MONEY), ("Refunded (UTC)", "refunded_at")]
    list_display = ("id", "created", "user", "option", "kind", "shares_count", "price_usd", "is_refunded")
    list_filter = ("kind", RefundedFilter, "project", "created_at")
    search_fields = ("user__email", "idempotency_key", "=id")
    list_select_related = ("user", "project", "option")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Purchase._meta.fields]
    actions = ["refund"]

    created = column("created_at", display.when, "created")
    shares_count = column("shares", display.count, "shares")
    price_usd = column("price", display.money, "price (USD)")

    @admin.display(boolean=True, description="refunded")
    def is_refunded(self, obj):
        return obj.refunded_at is not None

    def has_refund_permission(self, request):
        return request.user.has_perm("purchases.add_refund")

    def get_urls(self):
        return [path("<int:pk>/refund/", self.admin_site.admin_view(self.refund_view),
                     name="purchases_purchase_refund")] + super().get_urls()

    def refund_view(self, request, pk):
        """One purchase's refund (the member page's "Refund…" link, a GET): the same confirmation
        page and the same action as the list's; its Cancel and breadcrumb lead back where it came from
        (``?next=``, a path of this site), and so does a done refund (by default the member's page)."""
        if not self.has_refund_permission(request):
            raise PermissionDenied
        purchase = get_object_or_404(Purchase.objects.select_related("user"), pk=pk)
        back = next_url(request)
        response = self.refund(request, Purchase.objects.filter(pk=pk),
                               back=(back, str(purchase.user)) if back else None)
        return response or redirect(back or reverse("admin:accounts_user_change", args=[purchase.user_id]))

    @admin.action(description="Refund the selected purchases (shows what is taken back first)",
                  permissions=["refund"])
    def refund(self, request, queryset, back: tuple[str, str] | None = None):
        """A confirmation page (what each refund takes back, from whom: `refund_preview`), then
        `purchase_refund` for each; its refusals are shown as messages. ``back``: (url, title) of the
        page the confirmation came from (its Cancel and breadcrumb); the purchase list by default."""
        purchases = list(queryset.select_related("user").order_by("id")[:REFUND_MAX_SELECTED + 1])
        if len(purchases) > REFUND_MAX_SELECTED:
            self.message_user(request, f"Select at most {REFUND_MAX_SELECTED} purchases to refund at once.",
                              messages.ERROR)
            return None
        if "apply" in request.POST:
            form = RefundForm(request.POST)
            if form.is_valid():
                done = 0
                for purchase in purchases:
                    try:
                        purchase_refund(purchase=purchase, reason=form.cleaned_data["reason"],
                                        refunded_by=request.user)
                        done += 1
                    except ValidationError as exc:
                        self.message_user(request, f"Purchase #{purchase.pk}: {' '.join(exc.messages)}",
                                          messages.ERROR)
                if done:
                    self.message_user(request, f"Refunded {done} purchase(s). Volumes, bonuses, options bonuses, "
                                               "pioneer status and pack-sale revenue are taken back right after.",
                                      messages.SUCCESS)
                return None
        else:
            form = RefundForm()
        return render(request, "admin/purchases/purchase/refund_confirm.html", {
            **self.admin_site.each_context(request), "title": "Refund purchases", "form": form,
            "previews": [refund_preview(purchase=p) for p in purchases], "opts": self.model._meta,
            "back_url": back[0] if back else reverse("admin:purchases_purchase_changelist"),
            "back_title": back[1] if back else None,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME})


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("id", "created", "purchase_link", "amount_usd", "reason", "refunded_by")
    search_fields = ("=purchase__id", "purchase__user__email", "reason")
    list_select_related = ("purchase__user", "purchase__project", "refunded_by")
    date_hierarchy = "created_at"

    created = column("created_at", display.when, "created")

    @admin.display(description="purchase", ordering="purchase_id")
    def purchase_link(self, obj):
        url = reverse("admin:purchases_purchase_change", args=[obj.purchase_id])
        return format_html('<a href="{}">#{}</a> {}', url, obj.purchase_id, obj.purchase.user)

    amount_usd = column("amount", display.money, "amount (USD)")
