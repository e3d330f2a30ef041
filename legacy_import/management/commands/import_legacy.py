"""`python manage.py import_legacy PATH [--dry-run] [--sheet NAME] [--user EMAIL]`."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from legacy_import.models import ImportRun
from legacy_import.services import legacy_file_import


def report_lines(run, *, limit: int | None = None) -> list[str]:
    """The human summary of a run (shared by the command and the benchmark)."""
    verb = ("would import", "would skip") if run.dry_run else ("imported", "skipped")
    lines = []
    for issue in run.errors[:limit]:
        where = f"line {issue['line']}" if issue["line"] else "file"
        column = f", column {issue['column']}" if issue["column"] else ""
        lines.append(f"ERROR {where}{column}: {issue['reason']}")
    for issue in run.warnings[:limit]:
        column = f", column {issue['column']}" if issue["column"] else ""
        lines.append(f"WARNING line {issue['line']}{column}: {issue['reason']}")
    members = "new members" if run.dry_run else "members created"
    lines.append(f"{'DRY RUN (nothing written): ' if run.dry_run else ''}{run.file_name} "
                 f"sha256 {run.checksum[:12]}…: read {run.read}, {verb[0]} {run.imported}, "
                 f"{verb[1]} {run.skipped}, failed {run.failed}; {members} {run.members_created}"
                 + (f"; run #{run.pk}" if run.pk else ""))
    return lines


class Command(BaseCommand):
    help = ("Import historical purchases from the legacy spreadsheet export (CSV or XLSX). "
            "Exit status 1 when any row failed or the file was refused.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .csv (UTF-8, BOM and CRLF accepted) or .xlsx file")
        parser.add_argument("--dry-run", action="store_true",
                            help="validate and report what would happen; write nothing")
        parser.add_argument("--sheet", default=None, help="XLSX sheet name (default: the first)")
        parser.add_argument("--user", default=None, help="e-mail of the operator recorded on the run")

    def handle(self, *args, path, dry_run, sheet, user, **options):
        operator = None
        if user:
            operator = User.objects.filter(email__iexact=user.strip()).first()
            if operator is None:
                raise CommandError(f"No member with e-mail {user!r}.")

        def progress(total):
            from tqdm import tqdm

            # A bar on a terminal only: quiet in cron jobs, pipes and CI logs.
            return tqdm(total=total, unit="row", desc="importing", file=sys.stderr,
                        disable=not sys.stderr.isatty())

        run = legacy_file_import(path=path, dry_run=dry_run, sheet=sheet, user=operator,
                                 progress=progress)
        if run.status == ImportRun.Status.FAILED:
            # The file itself was refused (unreadable, not a workbook, no header…): one line.
            reason = " ".join("; ".join(e["reason"] for e in run.errors if e["line"] is None).split())
            raise CommandError(f"{path}: {reason or 'the file was refused'}"
                               + (f" (run #{run.pk} recorded as failed)" if run.pk else ""),
                               returncode=1)
        lines = report_lines(run)
        for line in lines[:-1]:
            self.stderr.write(line)
        style = self.style.SUCCESS if run.ok else self.style.ERROR
        self.stdout.write(style(lines[-1]))
        if not run.ok:
            raise CommandError(f"{run.failed} row(s) failed", returncode=1)
