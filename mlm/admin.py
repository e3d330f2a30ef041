"""The back office of the compensation plan."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from accounts.genealogy import upline
from accounts.models import User
from common.admin import ActionPermissionMixin, ReadOnlyAdmin
from common.audit import AuditAdmin
from common.columns import column, value_at
from common.display import money, rate, when
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

# At most this many rows per click of an action that works row by row: a bigger batch is the
# beat's or the sweeper's work, not one admin request's.
REPROCESS_MAX_SELECTED = 500
RECALCULATE_MAX_SELECTED = 200


def capped_selection(model_admin, request, queryset, cap: int, refusal: str) -> list[int] | None:
    """The ids of an action's selection in id order, or ``None`` (``refusal`` shown, nothing done)
    when it holds more than ``cap``: an action does one request's worth of work."""
    ids = list(queryset.order_by("id").values_list("id", flat=True)[:cap + 1])
    if len(ids) > cap:
        model_admin.message_user(request, refusal, messages.ERROR)
        return None
    return ids


@admin.register(Rank)
class RankAdmin(AuditAdmin):
    list_display = ("position", "code", "name", "rate_col", "pv_col", "tv_col", "partners_required")
    ordering = ("position",)

    rate_col = column("rate", rate, "differential rate")
    pv_col = column("pv_required", money, "PV required")
    tv_col = column("tv_required", money, "TV required")


@admin.register(InvestmentTier)
class InvestmentTierAdmin(AuditAdmin):
    list_display = ("threshold_col", "rate_col")

    threshold_col = column("threshold", money, "threshold (T at least)")
    rate_col = column("rate", rate, "rate")


@admin.register(PlanSettings)
class PlanSettingsAdmin(AuditAdmin):
    # The key numbers (the form has them all): fits a 1400 px page.
    list_display = ("__str__", "active_pv", "pioneer_at", "pioneer_pct", "referral_pct", "cap_pct", "pool_pct",
                    "grace_pct", "payout")

    active_pv = column("active_min_pv", money, "active at PV")
    pioneer_at = column("pioneer_threshold", money, "pioneer at")
    pioneer_pct = column("pioneer_rate", rate, "pioneer bonus")
    referral_pct = column("referral_rate", rate, "referral bonus")
    cap_pct = column("branch_cap", rate, "branch cap")
    pool_pct = column("pool_rate", rate, "global pool")
    grace_pct = column("grace_day_rate", rate, "Grace Day bonus")
    payout = column("payout_mode", str, "payout")

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
        if not self.value():
            return queryset
        try:
            month = month_parse(self.value())
        except ValueError as exc:  # a hand-made URL (the filter only offers good months): ignored, said so
            messages.error(request, f"{exc} The month filter is ignored.")
            return queryset
        return queryset.filter(created_at__year=month.year, created_at__month=month.month)


