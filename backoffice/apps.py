from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class BackOfficeConfig(AppConfig):
    """The back-office's look, dashboard and charts (templates, static files, template tags)."""

    name = "backoffice"
    verbose_name = "Back-office"


class BackOfficeAdminConfig(AdminConfig):
    """django.contrib.admin with our site as the default: every ``admin.site`` and
    ``@admin.register`` of the apps lands on ``BackOfficeSite`` unchanged."""

    default_site = "backoffice.site.BackOfficeSite"
