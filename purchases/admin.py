from django.contrib import admin

from common.admin import ReadOnlyAdmin
from purchases.models import Option, Project, Purchase


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


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "project", "option", "kind", "shares", "price")
    list_filter = ("kind", "project", "created_at")
    search_fields = ("user__email", "idempotency_key", "=id")
    list_select_related = ("user", "project", "option")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Purchase._meta.fields]