@admin.register(Bonus)
class BonusAdmin(ExportMixin, ReadOnlyAdmin):
    export_fields = [("ID", "id"), ("Created (UTC)", "created_at"), ("Member", "user__email"), ("Kind", "kind"),
                     ("Amount (USD)", "amount", MONEY), ("Status", "status"), ("Paid (UTC)", "paid_at"),
                     ("Rate", "rate"), ("Level", "level"), ("Compression", "compression_applied"),
                     ("Purchase", "purchase_id"), ("Pool run", "pool_run_id"), ("Payout run", "payout_run_id"),
                     ("Reversed (UTC)", "reversed_at")]
    list_display = ("created", "user", "kind", "amount_col", "status", "rate_col", "cause")
    list_display_links = ("created",)
    list_filter = ("status", "kind", MonthFilter, "payout_run", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__email", "=purchase__id")
    list_select_related = ("user", "purchase", "pool_run", "payout_run")
    raw_id_fields = ("user", "purchase", "granted_purchase", "payout_run")
    rate_fields = ("rate",)  # the detail page (ReadOnlyAdmin formats the rest)

    created = column("created_at", when, "date")
    amount_col = column("amount", money, "amount (USD)")
    rate_col = column("rate", rate, "rate")

    @admin.display(description="cause")
    def cause(self, obj):
        if obj.purchase_id:
            return format_html('<a href="{}">purchase #{}</a>',
                               reverse("admin:purchases_purchase_change", args=[obj.purchase_id]), obj.purchase_id)
        return f"pool {obj.pool_run.month:%Y-%m}" if obj.pool_run_id else "–"


@admin.register(RankHistory)
class RankHistoryAdmin(ReadOnlyAdmin):
    list_display = ("created", "user", "old_rank", "new_rank", "reason", "note", "created_by")

    created = column("created_at", when, "date")
    list_filter = ("reason", "new_rank")
    search_fields = ("user__email",)
    list_select_related = ("user", "old_rank", "new_rank", "created_by")


@admin.register(PoolRun)
class PoolRunAdmin(ReadOnlyAdmin):
    list_display = ("month_label", "volume", "pool_col", "qualifiers", "share_col", "remainder_col", "created")

    volume = column("company_volume", money, "company volume")
    pool_col = column("pool", money, "pool")
    share_col = column("share", money, "share each")
    remainder_col = column("remainder", money, "remainder")
    created = column("created_at", when, "run at")

    @admin.display(description="month", ordering="month")
    def month_label(self, obj):
        return f"{obj.month:%Y-%m}"


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

    list_display = ("month_label", "bonuses", "total_col", "created_by", "created")
    list_select_related = ("created_by",)

    total_col = column("total", money, "total (USD)")
    created = column("created_at", when, "paid at")
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
    list_display = ("created", "user", "kind", "amount_col", "message", "is_read", "emailed")

    created = column("created_at", when, "date")
    amount_col = column("amount", money, "amount")
    emailed = column("emailed_at", when, "e-mailed")
    list_filter = ("kind", "is_read")
    search_fields = ("user__email", "message")
    list_select_related = ("user",)


class SetRankForm(forms.Form):
    rank = forms.ModelChoiceField(queryset=Rank.objects.order_by("position"), to_field_name="code")
    note = forms.CharField(max_length=255, help_text="Why (kept in the rank history).")


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
class MemberNetworkAdmin(ActionPermissionMixin, admin.ModelAdmin):
    """A member's place in the network: stats, upline, direct referrals with branch volumes.
    Read-only (no Save): ranks are set on their own page, volumes by the recalculate action."""

    list_display = ("email", "rank", "pv", "fv", "tv", "is_pioneer", "loyalty_streak", "member_page_link")
    list_filter = (LoyaltyFilter,)
    search_fields = ("email", "first_name", "last_name")
    actions = ["recalculate_volumes", "set_rank"]
    fields = ("member_page", "summary", "actions_links", "upline_table", "referrals_table")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(is_system_root=False).select_related("mlm_stats__rank")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a page to read: no form, no Save buttons (actions have their own permissions)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_set_rank_permission(self, request):
        return request.user.has_perm("mlm.add_rankhistory")

    def has_recalculate_permission(self, request):
        # The change permission of this page (whose form is off: it has nothing to save).
        return request.user.has_perm("mlm.change_membernetwork")

    rank = column("mlm_stats__rank__name", str, "rank", empty="start")
    pv = column("mlm_stats__pv", money, "PV", empty=money(0))
    fv = column("mlm_stats__fv", money, "FV", empty=money(0))
    tv = column("mlm_stats__tv", money, "TV", empty=money(0))
    loyalty_streak = column("mlm_stats__loyalty_streak", str, "Grace Day streak", empty="0")

    @admin.display(description="pioneer", boolean=True, ordering="mlm_stats__is_pioneer")
    def is_pioneer(self, obj):
        return bool(value_at(obj, "mlm_stats__is_pioneer"))

    @admin.display(description="")
    def member_page_link(self, obj):
        return format_html('<a href="{}">member page</a>', reverse("admin:accounts_user_change", args=[obj.pk]))

    @admin.display(description="Member page")
    def member_page(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:accounts_user_change", args=[obj.pk]),
                           obj.get_full_name())

    @admin.display(description="Actions")
    def actions_links(self, obj):
        preview = f"{reverse('admin:mlm_purchasepreview_changelist')}?{urlencode({'member': obj.email})}"
        return format_html('<a href="{}">Preview a purchase by this member</a> · <a href="{}">Set rank</a>',
                           preview, reverse("admin:mlm_membernetwork_set_rank", args=[obj.pk]))

    @admin.display(description="Compensation plan")
    def summary(self, obj):
        from accounts.member_page import summary_rows

        rows = summary_rows(selectors.member_summary(user=obj))
        return format_html('<table class="summary">{}</table>',
                           format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="Upline (sponsor first)")
    def upline_table(self, obj):
        sponsors = list(reversed(upline(obj)))
        if not sponsors:
            return "— (directly under the root)"
        return format_html('<ol id="upline">{}</ol>', format_html_join(
            "", '<li><a href="{}">{}</a> {} <a href="{}" class="small">(network)</a></li>',
            ((reverse("admin:accounts_user_change", args=[u.pk]), u.get_full_name(),
              u.email if u.get_full_name() != u.email else "",
              reverse("admin:mlm_membernetwork_change", args=[u.pk])) for u in sponsors)))

    @admin.display(description="Direct referrals (branch volume = PV + FV)")
    def referrals_table(self, obj):
        rows = selectors.direct_referrals(user=obj)
        if not rows:
            return "—"
        return format_html(
            '<table id="referrals"><tr><th>member</th><th>rank</th><th>active this month</th><th>PV</th>'
            "<th>FV</th><th>branch volume</th></tr>{}</table>", format_html_join(
                "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                ((reverse("admin:mlm_membernetwork_change", args=[r["id"]]), r["email"], r["rank"],
                  "yes" if r["is_active"] else "no", money(r["pv"]), money(r["fv"]), money(r["branch_volume"]))
                 for r in rows)))

    def get_urls(self):
        return [path("<int:pk>/set-rank/", self.admin_site.admin_view(self.set_rank_view),
                     name="mlm_membernetwork_set_rank")] + super().get_urls()

    @admin.action(description="Recalculate volumes (TV, cap, gap) of the selected members",
                  permissions=["recalculate"])
    def recalculate_volumes(self, request, queryset):
        ids = capped_selection(self, request, queryset, RECALCULATE_MAX_SELECTED,
                               f"Select at most {RECALCULATE_MAX_SELECTED} members to recalculate at once (nothing "
                               "was recalculated): volumes are kept up to date after each purchase and refund by "
                               "the queued recalculation.")
        if ids is None:
            return
        for user in User.objects.filter(pk__in=ids):
            services.team_volume_recalculate(user=user)
        self.message_user(request, f"Recalculated {len(ids)} member(s).")

    def _rank_apply(self, request, users, form) -> int:
        done = 0
        for user in users:
            try:
                if services.rank_assign(user=user, rank_code=form.cleaned_data["rank"].code, reason="manual",
                                        note=form.cleaned_data["note"], created_by=request.user):
                    done += 1
            except ValidationError as exc:
                self.message_user(request, f"{user}: {'; '.join(exc.messages)}", messages.ERROR)
        return done

    def _rank_page(self, request, form, members, *, action: bool):
        context = {**self.admin_site.each_context(request), "title": "Set rank", "form": form,
                   "members": members, "opts": self.model._meta, "action": action,
                   "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/mlm/set_rank.html", context)

    @admin.action(description="Set rank manually (with a reason)", permissions=["set_rank"])
    def set_rank(self, request, queryset):
        form = SetRankForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = self._rank_apply(request, queryset, form)
            self.message_user(request, f"Rank changed for {done} member(s).")
            return None
        return self._rank_page(request, form, list(queryset), action=True)

    def set_rank_view(self, request, pk):
        """The member page's *Set rank*: one member, a rank and why (kept in the rank history)."""
        if not self.has_set_rank_permission(request):
            raise PermissionDenied
        member = get_object_or_404(User, pk=pk, is_system_root=False)
        form = SetRankForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if self._rank_apply(request, [member], form):
                self.message_user(request, f"{member} is now {form.cleaned_data['rank'].name}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{member} already has this rank: nothing changed.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[pk]))
        return self._rank_page(request, form, [member], action=False)


@admin.register(PurchaseProcessing)
class PurchaseProcessingAdmin(ActionPermissionMixin, ReadOnlyAdmin):
    list_display = ("id", "created", "user", "kind", "price_col", "processed")

    created = column("created_at", when, "date")
    price_col = column("price", money, "price (USD)")
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

    def has_reprocess_permission(self, request):
        return request.user.has_perm("mlm.reprocess_purchase")

    @admin.action(description="Process the selected purchases (idempotent: done ones stay as they are)",
                  permissions=["reprocess"])
    def reprocess(self, request, queryset):
        """The selection, with the purchases still pending before it, in id order and in batches:
        what the purchase's own task does (`purchase_process_pending`), so a purchase is never
        processed ahead of an earlier one and the bonuses are the same whoever processes them."""
        ids = capped_selection(self, request, queryset, REPROCESS_MAX_SELECTED,
                               f"Select at most {REPROCESS_MAX_SELECTED} purchases to process at once (nothing was "
                               "processed): the sweeper processes the pending ones every few minutes.")
        if ids is None:
            return
        earlier = set(services.purchases_pending(up_to=ids[-1])) - set(ids) if ids else set()
        done = services.purchase_process_many(purchase_ids=[*ids, *earlier])
        also = f", with {len(earlier)} earlier pending one(s) processed first to keep the id order" if earlier \
            else ""
        self.message_user(request, f"Processed {done} purchase(s){also}; the others were already processed.")


@admin.register(ProcessedRefund)
class ProcessedRefundAdmin(ReadOnlyAdmin):
    """Refunds whose clawback ran (volumes, bonuses, pioneer status taken back). A refund not
    listed here is still queued; the sweeper takes it back after MLM_SWEEP_AFTER_MINUTES."""

    list_display = ("refund", "purchase", "processed", "was_processed")

    processed = column("processed_at", when, "clawback at")
    list_filter = ("was_processed",)
    search_fields = ("=refund__purchase__id", "refund__purchase__user__email")
    list_select_related = ("refund__purchase__user",)

    @admin.display(description="purchase")
    def purchase(self, obj):
        return obj.refund.purchase


@admin.register(MemberStats)
class MemberStatsAdmin(ReadOnlyAdmin):
    list_display = ("user", "rank", "pv_col", "fv_col", "tv_col", "is_pioneer", "loyalty_streak")
    list_filter = ("rank", "is_pioneer", "loyalty_streak")

    pv_col = column("pv", money, "PV")
    fv_col = column("fv", money, "FV")
    tv_col = column("tv", money, "TV")
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
        is_id = text.isascii() and text.isdigit()  # str.isdigit() also takes "²" (int() fails) and "١٢"
        user = users.filter(pk=int(text)).first() if is_id else users.filter(email__iexact=text).first()
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
