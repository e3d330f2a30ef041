from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import LedgerEntry, User
from accounts.services import member_create, wallet_deposit_with_status
from common.admin import ReadOnlyAdmin
from common.money import format_money


class DepositForm(forms.Form):
    amount = forms.DecimalField(max_digits=20, decimal_places=8, min_value=0.00000001)
    reference = forms.CharField(max_length=150, help_text="Unique: the same reference deposits once.")
    description = forms.CharField(max_length=200, required=False)


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


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    add_form = MemberCreationForm
    add_fieldsets = ((None, {"fields": ("email", "password", "first_name", "last_name", "sponsor",
                                        "is_staff")}),)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "referral_code", "date_joined", "last_login")}),
        ("Network", {"fields": ("sponsor_link", "depth", "is_system_root")}),
        ("Wallets", {"fields": ("balance_active", "balance_passive")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
    )
    readonly_fields = ("sponsor_link", "depth", "is_system_root", "balance_active", "balance_passive",
                       "date_joined", "last_login", "referral_code")
    list_display = ("email", "first_name", "last_name", "sponsor", "balance_active", "balance_passive",
                    "is_staff", "date_joined")
    list_filter = ("is_staff", "is_active", "is_system_root", "date_joined")
    search_fields = ("email", "first_name", "last_name", "referral_code")
    ordering = ("-date_joined",)
    list_select_related = ("sponsor",)
    raw_id_fields = ("sponsor",)
    actions = ["deposit_action"]
    change_form_template = "admin/accounts/user/change_form.html"

    @admin.display(description="sponsor")
    def sponsor_link(self, obj):
        if obj.sponsor_id is None:
            return "—"
        url = reverse("admin:accounts_user_change", args=[obj.sponsor_id])
        return format_html('<a href="{}">{}</a>', url, obj.sponsor)

    def get_urls(self):
        return [path("<int:pk>/deposit/", self.admin_site.admin_view(self.deposit_view),
                     name="accounts_user_deposit")] + super().get_urls()

    @admin.action(description="Deposit to the selected member")
    def deposit_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one member to deposit to.", messages.WARNING)
            return None
        return redirect("admin:accounts_user_deposit", pk=queryset.get().pk)

    def deposit_view(self, request, pk):
        if not request.user.has_perm("accounts.add_ledgerentry") and not request.user.is_superuser:
            messages.error(request, "You may not deposit.")
            return redirect("admin:accounts_user_change", pk)
        member = get_object_or_404(User, pk=pk, is_system_root=False)
        form = DepositForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
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


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "wallet", "amount", "balance_after", "reason", "description")
    list_filter = ("wallet", "reason", "created_at")
    search_fields = ("user__email", "idempotency_key", "description", "cause_id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]
