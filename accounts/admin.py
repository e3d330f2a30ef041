from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from accounts import genealogy, member_page
from accounts.models import LedgerEntry, User, Wallet, WalletSettings
from accounts.selectors import member_by_email_or_referral_code
from accounts.services import member_create, wallet_deposit_with_status, wallet_transfer_to_member_with_status
from common.admin import ReadOnlyAdmin
from common.api import MAX_OFFSET
from common.audit import AuditAdmin
from common.columns import column
from common.display import money, rate, when
from common.exports import MONEY, ExportMixin
from common.money import format_money


class DepositForm(forms.Form):
    amount = forms.DecimalField(max_digits=20, decimal_places=8, min_value=0.00000001)
    reference = forms.CharField(max_length=150, help_text="Unique: the same reference deposits once.")
    description = forms.CharField(max_length=200, required=False)


class MemberTransferForm(forms.Form):
    receiver = forms.CharField(max_length=254, help_text="The receiver's e-mail or referral code.")
    wallet = forms.ChoiceField(choices=Wallet.choices, initial=Wallet.ACTIVE,
                               help_text="The sender's wallet to take it from; the receiver gets it on the "
                                         "active wallet.")
    amount = forms.DecimalField(max_digits=20, decimal_places=8, min_value=0.00000001)
    reference = forms.CharField(max_length=100, help_text="Unique per sender: submitting the same reference "
                                                          "again transfers once.")

    def clean_receiver(self):
        text = self.cleaned_data["receiver"].strip()
        receiver = member_by_email_or_referral_code(email=text) if "@" in text else \
            member_by_email_or_referral_code(referral_code=text)
        if receiver is None:
            raise forms.ValidationError("No member with this e-mail or referral code.")
        return receiver


# An operator never moves money into or out of his own account: another operator does it.
SELF_DEALING = "You may not move money into or out of your own account: ask another operator."


class MemberCreationForm(forms.ModelForm):
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="Leave empty for a member who cannot log in yet.")

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name", "sponsor", "is_staff"]

    def save(self, commit=True):
        # Members are placed in the tree by the service, never by a bare save().
        try:
            return member_create(email=self.cleaned_data["email"], password=self.cleaned_data["password"] or None,
                                 sponsor=self.cleaned_data.get("sponsor"),
                                 first_name=self.cleaned_data["first_name"],
                                 last_name=self.cleaned_data["last_name"],
                                 is_staff=self.cleaned_data.get("is_staff", False))
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc

    def save_m2m(self):
        pass


