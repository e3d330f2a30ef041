"""CSV and XLSX exports of an admin list: the rows the list shows (its filters, search, date
hierarchy and ordering; every page), streamed.

A ModelAdmin gets an ``export/`` URL and two links on its list page by adding ``ExportMixin``
first in its bases and declaring its columns::

    class PurchaseAdmin(ExportMixin, ReadOnlyAdmin):
        export_fields = [("ID", "id"), ("Member", "user__email"), ("Price", "price", MONEY), ...]

A column is ``(header, path_or_callable)`` or ``(header, path_or_callable, kind)``: a path is a
field lookup (``user__email``); a callable takes the object. ``kind`` says how a value is written:
``MONEY`` (a plain decimal with 2 places, no thousands separator) or ``DECIMAL`` (the stored
decimal, no exponent; the default for decimals). Dates and times are ISO 8601 in UTC. Text that a
spreadsheet would run as a formula (starting with = + - @, a tab or a CR) gets a leading '.

CSV is a ``StreamingHttpResponse`` over ``.iterator(chunk_size=2000)``: constant memory for any
number of rows. XLSX is written by openpyxl's write-only workbook (rows go to disk as they come)
into a temporary file that is then sent (``FileResponse``).
"""

from __future__ import annotations

import csv
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

logger = logging.getLogger(__name__)

MONEY = "money"
DECIMAL = "decimal"
CENT = Decimal("0.01")
CHUNK_SIZE = 2000
FORMATS = ("csv", "xlsx")
FORMAT_PARAM = "format"
XLSX_MAX_ROWS = 1_048_576 - 2  # Excel's row limit, less the header and the truncation note
XLSX_SPOOL_BYTES = 8 * 1024 * 1024
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEMPLATE = "admin/export_change_list.html"


# --- values: pure ---------------------------------------------------------------------------

def safe_text(text: str) -> str:
    """Text a spreadsheet will show, never run as a formula (CSV/formula injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if timezone.is_aware(value) else value


def _decimal(value: Decimal, kind: str | None) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN) if kind == MONEY else value


def csv_value(value, kind: str | None = None) -> str:
    """One CSV cell: machine-readable numbers and dates, safe text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = f"{_decimal(value, kind):f}"
        return "0.00" if text == "-0.00" else text
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return safe_text(str(value))


