"""Where the text of a PDF page sits, and what follows from it for reading the page: which
pages hold ruled tables, in what order to read columns, which lines run at the top or bottom of
every page. Plain geometry over boxes of text; `pdf` reads the pages with it.

Named heuristics, each with its switch or constants below:

- ruled tables (`TABLE_MIN_RULES`): a page that paints a grid of rules is worth pdfplumber's
  table finder (`PageSketch.ruled`);
- columns (`COLUMNS`, `COLUMN_*`): lines that leave a clear vertical gutter between two blocks
  of prose are read column by column, left column first (`find_gutter`, `reading_lines`). pypdf's
  stream order already is that order on most multi-column pages; a page whose stream goes back
  and forth across the gutter is read again from word positions (`PageSketch.interleaved`);
- running lines (`RUNNING_*`): a line that comes back at the top or the bottom edge of most
  pages of a stretch (a page header or footer, its page number changing) is kept on the first
  page it appears on and dropped from the others (`drop_running_lines`).

`PageSketch` is what pypdf's text pass shows of a page at almost no cost: where each piece of
text starts and about how far it reaches, the rules painted, what the page would cost to lay
out. Coordinates here are pdfplumber's: x to the right, y (top, bottom) downwards.
"""
from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from typing import NamedTuple


# -- tables: a page is worth the table finder when it paints at least this many horizontal and
# vertical rules (a rectangle's sides count; a box around a code example is 2 and 2, a table of
# one header row and one body row 3 and 2)
TABLE_MIN_RULES = (3, 2)
RULE_MIN_LENGTH = 8.0  # points: shorter strokes are glyph parts or underlines, not rules
RULE_MAX_THICKNESS = 2.0  # a filled rectangle thinner than this is drawn as a rule (Word does)

# -- columns: switched off, every page is read in rows from top to bottom, left to right
COLUMNS = True
COLUMN_MIN_GUTTER = 12.0  # points: the empty band between two columns is at least this wide
COLUMN_MIN_LINES = 4  # each column has at least this many lines
# each column's median line is at least this share of the column's width: prose, not a list of
# short terms or a table's column standing apart
COLUMN_MIN_FILL = 0.5
COLUMN_MAX_SPANNING = 0.5  # at most this share of the rows cross the gutter (titles, captions)
COLUMN_SEARCH = 0.2  # the gutter lies inside the middle (1 - 2 x this) of the text's width
COLUMN_MAX_DEPTH = 3  # a column split again (three columns and more)
# a page's stream that crosses its gutter more often than this is not drawn column by column:
# pypdf's order would interleave the columns' lines, so pdfplumber reads it
COLUMN_STREAM_SWITCHES = 6
GLYPH_WIDTH = 0.45  # an average glyph's width in ems, for the sketch's text widths (no metrics)

# -- running headers and footers: switched off, every line is kept
RUNNING_LINES = True
RUNNING_EDGE_LINES = 2  # lines looked at from the top and from the bottom of each page
RUNNING_MIN_PAGES = 3  # a line comes back on at least this many pages
# ... and on at least this share of the pages from its first to its last: a chapter's running
# head counts over the chapter, a book's alternating heads (odd and even pages) count too
RUNNING_MIN_SHARE = 0.5
RUNNING_MIN_LETTERS = 3  # letters a running line has, unless it is a bare page number

_MAX_BOXES = 20_000  # pieces of text looked at on a page (a dense page has a few hundred)


class Box(NamedTuple):
    """A word or piece of text and the rectangle it covers."""

    x0: float
    top: float
    x1: float
    bottom: float
    text: str


# ------------------------------------------------------------------ rows and columns


def rows(boxes: list[Box]) -> list[list[Box]]:
    """Boxes grouped in rows, top to bottom, each row left to right: a box joins the row whose
    first box's height band holds the box's middle."""
    out: list[list[Box]] = []
    band = (0.0, -1.0)
    for box in sorted(boxes, key=lambda b: (b.top, b.x0)):
        middle = (box.top + box.bottom) / 2
        if out and band[0] <= middle <= band[1]:
            out[-1].append(box)
        else:
            out.append([box])
            band = (box.top, box.bottom)
    return [sorted(row, key=lambda b: b.x0) for row in out]


def row_text(row: list[Box]) -> str:
    return " ".join(b.text for b in row)


