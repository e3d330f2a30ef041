"""Admin building blocks shared by the apps."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils.html import format_html

from common import display
from common.money import MONEY_DECIMAL_PLACES


def next_url(request, param: str = "next") -> str | None:
    """The page to go back to (``?next=``), when it is a path of this site; None otherwise (another
    host, another scheme, ``javascript:``…)."""
    from django.utils.http import url_has_allowed_host_and_scheme

    url = request.GET.get(param) or ""
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return None


def num(text):
    """A number cell: right-aligned, on one line (``.num`` in the back-office's CSS)."""
    return format_html('<span class="num">{}</span>', text)


FORMATTED_PREFIX = "formatted__"


class FormattedReadOnlyMixin:
    """Read-only change pages show money with 2 decimals, ``token_fields`` with 4, ``rate_fields``
    as percentages, ``hash_fields`` shortened (whole in the tooltip) and dates on one line,
    through ``common.display``, instead of the stored ``80569.60000000``.

    Each such field of the page is swapped for a ``formatted__<field>`` read-only entry; the
    value shown is the field's, only its rendering changes."""

    token_fields: tuple[str, ...] = ()
    rate_fields: tuple[str, ...] = ()
    hash_fields: tuple[str, ...] = ()

    def _formatter(self, name: str):
        try:
            field = self.model._meta.get_field(name)
        except Exception:
            return None
        if name in self.token_fields:
            return display.tokens
        if name in self.rate_fields:
            return display.rate
        if name in self.hash_fields:
            return display.short_hash
        if isinstance(field, models.DecimalField) and field.decimal_places == MONEY_DECIMAL_PLACES:
            return display.money
        if isinstance(field, models.DateTimeField):
            return display.when
        return None

    def _formatted(self, names):
        mapped = [f"{FORMATTED_PREFIX}{n}" if isinstance(n, str) and self._formatter(n) else n for n in names]
        return list(dict.fromkeys(mapped))  # once each, in order

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fields
        return self._formatted(fields)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is None or self.has_change_permission(request, obj):
            return readonly
        return readonly + [name for name in self._formatted(readonly) if name not in readonly]

    def __getattr__(self, name):
        if not name.startswith(FORMATTED_PREFIX):
            raise AttributeError(name)
        field_name = name[len(FORMATTED_PREFIX):]
        formatter = self._formatter(field_name)
        if formatter is None:
            raise AttributeError(name)

        def show(obj):
            return formatter(getattr(obj, field_name))

        show.short_description = self.model._meta.get_field(field_name).verbose_name
        return show


class NoWritesMixin:
    """Nothing added, changed or deleted by hand (the admin's three write permissions off)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(NoWritesMixin, FormattedReadOnlyMixin, admin.ModelAdmin):
    """Money rows: listed, searched and viewed; never added, edited or deleted by hand."""


class ReadOnlyInline(NoWritesMixin, admin.TabularInline):
    """Rows shown under their parent as history (events, changes, slices): read-only, kept."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields


class ActionPermissionMixin:
    """A POSTed action of this admin that the operator may not run is refused (403). Django
    leaves such an action out of the menu and, when posted anyway, answers "No action selected"
    or the plain list: a forged POST would look like a glitch, not a denial."""

    def changelist_view(self, request, extra_context=None):
        name = request.POST.get("action") if request.method == "POST" else None
        if name in (self.actions or ()) and name not in self.get_actions(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)


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
    list_display = ("masked_key", "user", "created_on")
    fields = ("masked_key", "user", "created_on")
    readonly_fields = ("masked_key", "user", "created_on")
    search_fields = ("user__email",)
    search_help_text = "Member e-mail"

    @admin.display(description="created", ordering="created")
    def created_on(self, obj):
        return display.when(obj.created)

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