ACCESS_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")
ACCESS_FIELDSET = ("Access", {"classes": ("collapse",), "fields": ACCESS_FIELDS,
                               "description": "Back-office access: staff status, groups and permissions."})


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    """The member page: the profile form, then balances, the MLM summary, the upline, the genealogy
    tree (children on demand) and the member's purchases, ledger, bonuses, withdrawals and rank
    history (accounts.member_page). The access widgets are for superusers only, folded."""

    add_form = MemberCreationForm
    add_fieldsets = ((None, {"fields": ("email", "password", "first_name", "last_name", "sponsor",
                                        "is_staff")}),)
    fieldsets = (
        ("Login", {"fields": ("email", "password")}),
        ("Profile", {"fields": (("first_name", "last_name"), "is_active", ("referral_code", "sponsor_link"),
                                ("joined", "last_seen"))}),
    )
    readonly_fields = ("sponsor_link", "referral_code", "joined", "last_seen")
    list_display = ("email", "full_name", "sponsor", "active_balance", "passive_balance", "joined_col")
    list_filter = ("is_staff", "is_active", "is_system_root", "date_joined")
    search_fields = ("email", "first_name", "last_name", "referral_code")
    ordering = ("-date_joined",)
    list_select_related = ("sponsor",)
    raw_id_fields = ("sponsor",)
    actions = ["deposit_action", "transfer_action"]
    change_form_template = "admin/accounts/user/change_form.html"

    active_balance = column("balance_active", money, "active (USD)")
    passive_balance = column("balance_passive", money, "passive (USD)")
    joined_col = column("date_joined", when, "joined")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            if request.user.is_superuser:
                return self.add_fieldsets
            # Only a superuser creates back-office logins: the access fields are not on the form,
            # so a posted is_staff is not read (the form is built from these fields).
            return tuple((name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in ACCESS_FIELDS)})
                         for name, opts in self.add_fieldsets)
        return self.fieldsets + ((ACCESS_FIELDSET,) if request.user.is_superuser else ())

    def has_change_permission(self, request, obj=None):
        """Staff and superuser accounts are changed by superusers only: whoever may edit members
        must not take over a back-office login (its e-mail, its password — the inherited
        password page asks this too —, whether it is active)."""
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj):
        return f"{obj.first_name} {obj.last_name}".strip() or "–"

    @admin.display(description="joined")
    def joined(self, obj):
        return when(obj.date_joined)

    @admin.display(description="last login")
    def last_seen(self, obj):
        return when(obj.last_login)

    @admin.display(description="sponsor")
    def sponsor_link(self, obj):
        if obj.sponsor_id is None:
            return "—"
        url = reverse("admin:accounts_user_change", args=[obj.sponsor_id])
        return format_html('<a href="{}">{}</a>', url, obj.sponsor)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        member = self.get_object(request, unquote(object_id))
        if member is not None:
            name = member.get_full_name()
            extra_context = {**member_page.context(member, request), "title": name,
                             "subtitle": member.email if name != member.email else None,
                             "show_save_and_add_another": False, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request, obj=None):
        # A member is never deleted: the ledger, purchases and the sponsor tree hang on him
        # (every one of those references is PROTECT). Deactivate him instead ("Is active").
        return False

    def genealogy_children_view(self, request, pk):
        """One page (at most 200) of a member's direct referrals, as JSON, for the tree's toggles."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        offset = request.GET.get("offset", "0")
        # ASCII digits only (int() also takes "+1", " 1" and other scripts' digits) and capped, so
        # a huge number is a 400 here rather than an integer overflow in the database.
        if not (offset.isascii() and offset.isdigit()) or len(offset) > 12 or int(offset) > MAX_OFFSET:
            return JsonResponse({"offset": [{"message": f"A whole number from 0 to {MAX_OFFSET:,}.",
                                             "code": "invalid"}]}, status=400)
        offset = int(offset)
        if not User.objects.filter(pk=pk).exists():
            return JsonResponse({"detail": "No such member.", "code": "not_found"}, status=404)
        return JsonResponse(genealogy.children(parent_id=pk, offset=offset))

    def get_urls(self):
        return [path("genealogy/<int:pk>/children/", self.admin_site.admin_view(self.genealogy_children_view),
                     name="accounts_user_genealogy_children"),
                path("<int:pk>/deposit/", self.admin_site.admin_view(self.deposit_view),
                     name="accounts_user_deposit"),
                path("<int:pk>/transfer/", self.admin_site.admin_view(self.transfer_view),
                     name="accounts_user_transfer")] + super().get_urls()

    @admin.action(description="Deposit to the selected member")
    def deposit_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one member to deposit to.", messages.WARNING)
            return None
        return redirect("admin:accounts_user_deposit", pk=queryset.get().pk)

    def deposit_view(self, request, pk):
        """Credits a member's active wallet: `accounts.deposit` (not the stock add permission of
        ledger entries, which is easy to grant without seeing that it moves money); never into
        the operator's own account."""
        if not request.user.has_perm("accounts.deposit"):
            raise PermissionDenied
        member = get_object_or_404(User, pk=pk, is_system_root=False)
        form = DepositForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                if member.pk == request.user.pk:
                    raise ValidationError(SELF_DEALING)
                entry, created = wallet_deposit_with_status(
                    user=member, amount=form.cleaned_data["amount"], reference=form.cleaned_data["reference"],
                    created_by=request.user, description=form.cleaned_data["description"])
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                if created:
                    self.message_user(request, f"Deposited {format_money(entry.amount)} USD to {member} (active "
                                               f"balance now {format_money(entry.balance_after)} USD).",
                                      messages.SUCCESS)
                else:
                    self.message_user(request, f"Reference {form.cleaned_data['reference']!r} was already "
                                               f"deposited (ledger entry #{entry.pk}): nothing credited again.",
                                      messages.WARNING)
                return redirect("admin:accounts_user_change", pk)
        context = {**self.admin_site.each_context(request), "title": f"Deposit to {member}",
                   "form": form, "member": member, "opts": self.model._meta}
        return render(request, "admin/accounts/user/deposit.html", context)


    @admin.action(description="Transfer from the selected member to another member")
    def transfer_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one member to transfer from.", messages.WARNING)
            return None
        return redirect("admin:accounts_user_transfer", pk=queryset.get().pk)

    def transfer_view(self, request, pk):
        """An operator's member → member transfer: the same service as the member's API. Needs
        `accounts.transfer_between_members`; never from or to the operator's own account."""
        if not request.user.has_perm("accounts.transfer_between_members"):
            raise PermissionDenied
        sender = get_object_or_404(User, pk=pk, is_system_root=False)
        form = MemberTransferForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            v = form.cleaned_data
            try:
                if request.user.pk in (sender.pk, v["receiver"].pk):
                    raise ValidationError(SELF_DEALING)
                rows, created = wallet_transfer_to_member_with_status(
                    sender=sender, receiver=v["receiver"], amount=v["amount"], wallet=v["wallet"],
                    idempotency_key=f"admin:{v['reference']}", created_by=request.user)
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                if created:
                    self.message_user(request, f"Transferred {v['amount']:,.2f} USD from {sender} ({v['wallet']}) "
                                               f"to {v['receiver']}.", messages.SUCCESS)
                else:
                    self.message_user(request, "That reference was already used for this transfer: nothing "
                                               "was moved again.", messages.WARNING)
                return redirect("admin:accounts_user_change", pk)
        context = {**self.admin_site.each_context(request), "title": f"Transfer from {sender}",
                   "form": form, "member": sender, "opts": self.model._meta}
        return render(request, "admin/accounts/user/transfer.html", context)


