"""Tables as Markdown, the Section that carries one, and the count of cells a table costs."""
from __future__ import annotations

from pathlib import Path

from ..types import Location, Section, Table
from .budget import Budget

# a cell longer than this is cut: one pasted essay in a cell must not make a row its own chunk
MAX_CELL_CHARS = 300


def cell_text(value) -> str:
    """A cell as one line of Markdown table text: whitespace folded, pipes escaped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2024.0 from a spreadsheet is the year 2024
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS].rstrip() + "..."


def blank(value) -> bool:
    """True for a cell that `cell_text` makes empty (None, '', whitespace)."""
    return value is None or (isinstance(value, str) and not value.strip())


class CellTally:
    """Charges a budget's `cells` for a table as its rows are read: rows kept x columns used, the
    size of the grid `table_section` will build. A cell is charged as it arrives, so one row of
    a million cells stops at the limit rather than after it is held; a column first used by a
    later row is charged for every row kept before it."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.used: set[int] = set()
        self.kept = 0
        self._row = 0  # non-blank cells of the row being read
        self._charged = 0

    def cell(self, column: int) -> None:
        """A non-blank cell of the row being read, in `column`."""
        self.used.add(column)
        self._row += 1
        self._charge()

    def end_row(self) -> bool:
        """Ends the row being read; True when it had a non-blank cell and so is kept."""
        kept = self._row > 0
        self.kept += kept
        self._row = 0
        self._charge()
        return kept

    def _charge(self) -> None:
        total = self.kept * len(self.used) + self._row
        if total > self._charged:
            self.budget.spend("cells", total - self._charged)
            self._charged = total


def markdown_rows(header: tuple[str, ...], rows) -> list[str]:
    """Header line, separator line, then one line per row (padded or cut to the header's width)."""
    width = len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * width]
    for row in rows:
        row = (tuple(row) + ("",) * width)[:width]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def table_section(rows: list[list], *, headings: tuple[str, ...] = (), location: Location | None = None,
                  first_row: int = 0, row_numbers: list[int] | None = None,
                  budget: Budget | None = None, counted: bool = False) -> Section | None:
    """A table Section from rows of cell values, the first row taken as the header. Empty rows and
    columns are dropped; a table of one row is a header with no body, kept as a one-row table.
    `first_row`: the sheet's number of the first row given, so chunks can cite row ranges (or
    `row_numbers`, one per row, for rows that are not consecutive).
    `budget`: charged rows x used columns before the grid is built (without one, the default
    limit applies), unless `counted`: the caller charged them as it read the rows (`CellTally`)."""
    cells = [[cell_text(v) for v in row] for row in rows]
    if row_numbers is not None:
        numbers = list(row_numbers)
    else:
        numbers = [first_row + i for i in range(len(cells))] if first_row else [0] * len(cells)
    kept = [(n, r) for n, r in zip(numbers, cells) if any(r)]
    if not kept:
        return None
    # the columns with any text, found in one pass over the cells (not columns x rows: one wide
    # row must not make every other row cost its width)
    used = sorted({j for _, r in kept for j, v in enumerate(r) if v})
    if not counted:
        (budget if budget is not None else Budget(Path("a table"))).spend("cells", len(kept) * len(used))
    grid = [(n, tuple(r[j] if j < len(r) else "" for j in used)) for n, r in kept]
    (_, header), body = grid[0], grid[1:]
    header = tuple(h or f"column {i + 1}" for i, h in enumerate(header))
    body_rows = tuple(r for _, r in body)
    numbered = bool(first_row) or row_numbers is not None
    table = Table(header=header, rows=body_rows, row_numbers=tuple(n for n, _ in body) if numbered else ())
    if location is not None and numbered and body:
        location = location.with_rows(body[0][0], body[-1][0])
    return Section("\n".join(markdown_rows(header, body_rows)), headings, location, table)
