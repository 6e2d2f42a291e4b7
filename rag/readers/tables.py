"""Tables as Markdown, and the Section that carries one."""
from __future__ import annotations

from ..types import Location, Section, Table

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


def markdown_rows(header: tuple[str, ...], rows) -> list[str]:
    """Header line, separator line, then one line per row (padded or cut to the header's width)."""
    width = len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * width]
    for row in rows:
        row = (tuple(row) + ("",) * width)[:width]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def table_section(rows: list[list], *, headings: tuple[str, ...] = (), location: Location | None = None,
                  first_row: int = 0) -> Section | None:
    """A table Section from rows of cell values, the first row taken as the header. Empty rows and
    columns are dropped; a table of one row is a header with no body, kept as a one-row table.
    `first_row`: the sheet's number of the first row given, so chunks can cite row ranges."""
    cells = [[cell_text(v) for v in row] for row in rows]
    numbers = [first_row + i for i in range(len(cells))] if first_row else [0] * len(cells)
    kept = [(n, r) for n, r in zip(numbers, cells) if any(r)]
    if not kept:
        return None
    width = max(len(r) for _, r in kept)
    used = [j for j in range(width) if any(j < len(r) and r[j] for _, r in kept)]
    grid = [(n, tuple(r[j] if j < len(r) else "" for j in used)) for n, r in kept]
    (_, header), body = grid[0], grid[1:]
    header = tuple(h or f"column {i + 1}" for i, h in enumerate(header))
    body_rows = tuple(r for _, r in body)
    table = Table(header=header, rows=body_rows, row_numbers=tuple(n for n, _ in body) if first_row else ())
    if location is not None and first_row and body:
        location = location.with_rows(body[0][0], body[-1][0])
    return Section("\n".join(markdown_rows(header, body_rows)), headings, location, table)
