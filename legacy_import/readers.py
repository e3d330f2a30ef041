"""Reading a legacy export (CSV or XLSX) into raw rows.

Yields `(line, {column: value})` for every non-blank data row, where `line` is
the row's line number in the file (CSV: the physical line the record starts
on; XLSX: the sheet's row number), so errors point where an operator looks.
Cell values are left as they come (XLSX cells may already be numbers, dates);
the meaning is checked by `legacy_import.parsing`.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path

from django.core.exceptions import ValidationError

COLUMNS = ("legacy_id", "email", "sponsor_email", "first_name", "last_name", "project", "option",
           "quantity", "cost_per_share", "purchased_at")
REQUIRED = ("legacy_id", "email", "project", "quantity", "cost_per_share", "purchased_at")
CSV_EXTENSIONS = (".csv", ".txt")
XLSX_EXTENSIONS = (".xlsx", ".xlsm")


def file_checksum(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_header(name) -> str:
    """`" Legacy ID "` → `legacy_id`: trimmed, lower case, inner spaces as underscores."""
    text = "" if name is None else str(name)
    return "_".join(text.replace("\ufeff", "").strip().lower().split())


def _is_blank(values) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def _header_map(header: list, header_line: int) -> dict[str, int]:
    """Column name → index. Refuses duplicate and missing required columns."""
    index: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = normalize_header(raw)
        if not name:
            continue
        if name in index:
            raise ValidationError(f"Line {header_line}: the column {name!r} appears twice in the header.")
        index[name] = i
    missing = [c for c in REQUIRED if c not in index]
    if missing:
        raise ValidationError(f"Line {header_line}: required column(s) missing from the header: "
                              f"{', '.join(missing)}.")
    return index


def _rows(numbered: Iterator[tuple[int, list]]) -> Iterator[tuple[int, dict]]:
    index = None
    for line, values in numbered:
        if _is_blank(values):
            continue
        if index is None:
            index = _header_map(list(values), line)
            continue
        yield line, {name: (values[i] if i < len(values) else None) for name, i in index.items()}
    if index is None:
        raise ValidationError("The file has no header row.")


def _csv_lines(path: Path) -> Iterator[tuple[int, list]]:
    # utf-8-sig drops a BOM when there is one; newline="" lets csv handle CRLF and quoted newlines.
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        start = 1
        try:
            for values in reader:
                yield start, values
                start = reader.line_num + 1
        except UnicodeDecodeError as exc:
            raise ValidationError(f"Line {start}: the file is not UTF-8 text ({exc.reason}). "
                                  "Export it again as CSV UTF-8.") from None
        except csv.Error as exc:
            raise ValidationError(f"Line {start}: unreadable CSV ({exc}).") from None


def _xlsx_lines(path: Path, sheet: str | None) -> Iterator[tuple[int, list]]:
    import openpyxl

    # A file that is not a workbook fails in many ways inside openpyxl and the zip and XML
    # layers under it (BadZipFile, KeyError, ParseError, ValueError, zlib.error, EOFError…),
    # on opening or only while rows are read: every one of them is the file's fault.
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - see above; the reason is reported, not hidden
        raise ValidationError(f"Not a readable XLSX file: {_reason(exc)}.") from None
    line = 0
    try:
        if sheet:
            if sheet not in workbook.sheetnames:
                raise ValidationError(f"No sheet named {sheet!r}; the workbook has: "
                                      f"{', '.join(workbook.sheetnames)}.")
            worksheet = workbook[sheet]
        elif workbook.worksheets:
            worksheet = workbook.worksheets[0]
        else:
            raise ValidationError("The workbook has no worksheet.")
        # Exported files sometimes carry wrong dimensions; read every row that is there.
        worksheet.reset_dimensions()
        for line, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            yield line, list(values)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged sheet, as above
        raise ValidationError(f"Row {line + 1}: the sheet cannot be read ({_reason(exc)}).") from None
    finally:
        workbook.close()


def _reason(exc: Exception) -> str:
    detail = str(exc).strip().rstrip(".")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def read_rows(path: str | Path, *, sheet: str | None = None) -> Iterator[tuple[int, dict]]:
    """`(line, {column: raw value})` for each non-blank data row. Raises `ValidationError`
    for a file-level problem (unknown format, bad header, not UTF-8, unknown sheet)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in XLSX_EXTENSIONS:
        return _rows(_xlsx_lines(path, sheet))
    if suffix in CSV_EXTENSIONS:
        if sheet:
            raise ValidationError("--sheet applies to XLSX files only.")
        return _rows(_csv_lines(path))
    raise ValidationError(f"Unsupported file type {suffix or '(none)'!r}: use .csv or .xlsx.")
