"""The withdrawal queue: operators filter and search requests, approve them in bulk, export the
approved ones as a CSV for the payment batch, mark them paid with the references, or reject
them with a reason. Every action calls the services and shows their refusals."""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from common import display
from common.admin import ActionPermissionMixin, FormattedReadOnlyMixin, ReadOnlyInline
from common.audit import AuditAdmin
from common.columns import column
from common.exports import MONEY, ExportMixin
from withdrawals.models import Withdrawal, WithdrawalEvent
from withdrawals.services import TX_REF_MAX_LENGTH, withdrawal_approve, withdrawal_mark_paid, withdrawal_reject

CSV_COLUMNS = ["id", "member", "method", "destination", "net_amount", "created_at"]


class _Echo:
    """A write-only file for csv.writer: returns the line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value) -> str:
    """Text a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class WithdrawalEventInline(ReadOnlyInline):
    model = WithdrawalEvent
    fields = ("created", "status", "actor", "message", "emailed")

    @admin.display(description="when")
    def created(self, obj):
        return display.when(obj.created_at)

    @admin.display(description="e-mailed")
    def emailed(self, obj):
        return display.when(obj.emailed_at)


class MarkPaidForm(forms.Form):
    """One reference field per approved withdrawal; rows left blank are not touched."""

    def __init__(self, *args, withdrawals, **kwargs):
        super().__init__(*args, **kwargs)
        self.withdrawals = list(withdrawals)
        for w in self.withdrawals:
            self.fields[f"tx_ref_{w.pk}"] = forms.CharField(
                label=f"#{w.pk} {w.user.email} — {w.net_amount:,.2f} USD to {w.destination}",
                max_length=TX_REF_MAX_LENGTH, required=False)

    def references(self) -> list[tuple[Withdrawal, str]]:
        return [(w, self.cleaned_data[f"tx_ref_{w.pk}"].strip()) for w in self.withdrawals
                if self.cleaned_data.get(f"tx_ref_{w.pk}", "").strip()]


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=255, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Shown to the member(s).")


