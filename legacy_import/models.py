"""Import runs and the legacy-id → purchase mapping.

`LegacyRecord.legacy_id` is unique in the database: it is what makes a second
run of the same file import nothing, even when two runs race.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImportRun(models.Model):
    """One run of `import_legacy` (or of the admin upload). Dry runs are not stored."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Stopped by an error"

    file_name = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, db_index=True, help_text="sha256 of the file.")
    sheet = models.CharField(max_length=100, blank=True)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    read = models.PositiveIntegerField(default=0, help_text="Data rows read (blank lines not counted).")
    imported = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Rows whose legacy_id was already imported.")
    failed = models.PositiveIntegerField(default=0)
    members_created = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True,
                              help_text='[{"line": int, "column": str, "reason": str}, …]')
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "run"
        return f"Import {kind} #{self.pk or '-'} {self.file_name}"

    @property
    def ok(self) -> bool:
        """No failed row and no file-level error."""
        return self.failed == 0 and not self.errors


class LegacyRecord(models.Model):
    """A legacy row that became a purchase."""

    legacy_id = models.CharField(max_length=100, unique=True)
    purchase = models.OneToOneField("purchases.Purchase", on_delete=models.PROTECT,
                                    related_name="legacy_record")
    run = models.ForeignKey(ImportRun, on_delete=models.PROTECT, related_name="records")
    line = models.PositiveIntegerField(help_text="Line (row) of the file it came from.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.legacy_id
