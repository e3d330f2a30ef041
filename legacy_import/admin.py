"""The back office for legacy imports: read-only run records, and an upload page that
dry-runs a file, shows the report, then imports it for real on confirmation.

Between the two steps the upload is kept under `settings.LEGACY_IMPORT_UPLOAD_DIR`
(inside VAR_DIR, not MEDIA_ROOT: these files are private), named by its sha256; the
confirmation names the checksum, and the file is re-hashed before the real run, so what
is imported is exactly what was dry-run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from common import display
from common.admin import ReadOnlyAdmin
from common.columns import column
from legacy_import.models import ImportRun, LegacyRecord
from legacy_import.readers import file_checksum
from legacy_import.services import legacy_file_import

_CHECKSUM = re.compile(r"^[0-9a-f]{64}$")
ALLOWED_EXTENSIONS = (".csv", ".xlsx")
PREVIEW_ROWS = 50


def upload_dir() -> Path:
    directory = Path(settings.LEGACY_IMPORT_UPLOAD_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def store_upload(uploaded) -> tuple[Path, str]:
    """Stream the upload to disk while hashing it; returns (path, sha256)."""
    suffix = Path(uploaded.name).suffix.lower()
    digest = hashlib.sha256()
    tmp = upload_dir() / f".incoming-{hashlib.sha256(uploaded.name.encode()).hexdigest()[:8]}{suffix}"
    with open(tmp, "wb") as fh:
        for chunk in uploaded.chunks():
            digest.update(chunk)
            fh.write(chunk)
    checksum = digest.hexdigest()
    final = upload_dir() / f"{checksum}{suffix}"
    tmp.replace(final)
    return final, checksum


class UploadForm(forms.Form):
    file = forms.FileField(help_text="The legacy export: CSV (UTF-8) or XLSX.")
    sheet = forms.CharField(required=False, max_length=100,
                            help_text="XLSX only: the sheet to read (default: the first).")

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        if Path(uploaded.name).suffix.lower() not in ALLOWED_EXTENSIONS:
            raise forms.ValidationError("Upload a .csv or .xlsx file.")
        if uploaded.size > settings.LEGACY_IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is too large for the admin page: use the "
                                        "import_legacy command.")
        return uploaded


class ConfirmForm(forms.Form):
    checksum = forms.RegexField(regex=_CHECKSUM)
    extension = forms.ChoiceField(choices=[(e, e) for e in ALLOWED_EXTENSIONS])
    file_name = forms.CharField(max_length=255)
    sheet = forms.CharField(required=False, max_length=100)


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    list_display = ("started", "file_name", "created_by", "status", "read_n", "imported_n", "skipped_n",
                    "failed_n", "members_n", "short_checksum")
    list_filter = ("status", "started_at")
    search_fields = ("file_name", "checksum", "created_by__email")
    list_select_related = ("created_by",)
    date_hierarchy = "started_at"
    change_list_template = "admin/legacy_import/importrun/change_list.html"
    fields = ("file_name", "sheet", "checksum", "created_by", "started_at", "finished_at", "status",
              "read", "imported", "skipped", "failed", "members_created", "errors_table",
              "warnings_table")
    readonly_fields = fields

    @admin.display(description="sha256")
    def short_checksum(self, obj):
        return display.short_hash(obj.checksum, head=8, tail=4) if obj.checksum else display.EMPTY

    started = column("started_at", display.when, "started")
    read_n = column("read", display.count, "read")
    imported_n = column("imported", display.count, "imported")
    skipped_n = column("skipped", display.count, "skipped")
    failed_n = column("failed", display.count, "failed")
    members_n = column("members_created", display.count, "new members")

    @staticmethod
    def _table(issues):
        if not issues:
            return "—"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((i.get("line") or "file", i.get("column") or "", i.get("reason"))
                                 for i in issues))
        return format_html("<table><thead><tr><th>line</th><th>column</th><th>reason</th></tr>"
                           "</thead><tbody>{}</tbody></table>", rows)

    @admin.display(description="errors")
    def errors_table(self, obj):
        return self._table(obj.errors)

    @admin.display(description="warnings")
    def warnings_table(self, obj):
        return self._table(obj.warnings)

    def get_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view),
                     name="legacy_import_importrun_upload")] + super().get_urls()

    def _may_import(self, request) -> bool:
        return request.user.is_superuser or request.user.has_perm("legacy_import.add_importrun")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_import": self._may_import(request)}
        return super().changelist_view(request, extra_context)

    def upload_view(self, request):
        if not self._may_import(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "Import a legacy file", "preview_rows": PREVIEW_ROWS}
        if request.method == "POST" and "confirm" in request.POST:
            return self._confirm(request, context)
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            uploaded = form.cleaned_data["file"]
            stored, checksum = store_upload(uploaded)
            sheet = form.cleaned_data["sheet"] or None
            run = legacy_file_import(path=stored, dry_run=True, sheet=sheet, user=request.user,
                                     file_name=Path(uploaded.name).name)
            confirm = ConfirmForm(initial={"checksum": checksum, "extension": stored.suffix,
                                           "file_name": run.file_name, "sheet": sheet or ""})
            context.update(run=run, plan=run.plan, confirm=confirm,
                           rows=run.plan.rows[:PREVIEW_ROWS] if run.plan else [],
                           can_import=bool(run.plan and run.plan.rows))
            return render(request, "admin/legacy_import/importrun/dry_run.html", context)
        context["form"] = form
        return render(request, "admin/legacy_import/importrun/upload.html", context)

    def _confirm(self, request, context):
        form = ConfirmForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The confirmation was not valid: upload the file again.")
            return redirect("admin:legacy_import_importrun_upload")
        data = form.cleaned_data
        stored = upload_dir() / f"{data['checksum']}{data['extension']}"
        if not stored.exists() or file_checksum(stored) != data["checksum"]:
            messages.error(request, "The uploaded file is gone or changed: upload it again.")
            return redirect("admin:legacy_import_importrun_upload")
        run = legacy_file_import(path=stored, sheet=data["sheet"] or None, user=request.user,
                                 file_name=data["file_name"])
        level = messages.SUCCESS if run.ok else messages.WARNING
        messages.add_message(request, level, f"Imported {run.imported}, skipped {run.skipped}, "
                                             f"failed {run.failed} of {run.read} rows.")
        return redirect(reverse("admin:legacy_import_importrun_change", args=[run.pk]))


@admin.register(LegacyRecord)
class LegacyRecordAdmin(ReadOnlyAdmin):
    list_display = ("legacy_id", "purchase_link", "run", "line", "created")
    search_fields = ("legacy_id", "purchase__user__email")
    list_select_related = ("purchase__user", "purchase__project", "run")
    raw_id_fields = ("purchase", "run")
    readonly_fields = ("legacy_id", "purchase", "run", "line", "created_at")

    @admin.display(description="purchase", ordering="purchase_id")
    def purchase_link(self, obj):
        from django.urls import reverse
        from django.utils.html import format_html

        url = reverse("admin:purchases_purchase_change", args=[obj.purchase_id])
        return format_html('<a href="{}">#{}</a> {}', url, obj.purchase_id, obj.purchase.user)

    created = column("created_at", display.when, "created")
