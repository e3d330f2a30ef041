"""The back office of the compensation plan."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from common.admin import ReadOnlyAdmin
from common.audit import AuditAdmin
from common.exports import MONEY, ExportMixin
from mlm import selectors, services
from mlm.models import (
    Bonus,
    InvestmentTier,
    MemberNetwork,
    MemberStats,
    Notification,
    PayoutRun,
    PlanSettings,
    PoolRun,
    ProcessedRefund,
    PurchasePreview,
    PurchaseProcessing,
    Rank,
    RankHistory,
    month_parse,
    month_start,
)
from purchases.models import Option


@admin.register(Rank)
class RankAdmin(AuditAdmin):
    list_display = ("position", "code", "name", "rate", "pv_required", "tv_required", "partners_required")
    ordering = ("position",)


@admin.register(InvestmentTier)
class InvestmentTierAdmin(AuditAdmin):
    list_display = ("threshold", "rate")


@admin.register(PlanSettings)
class PlanSettingsAdmin(AuditAdmin):
    list_display = ("__str__", "active_min_pv", "pioneer_threshold", "pioneer_limit", "referral_rate",
                    "branch_cap", "max_levels", "pool_rate", "grace_day", "grace_day_rate", "loyalty_months",
                    "payout_mode", "payout_day", "updated_at")

    def has_add_permission(self, request):
        return not PlanSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


class MonthFilter(admin.SimpleListFilter):
    title = "month"
    parameter_name = "month"

    def lookups(self, request, model_admin):
        months = model_admin.get_queryset(request).dates("created_at", "month", order="DESC")[:24]
        return [(m.strftime("%Y-%m"), m.strftime("%Y-%m")) for m in months]

    def queryset(self, request, queryset):
        if self.value():
            year, month = self.value().split("-")
            return queryset.filter(created_at__year=int(year), created_at__month=int(month))
        return queryset


@admin.register(Bonus)
class BonusAdmin(ExportMixin, ReadOnlyAdmin):
    export_fields = [("ID", "id"), ("Created (UTC)", "created_at"), ("Member", "user__email"), ("Kind", "kind"),
                     ("Amount (USD)", "amount", MONEY), ("Status", "status"), ("Paid (UTC)", "paid_at"),
                     ("Rate", "rate"), ("Level", "level"), ("Compression", "compression_applied"),
                     ("Purchase", "purchase_id"), ("Pool run", "pool_run_id"), ("Payout run", "payout_run_id"),
                     ("Reversed (UTC)", "reversed_at")]
    list_display = ("id", "created_at", "user", "kind", "amount", "status", "paid_at", "rate", "level",
                    "compression_applied", "purchase", "pool_run", "payout_run")
    list_filter = ("status", "kind", MonthFilter, "payout_run", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__email", "=purchase__id")
    list_select_related = ("user", "purchase", "pool_run", "payout_run")
    raw_id_fields = ("user", "purchase", "granted_purchase", "payout_run")


@admin.register(RankHistory)
class RankHistoryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "old_rank", "new_rank", "reason", "note", "created_by")
    list_filter = ("reason", "new_rank")
    search_fields = ("user__email",)
    list_select_related = ("user", "old_rank", "new_rank", "created_by")


@admin.register(PoolRun)
class PoolRunAdmin(ReadOnlyAdmin):
    list_display = ("month", "company_volume", "pool", "qualifiers", "share", "remainder", "created_at")


class PayoutMonthForm(forms.Form):
    month = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "month"}),
                            help_text="The month whose held bonuses are paid (YYYY-MM).")

    def clean_month(self):
        try:
            return month_parse(self.cleaned_data["month"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid_month") from None


PAYOUT_TOP_MEMBERS = 20


@admin.register(PayoutRun)
class PayoutRunAdmin(ReadOnlyAdmin):
    """Payout runs (read-only), and the *Payouts* page: pick a month, see what its run would
    pay (per kind, the largest members), and pay it now. The button calls the same service as
    the beat, so a month is paid once whoever clicks first."""

    list_display = ("month_label", "bonuses", "total", "created_by", "created_at")
    list_select_related = ("created_by",)
    change_list_template = "admin/mlm/payoutrun/change_list.html"

    @admin.display(description="month", ordering="month")
    def month_label(self, obj):
        return f"{obj.month:%Y-%m}"

    def get_urls(self):
        return [path("pay/", self.admin_site.admin_view(self.payouts_view), name="mlm_payoutrun_pay")] + \
            super().get_urls()

    def _may_pay(self, request) -> bool:
        return request.user.has_perm("mlm.add_payoutrun")

    def payouts_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._pay(request)
        default = month_start(month_start(timezone.now()) - timedelta(days=1))
        form = PayoutMonthForm(request.GET or {"month": f"{default:%Y-%m}"})
        preview = selectors.payout_preview(month=form.cleaned_data["month"], top=PAYOUT_TOP_MEMBERS) \
            if form.is_valid() else None
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Payouts",
                   "form": form, "preview": preview, "may_pay": self._may_pay(request),
                   "top": PAYOUT_TOP_MEMBERS, "settings": PlanSettings.load()}
        return TemplateResponse(request, "admin/mlm/payoutrun/payouts.html", context)

    def _pay(self, request):
        if not self._may_pay(request):
            raise PermissionDenied
        form = PayoutMonthForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "; ".join(form.errors["month"]), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:mlm_payoutrun_pay"))
        month = form.cleaned_data["month"]
        back = HttpResponseRedirect(f"{reverse('admin:mlm_payoutrun_pay')}?month={month:%Y-%m}")
        try:
            run, created = services.payout_run_with_status(month=month, created_by=request.user)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return back
        if not created:
            self.message_user(request, f"{month:%Y-%m} was already paid out on {run.created_at:%Y-%m-%d %H:%M} "
                                       "UTC: nothing was paid now.", messages.WARNING)
            return back
        self.message_user(request, f"Paid {run.bonuses} held bonus(es) of {month:%Y-%m}: {run.total:,.2f} USD.",
                          messages.SUCCESS)
        return back


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "amount", "message", "is_read", "emailed_at")
    list_filter = ("kind", "is_read")
    search_fields = ("user__email", "message")
    list_select_related = ("user",)


class SetRankForm(forms.Form):
    rank = forms.ModelChoiceField(queryset=Rank.objects.order_by("position"), to_field_name="code")
    note = forms.CharField(max_length=255, help_text="Why (kept in the rank history).")


def _display(key: str, value) -> str:
    """A summary value for people: money to the cent, the rate as a percentage."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value * 100:.2f} %" if key == "rate" else f"{value:,.2f}"
    return "—" if value is None else str(value)