@admin.register(Withdrawal)
class WithdrawalAdmin(ActionPermissionMixin, ExportMixin, FormattedReadOnlyMixin, AuditAdmin):
    export_fields = [("ID", "id"), ("Created (UTC)", "created_at"), ("Member", "user__email"), ("Method", "method"),
                     ("Destination", "destination"), ("Amount (USD)", "amount", MONEY), ("Fee (USD)", "fee", MONEY),
                     ("Net (USD)", "net_amount", MONEY), ("Status", "status"), ("Transaction ref", "tx_ref"),
                     ("Rejection reason", "reason"), ("Approved by", "approved_by__email"),
                     ("Approved (UTC)", "approved_at"), ("Paid by", "paid_by__email"), ("Paid (UTC)", "paid_at"),
                     ("Rejected by", "rejected_by__email"), ("Rejected (UTC)", "rejected_at"),
                     ("Cancelled (UTC)", "cancelled_at")]
    # The method is in the filter (one today); the list keeps the money and the reference in 1400 px.
    list_display = ("id", "created", "user", "to", "amount_usd", "fee_usd", "net_usd", "status", "reference")
    list_filter = ("status", "method", "created_at")
    search_fields = ("user__email", "destination", "tx_ref")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    ordering = ("created_at", "id")
    readonly_fields = [f.name for f in Withdrawal._meta.fields]
    inlines = [WithdrawalEventInline]
    actions = ["approve_action", "export_approved_csv_action", "mark_paid_action", "reject_action"]

    created = column("created_at", display.when, "requested")

    @admin.display(description="destination", ordering="destination")
    def to(self, obj):
        return display.short_hash(obj.destination, head=8, tail=6)

    amount_usd = column("amount", display.money, "amount (USD)")
    fee_usd = column("fee", display.money, "fee")
    net_usd = column("net_amount", display.money, "net (USD)")

    @admin.display(description="transaction ref.", ordering="tx_ref")
    def reference(self, obj):
        return display.short_hash(obj.tx_ref) if obj.tx_ref else display.EMPTY

    # The rows are read-only (every change goes through an action and its service); the change
    # permission is what lets an operator run the actions.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("withdrawals.approve_withdrawal")

    def has_pay_permission(self, request) -> bool:
        return request.user.has_perm("withdrawals.pay_withdrawal")

    def _report(self, request, done: int, verb: str, errors: list[str]) -> None:
        if done:
            self.message_user(request, f"{done} withdrawal(s) {verb}.", messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.ERROR)

    @admin.action(description="Approve the selected withdrawals", permissions=["approve"])
    def approve_action(self, request, queryset):
        done, errors = 0, []
        for w in queryset.order_by("id"):
            try:
                withdrawal_approve(withdrawal=w, approved_by=request.user)
                done += 1
            except ValidationError as exc:
                errors.append(f"#{w.pk}: {' '.join(exc.messages)}")
        self._report(request, done, "approved", errors)

    @admin.action(description="Export the approved ones as CSV (payment batch)", permissions=["change"])
    def export_approved_csv_action(self, request, queryset):
        rows = queryset.filter(status=Withdrawal.Status.APPROVED).select_related("user").order_by("created_at", "id")
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(CSV_COLUMNS)
            for w in rows.iterator(chunk_size=1000):
                yield writer.writerow([_csv_cell(v) for v in (w.pk, w.user.email, w.method, w.destination,
                                                               w.net_amount, w.created_at.isoformat())])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="withdrawals-approved-{stamp}.csv"'
        return response

    def _intermediate(self, request, *, action: str, title: str, form, rows, template: str):
        context = {**self.admin_site.each_context(request), "title": title, "form": form, "rows": rows,
                   "action": action, "opts": self.model._meta,
                   "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                   "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME}
        return render(request, template, context)

    @admin.action(description="Mark paid… (enter the transaction references)", permissions=["pay"])
    def mark_paid_action(self, request, queryset):
        approved = list(queryset.filter(status=Withdrawal.Status.APPROVED).select_related("user").order_by("id"))
        if not approved:
            self.message_user(request, "None of the selected withdrawals is approved.", messages.WARNING)
            return None
        form = MarkPaidForm(request.POST if "apply" in request.POST else None, withdrawals=approved)
        if "apply" in request.POST and form.is_valid():
            done, errors = 0, []
            for w, tx_ref in form.references():
                try:
                    withdrawal_mark_paid(withdrawal=w, tx_ref=tx_ref, paid_by=request.user)
                    done += 1
                except ValidationError as exc:
                    errors.append(f"#{w.pk}: {' '.join(exc.messages)}")
            if not done and not errors:
                errors.append("No reference was entered: nothing was marked paid.")
            self._report(request, done, "marked paid", errors)
            return None
        return self._intermediate(request, action="mark_paid_action", title="Mark withdrawals paid",
                                  form=form, rows=approved, template="admin/withdrawals/withdrawal/mark_paid.html")

    @admin.action(description="Reject… (with a reason; the amounts go back)", permissions=["change"])
    def reject_action(self, request, queryset):
        held = list(queryset.filter(status__in=Withdrawal.HELD).select_related("user").order_by("id"))
        if not held:
            self.message_user(request, "None of the selected withdrawals can be rejected (requested or approved "
                                       "only).", messages.WARNING)
            return None
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done, errors = 0, []
            for w in held:
                try:
                    withdrawal_reject(withdrawal=w, reason=form.cleaned_data["reason"], rejected_by=request.user)
                    done += 1
                except ValidationError as exc:
                    errors.append(f"#{w.pk}: {' '.join(exc.messages)}")
            self._report(request, done, "rejected", errors)
            return None
        return self._intermediate(request, action="reject_action", title="Reject withdrawals",
                                  form=form, rows=held, template="admin/withdrawals/withdrawal/reject.html")
