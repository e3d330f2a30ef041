from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import render

from common.admin import ReadOnlyAdmin
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
    list_display = ("name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    inlines = [OptionInline]

    def has_delete_permission(self, request, obj=None):
        return False  # purchases point at projects: deactivate instead


@admin.register(Option)
class OptionAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "pack_shares", "pack_price", "unit_price", "is_active")
    list_filter = ("project", "is_active")
    search_fields = ("name", "project__name")
    list_select_related = ("project",)

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
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "project", "option", "kind", "shares", "price", "is_refunded")
    list_filter = ("kind", RefundedFilter, "project", "created_at")
    search_fields = ("user__email", "idempotency_key", "=id")
    list_select_related = ("user", "project", "option")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Purchase._meta.fields]
    actions = ["refund"]

    @admin.display(boolean=True, description="refunded")
    def is_refunded(self, obj):
        return obj.refunded_at is not None

    def has_refund_permission(self, request):
        return request.user.has_perm("purchases.add_refund")

    @admin.action(description="Refund the selected purchases (shows what is taken back first)",
                  permissions=["refund"])
    def refund(self, request, queryset):
        """A confirmation page (what each refund takes back, from whom: `refund_preview`), then
        `purchase_refund` for each; its refusals are shown as messages."""
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
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME})


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "purchase", "amount", "reason", "refunded_by")
    search_fields = ("=purchase__id", "purchase__user__email", "reason")
    list_select_related = ("purchase__user", "purchase__project", "refunded_by")
    date_hierarchy = "created_at"