def find_gutter(boxes: list[Box]) -> tuple[float, float] | None:
    """The empty vertical band (x0, x1) between two columns of text, or None: the widest band,
    in the middle of the text's width, that the fewest rows cross, when it is wide enough, most
    rows leave it empty and both sides hold lines of prose (`COLUMN_*`)."""
    if not 2 * COLUMN_MIN_LINES <= len(boxes) <= _MAX_BOXES:
        return None
    import numpy as np

    left, right = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    lo, hi = left + COLUMN_SEARCH * (right - left), right - COLUMN_SEARCH * (right - left)
    if hi - lo < COLUMN_MIN_GUTTER:
        return None
    step = max(1.0, (hi - lo) / 2000)  # points per bin: a point each on any real page
    grid = rows(boxes)
    cover = np.zeros((len(grid), int((hi - lo) / step) + 1), dtype=bool)  # row r covers bin i
    for r, row in enumerate(grid):
        for b in row:
            a = max(0, math.floor((b.x0 - lo) / step))
            z = min(cover.shape[1], math.ceil((b.x1 - lo) / step) + 1)
            if a < z:
                cover[r, a:z] = True
    crossed = cover.sum(axis=0)
    fewest = int(crossed.min())
    start, width = _widest_run(crossed <= fewest)
    if width * step < COLUMN_MIN_GUTTER or fewest > COLUMN_MAX_SPANNING * len(grid):
        return None
    gutter = (lo + start * step, lo + (start + width - 1) * step)
    if not (_prose(grid, gutter, left=True) and _prose(grid, gutter, left=False)):
        return None
    return gutter


def _widest_run(flags) -> tuple[int, int]:
    """(start, length) of the longest run of True in `flags`."""
    best, run_start = (0, 0), None
    for i, flag in enumerate([*flags, False]):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            if i - run_start > best[1]:
                best = (run_start, i - run_start)
            run_start = None
    return best


def _crosses(row: list[Box], gutter: tuple[float, float]) -> bool:
    return any(b.x0 < gutter[1] and b.x1 > gutter[0] for b in row)


def _prose(grid: list[list[Box]], gutter: tuple[float, float], *, left: bool) -> bool:
    """Whether one side of the gutter holds enough lines that mostly fill that side's width."""
    pieces = [[b for b in row if (b.x1 <= gutter[0]) == left] for row in grid if not _crosses(row, gutter)]
    pieces = [p for p in pieces if p]
    if len(pieces) < COLUMN_MIN_LINES:
        return False
    edge = min(b.x0 for p in pieces for b in p) if left else max(b.x1 for p in pieces for b in p)
    side = gutter[0] - edge if left else edge - gutter[1]
    widths = [p[-1].x1 - p[0].x0 for p in pieces]
    return side > 0 and statistics.median(widths) >= COLUMN_MIN_FILL * side


def reading_lines(boxes: list[Box], *, depth: int = 0) -> list[str]:
    """The lines of `boxes` in reading order: rows top to bottom, and where a gutter splits them
    (`find_gutter`), each run of rows that leaves it empty read column by column, left column
    first; a row across the gutter (a title, a wide caption) is read in its place."""
    gutter = find_gutter(boxes) if COLUMNS and depth < COLUMN_MAX_DEPTH else None
    if gutter is None:
        return [row_text(row) for row in rows(boxes)]
    out: list[str] = []
    block: list[Box] = []

    def columns() -> None:
        middle = (gutter[0] + gutter[1]) / 2
        out.extend(reading_lines([b for b in block if b.x1 <= middle], depth=depth + 1))
        out.extend(reading_lines([b for b in block if b.x1 > middle], depth=depth + 1))
        block.clear()

    for row in rows(boxes):
        if _crosses(row, gutter):
            columns()
            out.append(row_text(row))
        else:
            block.extend(row)
    columns()
    return out


# ------------------------------------------------------------------ the sketch from pypdf's pass