@admin.register(WalletSettings)
class WalletSettingsAdmin(AuditAdmin):
    """One row: the transfer bonus rate, the withdrawal minimum and fee (money-lifecycle §3–4)."""

    list_display = ("__str__", "bonus_rate", "minimum", "fee", "updated")
    readonly_fields = ("updated_at",)

    bonus_rate = column("transfer_bonus_rate", rate, "transfer bonus")
    minimum = column("withdrawal_min", money, "withdrawal minimum (USD)")
    fee = column("withdrawal_fee", money, "withdrawal fee (USD)")
    updated = column("updated_at", when, "updated")

    def changelist_view(self, request, extra_context=None):
        # The permission first: a GET by staff who may not see the settings writes nothing.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        WalletSettings.load()  # the singleton exists, so the list always has the row to edit
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ExportMixin, ReadOnlyAdmin):
    export_fields = [("ID", "id"), ("Created (UTC)", "created_at"), ("Member", "user__email"), ("Wallet", "wallet"),
                     ("Amount (USD)", "amount", MONEY), ("Balance after (USD)", "balance_after", MONEY),
                     ("Reason", "reason"), ("Description", "description"), ("Cause", "cause_id"),
                     ("Idempotency key", "idempotency_key")]
    list_display = ("created", "user", "wallet_col", "amount_col", "balance_col", "reason", "about")
    list_filter = ("wallet", "reason", "created_at")
    search_fields = ("user__email", "idempotency_key", "description", "cause_id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]

    created = column("created_at", when, "date")
    wallet_col = column("wallet", str, "wallet")

    @admin.display(description="description", ordering="description")
    def about(self, obj):
        """Long references (``demo:someone@example.com``) break anywhere rather than widen the list."""
        return format_html('<span style="overflow-wrap:anywhere" title="{}">{}</span>', obj.description,
                           Truncator(obj.description).chars(60))
    amount_col = column("amount", money, "amount (USD)")
    balance_col = column("balance_after", money, "balance after")