def xlsx_value(value, kind: str | None, sheet):
    """One XLSX cell: numbers as numbers (money shown with 2 places), times as UTC date-times,
    text without the characters XML forbids and never a formula."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        cell = WriteOnlyCell(sheet, value=_decimal(value, kind))
        if kind == MONEY:
            cell.number_format = "0.00"
        return cell
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, value=_utc(value).replace(tzinfo=None))
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    return safe_text(ILLEGAL_CHARACTERS_RE.sub("", str(value)))


# --- rows -----------------------------------------------------------------------------------

class Column:
    def __init__(self, spec: tuple):
        if len(spec) not in (2, 3):
            raise ValueError(f"An export column is (header, path or callable[, kind]), not {spec!r}.")
        self.header, self.source = spec[0], spec[1]
        self.kind = spec[2] if len(spec) == 3 else None
        self.is_path = isinstance(self.source, str)

    def value(self, obj):
        if not self.is_path:
            return self.source(obj)
        for part in self.source.split("__"):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj


def export_rows(queryset, columns: list[Column]) -> Iterator[list]:
    """The raw values of each row, read in chunks: ``values_list`` when every column is a field
    path; model objects (with their relations joined) when a column is a callable."""
    if all(c.is_path for c in columns):
        yield from (list(row) for row in
                    queryset.values_list(*(c.source for c in columns)).iterator(chunk_size=CHUNK_SIZE))
        return
    relations = {c.source.rsplit("__", 1)[0] for c in columns if c.is_path and "__" in c.source}
    if relations:
        queryset = queryset.select_related(*relations)
    for obj in queryset.iterator(chunk_size=CHUNK_SIZE):
        yield [c.value(obj) for c in columns]


class _Echo:
    """A write-only file for csv.writer: returns the line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(columns: list[Column], rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([safe_text(c.header) for c in columns])
    for row in rows:
        yield writer.writerow([csv_value(v, c.kind) for v, c in zip(row, columns, strict=True)])


def xlsx_file(columns: list[Column], rows: Iterable[list], *, title: str):
    """The workbook in a temporary file (rewound); rows beyond Excel's limit end in a note."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=re.sub(r"[\\/*?:\[\]]", " ", title)[:31] or "export")
    sheet.append([c.header for c in columns])
    for count, row in enumerate(rows, start=1):
        if count > XLSX_MAX_ROWS:
            sheet.append([f"Truncated at {XLSX_MAX_ROWS:,} rows (Excel's limit): export CSV for every row."])
            break
        sheet.append([xlsx_value(v, c.kind, sheet) for v, c in zip(row, columns, strict=True)])
    out = tempfile.SpooledTemporaryFile(max_size=XLSX_SPOOL_BYTES)  # noqa: SIM115 - FileResponse closes it
    workbook.save(out)
    out.seek(0)
    return out


# --- the admin ------------------------------------------------------------------------------

@cache
def _without_results(changelist_class):
    """The admin's ChangeList class minus its counts and page query: an export reads only
    ``queryset`` (the list's filters, search, date hierarchy and ordering)."""
    return type(f"Export{changelist_class.__name__}", (changelist_class,), {"get_results": lambda self, request: None})


class ExportMixin:
    """Adds ``export/?format=csv|xlsx&<the list's query string>`` and the links to a ModelAdmin.
    Staff with the view (or change) permission only."""

    export_fields: list[tuple] = []

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_export"
        return [path("export/", self.admin_site.admin_view(self.export_view), name=name),
                *super().get_urls()]

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        return _without_results(changelist) if getattr(request, "_exporting", False) else changelist

    def export_columns(self, request) -> list[Column]:
        return [Column(spec) for spec in self.export_fields]

    def export_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        fmt = request.GET.get(FORMAT_PARAM, "csv")
        if fmt not in FORMATS:
            return HttpResponseBadRequest(f"Unknown export format {fmt!r}: csv or xlsx.", content_type="text/plain")
        request.GET = request.GET.copy()  # the rest of the query string is the list's own
        request.GET.pop(FORMAT_PARAM, None)
        request._exporting = True
        try:
            queryset = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("The list's filters are not valid: open the list again and re-apply them.",
                                          content_type="text/plain")
        columns = self.export_columns(request)
        name = f"{self.opts.model_name}-{timezone.now():%Y%m%d-%H%M%S}"
        logger.info("%s exported %s (%s, %s)", request.user, self.opts.label, fmt, request.GET.urlencode())
        if fmt == "csv":
            response = StreamingHttpResponse(csv_lines(columns, export_rows(queryset, columns)),
                                             content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            return response
        out = xlsx_file(columns, export_rows(queryset, columns), title=str(self.opts.verbose_name_plural))
        return FileResponse(out, as_attachment=True, filename=f"{name}.xlsx",
                            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def changelist_view(self, request, extra_context=None):
        """The list page as before, its template wrapped by one that adds the export links."""
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and not response.is_rendered \
                and "cl" in (response.context_data or {}):  # the list itself, not an action's page
            names = response.template_name
            response.context_data["export_parent_template"] = select_template(
                [names] if isinstance(names, str) else names)
            response.context_data["export_url"] = reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_export")
            response.context_data["export_query"] = _query_without_page(request)
            response.template_name = TEMPLATE
        return response


def _query_without_page(request) -> str:
    query = request.GET.copy()
    for key in ("p", "e", FORMAT_PARAM):
        query.pop(key, None)
    return query.urlencode()
