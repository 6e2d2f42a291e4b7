"""Spreadsheets: Excel workbooks (.xlsx/.xlsm, through openpyxl) and CSV/TSV files (the csv module).

Each sheet becomes one table Section located by sheet name and row range; the chunker cuts it
into chunks of whole rows, each under the header row. Cells show their last computed values.

A sheet is read cell by cell, holding only the cells that have text: openpyxl's own row iterator
pads every row to the sheet's declared `<dimension>` (or, with `reset_dimensions()`, to the row's
last cell), so a 5 KB file declaring A1:XFD200000 would build 16,384 cells per row, and one row
of a million `<c>` elements is parsed whole before it is yielded. Cells are charged to the
document's budget (`cells`: rows kept x columns used) as they arrive.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from pathlib import Path

from ..errors import DocumentError
from ..types import Location, Section
from .budget import Budget
from .encoding import decode
from .package import broken, open_package
from .tables import CellTally, blank, table_section

log = logging.getLogger(__name__)

# a sheet past this many rows is cut there, with a warning: a million-row export would be
# hundreds of thousands of chunks that no question needs
MAX_ROWS = 200_000
# the clock is asked once per this many XML elements of a sheet
_CLOCK_EVERY = 4096


def _value(v):
    if isinstance(v, dt.datetime) and v.time() == dt.time(0):
        return v.date().isoformat()
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return v


def read_xlsx(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    open_package(path, raw, "xlsx", budget=budget).close()
    try:
        from openpyxl.reader.excel import ExcelReader
        from openpyxl.styles.stylesheet import apply_stylesheet

        # openpyxl's own reading up to the worksheets (`ExcelReader.read()` without its last steps):
        # load_workbook(read_only=True) makes a ReadOnlyWorksheet per sheet, and each one parses
        # its sheet to the end when the sheet has no <dimension>, keeping an element per row and
        # the cells of the longest row (a 12 KB file of 2 million empty cells: +175 MB, 7 s)
        reader = ExcelReader(io.BytesIO(raw), read_only=True, data_only=True, keep_links=False)
        try:
            reader.read_manifest()
            reader.read_strings()
            reader.read_workbook()
            reader.read_properties()
            apply_stylesheet(reader.archive, reader.wb)  # the number formats that mark dates
            book = reader.wb
            title = (book.properties.title or "").strip() if book.properties else ""
            sections = []
            for info, rel in reader.parser.find_sheets():
                budget.check_time()
                if "chartsheet" in rel.Type or rel.target not in reader.valid_files:
                    continue  # a chart has no cells; a sheet whose part is missing has none either
                with reader.archive.open(rel.target) as src:
                    numbers, rows = _sheet_rows(path, info.name, src, reader.shared_strings, book, budget)
                section = table_section(rows, headings=(info.name,), location=Location(sheet=info.name),
                                        row_numbers=numbers, counted=True) if rows else None
                if section is not None:
                    sections.append(section)
        finally:
            reader.archive.close()
    except DocumentError:
        raise
    except Exception as e:  # openpyxl raises many kinds of errors on damaged parts
        raise broken(path, "xlsx", e) from None
    return title, tuple(sections)


def _sheet_rows(path: Path, name: str, src, shared_strings, book, budget: Budget) -> tuple[list[int], list[list]]:
    """The sheet's row numbers and rows (values over the columns used), from its first row with
    text; rows without text are left out. The XML is streamed: each element is dropped from the
    tree once it ends, except a cell's children until the cell is read."""
    # openpyxl has no public per-cell reader; this is what ReadOnlyWorksheet._cells_by_row does
    # (same parser, same shared strings and date styles) without its padding
    from openpyxl.worksheet._reader import WorkSheetParser
    from openpyxl.xml.constants import SHEET_MAIN_NS
    from openpyxl.xml.functions import iterparse

    cell_tag, row_tag = f"{{{SHEET_MAIN_NS}}}c", f"{{{SHEET_MAIN_NS}}}row"
    tally = CellTally(budget)
    kept: list[tuple[int, dict[int, object]]] = []
    row: dict[int, object] = {}
    stack: list = []  # open elements; a cell's children stay until the cell ends
    in_cell = 0
    parser = WorkSheetParser(src, shared_strings, data_only=True, epoch=book.epoch,
                             date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)
    for n, (event, element) in enumerate(iterparse(src, events=("start", "end"))):
        if n % _CLOCK_EVERY == 0:
            budget.check_time()
        if event == "start":
            stack.append(element)
            if element.tag == cell_tag:
                in_cell += 1
            elif element.tag == row_tag and not in_cell:
                parser.row_counter = _row_number(element.get("r"), parser.row_counter)
                parser.col_counter = 0
            continue
        stack.pop()
        if element.tag == cell_tag:
            in_cell -= 1
            cell = parser.parse_cell(element)
            value = cell["value"]
            if not blank(value) and cell["column"] not in row:
                tally.cell(cell["column"])
                row[cell["column"]] = _value(value)
        elif element.tag == row_tag and not in_cell:
            if tally.end_row():
                if len(kept) >= MAX_ROWS:
                    log.warning("%s: sheet %s cut at %d rows", path, name, MAX_ROWS)
                    break
                kept.append((parser.row_counter, row))
                row = {}
        if in_cell:
            continue  # the cell being read still needs this child
        if stack:
            del stack[-1][-1]  # an ended element is its parent's last child: drop it
    if not kept:
        return [], []
    columns = sorted(tally.used)
    return [n for n, _ in kept], [[r.get(j) for j in columns] for _, r in kept]


def _row_number(r: str | None, previous: int) -> int:
    """A `<row r="...">` number as openpyxl reads it: the attribute, or one past the last row."""
    if r is None:
        return previous + 1
    try:
        return int(r)
    except ValueError:
        number = float(r)
        if not number.is_integer():
            raise ValueError(f"{r} is not a valid row number") from None
        return int(number)


def read_csv(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    text = decode(raw, path)
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:  # European spreadsheets write ';' since ',' is their decimal mark
            delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    tally = CellTally(budget)
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            for j, v in enumerate(row):
                if not blank(v):
                    tally.cell(j)
            tally.end_row()  # blank lines are kept here (row numbers count them), not charged
            if len(rows) >= MAX_ROWS:
                log.warning("%s: cut at %d rows", path, MAX_ROWS)
                break
            rows.append(row)
    except csv.Error as e:
        raise DocumentError(f"{path}: broken CSV ({e})") from None
    # the first non-empty line is row 1 of most CSV files; blank lines are dropped by table_section
    section = table_section(rows, location=Location(), first_row=1, counted=True) if rows else None
    return "", (section,) if section is not None else ()
