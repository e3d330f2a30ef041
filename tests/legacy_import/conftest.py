"""Shared fixtures: the sample's projects, a dirty file, and a CSV → XLSX converter."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from purchases.models import Option, Project

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "legacy_sample.csv"
if not SAMPLE.exists():  # the checkout may live elsewhere; the brief's location
    SAMPLE = Path("/work/shared/data/legacy_sample.csv")

HEADER = (" Legacy_ID , EMAIL ,sponsor_email,first_name,last_name, Project ,option,quantity,"
          "cost_per_share,purchased_at")

# line → the row; None is a blank line. Comments: what the row is for.
DIRTY_ROWS = [
    'D-1,anna@example.com,,Anna,Apple,JETUP,,"1,000", 0.05 ,2024-01-10',        # 2 good
    None,                                                                         # 3 blank
    "D-2,ben@example.com,anna@example.com,Ben,Bold,NOPE,,100,0.05,2024-01-11",   # 4 unknown project
    "D-3,ben@example.com,anna@example.com,Ben,Bold,JETUP,,-5,0.05,2024-01-11",   # 5 negative quantity
    "D-4,ben@example.com,anna@example.com,Ben,Bold,JETUP,,100,0.05,2999-01-01",  # 6 future date
    "D-5,ben@example.com,anna@example.com,Ben,Bold,JETUP,,abc,0.05,2024-01-12",  # 7 bad number
    'D-6,carl@example.com,anna@example.com,Carl,Cole,aquix,,"2,500"," 1,000.50 ",2024-02-01',  # 8 good
    "D-7,dora@example.com,,Dora,Dale,JETUP,,10,0.05,2024-02-02",                 # 9 duplicate id
    "D-7,dora@example.com,,Dora,Dale,JETUP,,10,0.05,2024-02-02",                 # 10 duplicate id
    "D-8,fay@example.com,ghost@example.com,Fay,Fox,JETUP,,10,0.05,2024-02-03",   # 11 unknown sponsor
    "D-9,,,,,JETUP,,10,0.05,2024-02-04",                                         # 12 missing email
    "D-10,ben@example.com,anna@example.com,Ben,Bold,JETUP,,200,0.05,2024-01-05T08:00:00+02:00",  # 13 good
    "D-11,eve@example.com,ben@example.com,Eve,East,JETUP,Big,10,0.05,2024-03-01",  # 14 good, named option
    "D-12,eve@example.com,ben@example.com,Eve,East,JETUP,Nope,10,0.05,2024-03-02",  # 15 unknown option
    "D-13,eve@example.com,ben@example.com,Eve,East,JETUP,,10,0.123456789,2024-03-03",  # 16 > 8 places
    None,                                                                         # 17 blank
]
DIRTY_GOOD = {"D-1", "D-6", "D-10", "D-11"}
DIRTY_BAD = {(4, "project"), (5, "quantity"), (6, "purchased_at"), (7, "quantity"),
             (9, "legacy_id"), (10, "legacy_id"), (11, "sponsor_email"), (12, "email"),
             (15, "option"), (16, "cost_per_share")}


@pytest.fixture
def catalogue(db):
    """JETUP (0.05/share; cheapest active option "Starter") and AQUIX (0.03/share)."""
    jetup = Project.objects.create(name="JETUP")
    aquix = Project.objects.create(name="AQUIX")
    options = {
        "jetup": Option.objects.create(project=jetup, name="Starter", pack_shares=1000,
                                       pack_price=Decimal("50")),
        "jetup_big": Option.objects.create(project=jetup, name="Big", pack_shares=10000,
                                           pack_price=Decimal("500")),
        "jetup_retired": Option.objects.create(project=jetup, name="Old", pack_shares=1000,
                                               pack_price=Decimal("10"), is_active=False),
        "aquix": Option.objects.create(project=aquix, name="Starter", pack_shares=1000,
                                       pack_price=Decimal("30")),
    }
    return options


def dirty_text() -> str:
    lines = [HEADER] + ["" if row is None else row for row in DIRTY_ROWS]
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def dirty_csv(tmp_path) -> Path:
    path = tmp_path / "dirty.csv"
    path.write_bytes(b"\xef\xbb\xbf" + dirty_text().encode("utf-8"))  # BOM + CRLF
    return path


def _typed(value: str):
    """What a spreadsheet would hold: numbers as numbers, dates as dates, the rest as text."""
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        if "." in text and "," not in text:
            return float(text)  # an XLSX float, on purpose
    except ValueError:
        pass
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
    except ValueError:
        pass
    return value or None


def csv_to_xlsx(text: str, path: Path, *, sheet: str = "Purchases", typed: bool = True,
                extra_first_sheet: bool = False) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    if extra_first_sheet:
        workbook.active.title = "Notes"
        workbook.active.append(["nothing to see"])
        worksheet = workbook.create_sheet(sheet)
    else:
        worksheet = workbook.active
        worksheet.title = sheet
    for index, values in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), start=1):
        if not values:
            continue  # left empty: a blank row in the sheet
        cells = values if index == 1 or not typed else [_typed(v) for v in values]
        for column, value in enumerate(cells, start=1):
            worksheet.cell(row=index, column=column, value=value)
    workbook.save(path)
    return path
