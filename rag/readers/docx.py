"""Word documents (.docx) through python-docx: paragraphs under their heading path, tables as
Markdown tables, in document order.

Table rows are read from their `<w:tc>` elements, not python-docx's `row.cells`: that repeats a
cell once per grid column it spans (a forged `gridSpan` of a billion is a billion-cell tuple) and
finds each vertically merged cell by walking up the rows above it with XPath (quadratic in the
rows, and recursive). Cells are charged to the budget (`cells`) as they are read.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from ..errors import DocumentError
from ..types import Section
from .budget import Budget
from .package import broken, open_package
from .tables import CellTally, blank, table_section

_HEADING = re.compile(r"heading (\d)$", re.I)


def heading_level(style_name: str) -> int:
    """1-9 for Word's "Heading N" styles, 1 for "Title", 0 for body text."""
    name = (style_name or "").strip()
    if name.lower() == "title":
        return 1
    m = _HEADING.match(name)
    return int(m.group(1)) if m else 0


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    open_package(path, raw, "docx", budget=budget).close()
    try:
        import docx
        from docx.table import Table as DocxTable

        document = docx.Document(io.BytesIO(raw))
        title = (document.core_properties.title or "").strip()
        # Paragraph.style searches the styles part on every call (95% of the reading time of a
        # long document); the paragraph's style id, looked up once per style, gives the same name
        names = {st.style_id: st.name or "" for st in document.styles}
        sections: list[Section] = []
        heads: list[tuple[int, str]] = []
        buf: list[str] = []

        def flush() -> None:
            text = "\n".join(buf).strip()
            if text:
                sections.append(Section(text, tuple(t for _, t in heads)))
            buf.clear()

        for block in _blocks(document):
            budget.check_time()
            if isinstance(block, DocxTable):
                flush()
                rows = _table_rows(block, budget)
                table = table_section(rows, headings=tuple(t for _, t in heads), counted=True)
                if table is not None:
                    sections.append(table)
                continue
            text = _text(block._p).strip()
            if not text:
                continue
            style = names.get(block._p.style, "") if block._p.style else ""
            level = heading_level(style)
            if level:
                flush()
                heads = [(lv, t) for lv, t in heads if lv < level] + [(level, text)]
                title = title or text
            else:
                buf.append(f"- {text}" if style.lower().startswith("list") else text)
        flush()
    except DocumentError:
        raise
    except Exception as e:  # python-docx and lxml raise many kinds of errors on damaged parts
        raise broken(path, "docx", e) from None
    return title, tuple(sections)


def _blocks(document):
    """The body's paragraphs and tables in order, as `Document.iter_inner_content()` gives them,
    but made one at a time: python-docx first lists every one (an XPath result), which holds a
    Python object per paragraph for the whole loop (+130 MB for 1.4 million empty paragraphs)."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    body = document._body
    p, tbl = qn("w:p"), qn("w:tbl")
    for element in document.element.body.iterchildren(p, tbl):
        yield Paragraph(element, body) if element.tag == p else Table(element, body)


def _text(p) -> str:
    """`Paragraph.text` without its XPath query per paragraph (compiled on each call: 13 us, which
    was 18 of 27 s for 1.4 million paragraphs): the text of the paragraph's runs and hyperlinks."""
    from docx.oxml.ns import qn

    return "".join(e.text for e in p.iterchildren(qn("w:r"), qn("w:hyperlink")))


def _table_rows(table, budget: Budget) -> list[list[str]]:
    """The table's rows of cell texts: a cell merged across columns once, a cell merged down
    the rows repeated in each row it covers (its text, found by grid column in the row above)."""
    from docx.table import _Cell

    tally = CellTally(budget)
    rows: list[list[str]] = []
    above: dict[int, str] = {}  # grid column -> text of the cell there, in the row above
    for tr in table._tbl.tr_lst:
        budget.check_time()
        here: dict[int, str] = {}
        row: list[str] = []
        column = tr.grid_before
        for tc in tr.tc_lst:
            text = above.get(column, "") if tc.vMerge == "continue" else _Cell(tc, table).text
            here[column] = text
            if not blank(text):
                tally.cell(len(row))
            row.append(text)
            column += max(1, tc.grid_span)
        tally.end_row()
        rows.append(row)
        above = here
    return rows
