"""The admin site of the back-office: branded, its sections grouped by business, and a
dashboard as its index page."""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy

from backoffice import sections


class BackOfficeSite(admin.AdminSite):
    site_header = "AZR Back-office"
    site_title = "AZR Back-office"
    index_title = "Dashboard"
    site_url = reverse_lazy("admin:index")  # "View site" opens the dashboard

    def get_app_list(self, request, app_label=None):
        """Sections by business (``backoffice.sections``); one app's page keeps Django's list."""
        app_list = super().get_app_list(request, app_label)
        if app_label:
            return app_list
        return sections.group(app_list, url_of=lambda key: reverse(f"{self.name}:section", args=[key],
                                                                   current_app=self.name))

    def get_urls(self):
        return [path("section/<slug:key>/", self.admin_view(self.section_view), name="section"),
                *super().get_urls()]

    def section_view(self, request, key):
        app_list = [section for section in self.get_app_list(request) if section["section"] == key]
        if not app_list:
            raise Http404("No such section.")
        request.current_app = self.name
        context = {**self.each_context(request), "title": app_list[0]["name"], "subtitle": None,
                   "app_list": app_list, "app_label": key}
        return TemplateResponse(request, "admin/app_index.html", context)

    def index(self, request, extra_context=None):
        from backoffice.panels import dashboard_context  # the apps' models, loaded after the site

        context = {"dashboard": dashboard_context(request.user), **(extra_context or {})}
        return super().index(request, context)
