"""Admin building blocks shared by the apps."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money rows: listed, searched and viewed; never added, edited or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- API tokens: never shown whole ----------------------------------------------------------
# DRF's own token admin lists every member's token in plain text to any staff user. This one
# (registered in its place; `common` is the last installed app) works on `MaskedToken`, whose
# str() is a prefix (page titles, breadcrumbs, the delete page, the admin log), shows a prefix
# only, searches by the member's e-mail only, and can revoke (delete) a token but not create
# or edit one — members obtain theirs through POST /api/auth/token/.
from rest_framework.authtoken.admin import TokenAdmin as DRFTokenAdmin  # noqa: E402
from rest_framework.authtoken.models import TokenProxy  # noqa: E402

from common.models import MaskedToken, mask_secret  # noqa: E402


class MaskedTokenAdmin(DRFTokenAdmin):
    list_display = ("masked_key", "user", "created")
    fields = ("masked_key", "user", "created")
    readonly_fields = ("masked_key", "user", "created")
    search_fields = ("user__email",)
    search_help_text = "Member e-mail"

    @admin.display(description="key")
    def masked_key(self, obj):
        return mask_secret(obj.key)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)
admin.site.register(MaskedToken, MaskedTokenAdmin)