_SHOW = {b"Tj", b"TJ", b"'", b'"'}
_PAINT = {b"S", b"s", b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*"}
_MAX_PATH = 10_000  # segments kept for one path; a path longer than that is no table's rules


class PageSketch:
    """What pypdf's text pass shows of a page's layout, through its visitor callbacks: where each
    piece of text starts and, from its length, about how far it reaches; the horizontal and
    vertical rules painted; the operators run and the bytes of text shown. Costs ~6% over
    pypdf's text extraction. Pass `text` as `visitor_text` and `operator` as
    `visitor_operand_before` to `PageObject.extract_text`."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []  # in stream order
        self.rules = [0, 0]  # horizontal, vertical
        self.operators = 0
        self.shown = 0
        self.forms = 0  # form XObjects drawn
        self._path: list[tuple[float, float, float, float]] = []
        self._point: tuple[float, float] | None = None

    def text(self, text, cm, tm, font, size) -> None:
        text = " ".join(str(text).split())
        try:
            x, y = _apply(cm, tm[4], tm[5])
            scale = math.hypot(tm[0] * cm[0] + tm[1] * cm[2], tm[0] * cm[1] + tm[1] * cm[3])
            height = float(size) * scale
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if not text or not all(map(math.isfinite, (x, y, height))) or height <= 0:
            return
        if len(self.boxes) < _MAX_BOXES:
            self.boxes.append(Box(x, -y - height, x + len(text) * height * GLYPH_WIDTH, -y, text))

    def operator(self, op, operands, cm, tm) -> None:
        self.operators += 1
        try:
            if op in _SHOW:
                self.shown += _string_bytes(operands[-1]) if operands else 0
            elif op == b"Do":
                self.forms += 1
            elif op == b"m" and len(operands) >= 2:
                self._point = _apply(cm, float(operands[0]), float(operands[1]))
            elif op == b"l" and len(operands) >= 2 and self._point is not None:
                end = _apply(cm, float(operands[0]), float(operands[1]))
                self._segment(*self._point, *end)
                self._point = end
            elif op == b"re" and len(operands) >= 4:
                self._rectangle(cm, *(float(v) for v in operands[:4]))
            elif op in _PAINT:
                self._paint()
            elif op == b"n":  # a clipping path ends without being painted
                self._path.clear()
        except (TypeError, ValueError, OverflowError):
            self._point = None

    def _rectangle(self, cm, x, y, w, h) -> None:
        (x0, y0), (x1, y1) = _apply(cm, x, y), _apply(cm, x + w, y + h)
        if abs(y1 - y0) <= RULE_MAX_THICKNESS:  # a thin bar is a rule (Word draws them so)
            self._segment(x0, (y0 + y1) / 2, x1, (y0 + y1) / 2)
        elif abs(x1 - x0) <= RULE_MAX_THICKNESS:
            self._segment((x0 + x1) / 2, y0, (x0 + x1) / 2, y1)
        else:
            for side in ((x0, y0, x1, y0), (x0, y1, x1, y1), (x0, y0, x0, y1), (x1, y0, x1, y1)):
                self._segment(*side)

    def _segment(self, x0, y0, x1, y1) -> None:
        if len(self._path) < _MAX_PATH:
            self._path.append((x0, y0, x1, y1))

    def _paint(self) -> None:
        for x0, y0, x1, y1 in self._path:
            dx, dy = abs(x1 - x0), abs(y1 - y0)
            if dy <= 1 and dx >= RULE_MIN_LENGTH:
                self.rules[0] += 1
            elif dx <= 1 and dy >= RULE_MIN_LENGTH:
                self.rules[1] += 1
        self._path.clear()

    def ruled(self) -> bool:
        """Whether the page paints enough rules to hold a table (`TABLE_MIN_RULES`)."""
        return self.rules[0] >= TABLE_MIN_RULES[0] and self.rules[1] >= TABLE_MIN_RULES[1]

    def interleaved(self) -> bool:
        """Whether the page has columns that its stream does not draw one after the other."""
        gutter = find_gutter(self.boxes) if COLUMNS else None
        if gutter is None:
            return False
        sides = [b.x0 >= gutter[1] for b in self.boxes if not (b.x0 < gutter[1] and b.x1 > gutter[0])]
        return sum(a != b for a, b in zip(sides, sides[1:])) > COLUMN_STREAM_SWITCHES


def _apply(cm, x: float, y: float) -> tuple[float, float]:
    return x * cm[0] + y * cm[2] + cm[4], x * cm[1] + y * cm[3] + cm[5]


def _string_bytes(value) -> int:
    """Bytes of text in a show operator's last operand: a string, or TJ's array of strings and
    offsets (the operators ' and " take the string last too)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, list):
        return sum([len(v) for v in value if isinstance(v, (str, bytes))])
    return 0


# ------------------------------------------------------------------ running headers and footers

_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"^[ivxlc]{1,6}$")  # a front-matter page number: "iv", "xii"
_LETTERS = re.compile(r"[^\W\d_]")


class _Edge(NamedTuple):
    """A line at a page's top or bottom edge, as compared across pages."""

    index: int  # in the page's lines
    key: str | None  # the text, numbers made "#"; None for a line that cannot run (`_edge_lines`)
    numbers: tuple[int, ...]


def _edge_lines(lines: list[str]) -> dict[str, list[_Edge]]:
    """The page's top and bottom lines, each list from the edge inwards: up to
    `RUNNING_EDGE_LINES` non-blank lines from each edge, never all of a page's lines (a one-line
    page, the same stamp scanned on every page, is body). A line of figures with a few letters
    (a row at the top of each page of a long table) cannot be a running line."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    n = min(RUNNING_EDGE_LINES, (len(filled) - 1) // 2)

    def edge(i: int) -> _Edge:
        text = " ".join(lines[i].split())
        key = _ROMAN.sub("#", _DIGITS.sub("#", text))
        if key != "#" and len(_LETTERS.findall(key)) < RUNNING_MIN_LETTERS:
            key = None
        return _Edge(i, key, tuple(int(d[:9]) for d in _DIGITS.findall(text)))

    return {"top": [edge(i) for i in filled[:n]], "bottom": [edge(i) for i in filled[::-1][:n]]}


def _marks(pages: list[int], edges: list[dict[str, list[_Edge]]]) -> list[dict[int, tuple]]:
    """For each page, its edge lines' marks (index -> mark): the edge, the key, and each number
    of the line either as it is or, where that number follows the page number along the pages
    with that key (a page number printed with an offset), as its offset from the page number.
    Lines that differ by a number other than a page number ("Water 6 flowed", "Water 9 flowed")
    so get different marks."""
    grouped: dict[tuple, list[tuple[int, tuple[int, ...]]]] = {}
    for number, page_edges in zip(pages, edges):
        for side, lines in page_edges.items():
            for line in lines:
                if line.key is not None:
                    grouped.setdefault((side, line.key), []).append((number, line.numbers))
    follows: dict[tuple, tuple[bool, ...]] = {}  # per key: which numbers follow the page number
    for group, seen in grouped.items():
        width = min(len(n) for _, n in seen)
        follows[group] = tuple(_most(v[j] - p for p, v in seen) > _most(v[j] for _, v in seen) for j in range(width))
    out = []
    for number, page_edges in zip(pages, edges):
        marks = {}
        for side, lines in page_edges.items():
            for line in lines:
                if line.key is not None:
                    turn = follows[(side, line.key)]
                    marks[line.index] = (side, line.key, tuple(
                        v - number if j < len(turn) and turn[j] else v for j, v in enumerate(line.numbers)))
        out.append(marks)
    return out


def _most(values) -> int:
    """How often the most common of `values` occurs."""
    return max(Counter(values).values(), default=0)


def drop_running_lines(pages: list[tuple[int, list[str]]]) -> list[list[str]]:
    """Each page's text blocks (given as page number and blocks in reading order) without its
    running lines: a line at the top (bottom) edge of a page whose mark (`_marks`: its text with
    the page number allowed to change) is at that edge on at least `RUNNING_MIN_PAGES` pages and
    on `RUNNING_MIN_SHARE` of the pages from its first to its last. They are dropped from the
    edge inwards, up to the first line that is not one; the first page a running line is on
    keeps it, so its words are still found once."""
    if not RUNNING_LINES:
        return [list(blocks) for _, blocks in pages]
    split = [[block.split("\n") for block in blocks] for _, blocks in pages]
    places = [[(b, i) for b, block in enumerate(page) for i in range(len(block))] for page in split]
    edges = [_edge_lines([page[b][i] for b, i in where]) for page, where in zip(split, places)]
    numbers = [number for number, _ in pages]
    marks = _marks(numbers, edges)
    seen: dict[tuple, list[int]] = {}  # mark -> the pages it is on, each once
    for number, page_marks in zip(numbers, marks):
        for mark in set(page_marks.values()):
            seen.setdefault(mark, []).append(number)
    first = {mark: on[0] for mark, on in seen.items()
             if len(on) >= RUNNING_MIN_PAGES and len(on) >= RUNNING_MIN_SHARE * (on[-1] - on[0] + 1)}
    out = []
    for number, page, where, page_edges, page_marks in zip(numbers, split, places, edges, marks):
        drop = set()
        for lines in page_edges.values():
            for line in lines:
                if first.get(page_marks.get(line.index), number) == number:
                    break
                drop.add(where[line.index])
        out.append(["\n".join(line for i, line in enumerate(block) if (b, i) not in drop).strip("\n")
                    for b, block in enumerate(page)])
    return out
