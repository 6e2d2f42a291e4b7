"""Spreadsheets: Excel workbooks (.xlsx/.xlsm, through openpyxl) and CSV/TSV files (the csv module).

Each sheet becomes one table Section located by sheet name and row range; the chunker cuts it
into chunks of whole rows, each under the header row. Cells show their last computed values.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from pathlib import Path

from ..errors import DocumentError
from ..types import Location, Section
from .package import broken, open_package
from .tables import table_section

log = logging.getLogger(__name__)

# a sheet past this many rows is cut there, with a warning: a million-row export would be
# hundreds of thousands of chunks that no question needs
MAX_ROWS = 200_000


def _value(v):
    if isinstance(v, dt.datetime) and v.time() == dt.time(0):
        return v.date().isoformat()
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return v


def read_xlsx(path: Path, raw: bytes) -> tuple[str, tuple[Section, ...]]:
    open_package(path, raw, "xlsx").close()
    try:
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        try:
            title = (book.properties.title or "").strip() if book.properties else ""
            sections = []
            for sheet in book.worksheets:
                rows, first = [], 0
                for n, row in enumerate(sheet.iter_rows(values_only=True), 1):
                    if not rows and not any(v is not None and str(v).strip() for v in row):
                        continue  # leading blank rows: the header is the first row with content
                    if len(rows) >= MAX_ROWS:
                        log.warning("%s: sheet %s cut at %d rows", path, sheet.title, MAX_ROWS)
                        break
                    first = first or n
                    rows.append([_value(v) for v in row])
                section = table_section(rows, headings=(sheet.title,), location=Location(sheet=sheet.title),
                                        first_row=first) if rows else None
                if section is not None:
                    sections.append(section)
        finally:
            book.close()
    except DocumentError:
        raise
    except Exception as e:  # openpyxl raises many kinds of errors on damaged parts
        raise broken(path, "xlsx", e) from None
    return title, tuple(sections)


def read_csv(path: Path, raw: bytes) -> tuple[str, tuple[Section, ...]]:
    from ..ingest import decode

    text = decode(raw, path)
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:  # European spreadsheets write ';' since ',' is their decimal mark
            delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if len(rows) >= MAX_ROWS:
                log.warning("%s: cut at %d rows", path, MAX_ROWS)
                break
            rows.append(row)
    except csv.Error as e:
        raise DocumentError(f"{path}: broken CSV ({e})") from None
    # the first non-empty line is row 1 of most CSV files; blank lines are dropped by table_section
    section = table_section(rows, location=Location(), first_row=1) if rows else None
    return "", (section,) if section is not None else ()