class LoyaltyFilter(admin.SimpleListFilter):
    """The loyalty streak stored by the daily task (§8a)."""

    title = "loyalty streak"
    parameter_name = "loyalty"

    def lookups(self, request, model_admin):
        return [("qualified", "loyalty-qualified"), ("streak", "on a streak"), ("none", "no streak")]

    def queryset(self, request, queryset):
        months = PlanSettings.load().loyalty_months
        if self.value() == "qualified":
            return queryset.filter(mlm_stats__loyalty_streak__gte=max(months, 1))
        if self.value() == "streak":
            return queryset.filter(mlm_stats__loyalty_streak__gt=0)
        if self.value() == "none":
            return queryset.exclude(mlm_stats__loyalty_streak__gt=0)
        return queryset


@admin.register(MemberNetwork)
class MemberNetworkAdmin(admin.ModelAdmin):
    """A member's place in the network: stats, upline, direct referrals with branch volumes."""

    list_display = ("email", "rank", "pv", "fv", "tv", "is_pioneer", "loyalty_streak")
    list_filter = (LoyaltyFilter,)
    search_fields = ("email",)
    actions = ["recalculate_volumes", "set_rank"]
    fields = ("email", "summary", "preview_link", "upline_table", "referrals_table")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(is_system_root=False).select_related("mlm_stats__rank")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _stats(self, obj):
        return getattr(obj, "mlm_stats", None) if hasattr(obj, "mlm_stats") else None

    @admin.display(description="rank")
    def rank(self, obj):
        s = self._stats(obj)
        return s.rank.code if s and s.rank else "start"

    @admin.display(description="PV")
    def pv(self, obj):
        s = self._stats(obj)
        return s.pv if s else 0

    @admin.display(description="FV")
    def fv(self, obj):
        s = self._stats(obj)
        return s.fv if s else 0

    @admin.display(description="TV")
    def tv(self, obj):
        s = self._stats(obj)
        return s.tv if s else 0

    @admin.display(description="pioneer", boolean=True)
    def is_pioneer(self, obj):
        s = self._stats(obj)
        return bool(s and s.is_pioneer)

    @admin.display(description="loyalty streak", ordering="mlm_stats__loyalty_streak")
    def loyalty_streak(self, obj):
        s = self._stats(obj)
        return s.loyalty_streak if s else 0

    @admin.display(description="Preview")
    def preview_link(self, obj):
        url = f"{reverse('admin:mlm_purchasepreview_changelist')}?member={obj.pk}"
        return format_html('<a href="{}">Preview a purchase by this member</a>', url)

    @admin.display(description="Summary")
    def summary(self, obj):
        rows = ((key.replace("_", " "), _display(key, value))
                for key, value in selectors.member_summary(user=obj).items())
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="Upline (sponsor first)")
    def upline_table(self, obj):
        ids = obj.upline_ids
        users = User.objects.in_bulk(ids)
        if not ids:
            return "— (directly under the root)"
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((users[i].email,) for i in ids)))

    @admin.display(description="Direct referrals (branch volume)")
    def referrals_table(self, obj):
        rows = selectors.direct_referrals(user=obj)
        if not rows:
            return "—"
        return format_html("<table><tr><th>member</th><th>rank</th><th>active</th><th>branch volume</th></tr>"
                           "{}</table>", format_html_join(
                               "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                               ((r["email"], r["rank"], "yes" if r["is_active"] else "no", r["branch_volume"])
                                for r in rows)))

    @admin.action(description="Recalculate volumes (TV, cap, gap) of the selected members")
    def recalculate_volumes(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        for user in User.objects.filter(pk__in=ids):
            services.team_volume_recalculate(user=user)
        self.message_user(request, f"Recalculated {len(ids)} member(s).")

    @admin.action(description="Set rank manually (with a reason)")
    def set_rank(self, request, queryset):
        if "apply" in request.POST:
            form = SetRankForm(request.POST)
            if form.is_valid():
                done = 0
                for user in queryset:
                    try:
                        if services.rank_assign(user=user, rank_code=form.cleaned_data["rank"].code,
                                                reason="manual", note=form.cleaned_data["note"],
                                                created_by=request.user):
                            done += 1
                    except ValidationError as exc:
                        self.message_user(request, f"{user}: {'; '.join(exc.messages)}", messages.ERROR)
                self.message_user(request, f"Rank changed for {done} member(s).")
                return None
        else:
            form = SetRankForm()
        return render(request, "admin/mlm/set_rank.html",
                      {"form": form, "queryset": queryset, "opts": self.model._meta,
                       "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME})


@admin.register(PurchaseProcessing)
class PurchaseProcessingAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "kind", "price", "processed")
    list_filter = ("kind",)
    search_fields = ("user__email", "=id")
    list_select_related = ("user", "mlm_processed")
    actions = ["reprocess"]

    def get_queryset(self, request):
        # Counted purchases only: a refunded one no longer counts (its clawback: "Refund clawbacks").
        return super().get_queryset(request).filter(kind__in=PurchaseProcessing.COUNTED_KINDS,
                                                    refunded_at__isnull=True)

    @admin.display(boolean=True)
    def processed(self, obj):
        return hasattr(obj, "mlm_processed")

    @admin.action(description="Process the selected purchases (idempotent: done ones stay as they are)")
    def reprocess(self, request, queryset):
        done = sum(services.purchase_process(purchase_id=pk).processed
                   for pk in queryset.values_list("id", flat=True))
        self.message_user(request, f"Processed {done} purchase(s); the others were already processed.")


@admin.register(ProcessedRefund)
class ProcessedRefundAdmin(ReadOnlyAdmin):
    """Refunds whose clawback ran (volumes, bonuses, pioneer status taken back). A refund not
    listed here is still queued; the sweeper takes it back after MLM_SWEEP_AFTER_MINUTES."""

    list_display = ("refund", "purchase", "processed_at", "was_processed")
    list_filter = ("was_processed",)
    search_fields = ("=refund__purchase__id", "refund__purchase__user__email")
    list_select_related = ("refund__purchase__user",)

    @admin.display(description="purchase")
    def purchase(self, obj):
        return obj.refund.purchase


@admin.register(MemberStats)
class MemberStatsAdmin(ReadOnlyAdmin):
    list_display = ("user", "rank", "pv", "fv", "tv", "is_pioneer", "loyalty_streak")
    list_filter = ("rank", "is_pioneer", "loyalty_streak")
    search_fields = ("user__email",)
    list_select_related = ("user", "rank")


class PurchasePreviewForm(forms.Form):
    member = forms.CharField(help_text="The buyer: e-mail or member id.")
    option = forms.ModelChoiceField(queryset=Option.objects.select_related("project")
                                    .order_by("project__name", "pack_price", "id"))
    packs = forms.IntegerField(min_value=1, initial=1)
    price = forms.DecimalField(required=False, max_digits=20, decimal_places=8,
                               help_text="Optional: a price instead of packs × the pack price.")
    when = forms.DateTimeField(required=False, help_text="Optional, UTC (YYYY-MM-DD HH:MM): default now.")

    def clean_member(self):
        text = self.cleaned_data["member"].strip()
        users = User.objects.filter(is_system_root=False)
        user = users.filter(pk=int(text)).first() if text.isdigit() else users.filter(email__iexact=text).first()
        if user is None:
            raise forms.ValidationError(f"No member {text!r}.", code="unknown_member")
        return user


# The service's field names → the form's.
_PREVIEW_FIELDS = {"user": "member", "option": "option", "packs": "packs", "price": "price", "when": "when"}


@admin.register(PurchasePreview)
class PurchasePreviewAdmin(ReadOnlyAdmin):
    """*Preview a purchase*: not a list but a form — what a purchase by any member would pay, to
    whom, by the same rules as processing (`mlm.selectors.purchase_preview_staff`). It writes
    nothing (a GET form; no add, change or delete)."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PurchasePreviewForm(request.GET if "option" in request.GET else None,
                                   initial={"member": request.GET.get("member", ""), "packs": 1})
        preview = None
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                preview = selectors.purchase_preview_staff(user=data["member"], option=data["option"],
                                                           packs=data["packs"], price=data["price"],
                                                           when=data["when"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(_PREVIEW_FIELDS.get(field), errors)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "Preview a purchase", "form": form, "preview": preview, **(extra_context or {})}
        return TemplateResponse(request, "admin/mlm/purchasepreview/preview.html", context)
