"""PowerPoint files (.pptx) through python-pptx: one section per slide, its title as the heading
and its number as the location; tables as Markdown tables; speaker notes after the slide text."""
from __future__ import annotations

import io
from pathlib import Path

from ..errors import DocumentError
from ..types import Location, Section
from .budget import Budget
from .package import broken, open_package
from .tables import CellTally, blank, table_section


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    open_package(path, raw, "pptx", budget=budget).close()
    try:
        from pptx import Presentation

        deck = Presentation(io.BytesIO(raw))
        title = (deck.core_properties.title or "").strip()
        sections: list[Section] = []
        for number, slide in enumerate(deck.slides, 1):
            budget.check_time()
            where = Location(slide=number)
            head_shape = slide.shapes.title
            heading = " ".join(head_shape.text_frame.text.split()) if head_shape is not None and \
                head_shape.has_text_frame else ""
            heads = (heading,) if heading else ()
            texts: list[str] = []
            tables: list[Section] = []
            for shape in _shapes(slide.shapes):
                if head_shape is not None and shape.shape_id == head_shape.shape_id:
                    continue
                budget.check_time()
                if getattr(shape, "has_table", False) and shape.has_table:
                    table = table_section(_table_rows(shape.table, budget), headings=heads, location=where,
                                          counted=True)
                    if table is not None:
                        tables.append(table)
                elif shape.has_text_frame and shape.text_frame.text.strip():
                    texts.append(shape.text_frame.text.strip())
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    texts.append("Notes: " + notes.text.strip())
            body = "\n".join(texts)
            if body or heading and not tables:
                sections.append(Section(body or heading, heads, where))
            sections.extend(tables)
    except DocumentError:
        raise
    except Exception as e:  # python-pptx and lxml raise many kinds of errors on damaged parts
        raise broken(path, "pptx", e) from None
    return title, tuple(sections)


def _table_rows(table, budget: Budget) -> list[list[str]]:
    """The table's rows of cell texts, each cell charged to the budget (`cells`) as it is read.
    python-pptx gives one cell per `<a:tc>` element (a merged cell's others are empty)."""
    tally = CellTally(budget)
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = cell.text
            if not blank(text):
                tally.cell(len(cells))
            cells.append(text)
        tally.end_row()
        rows.append(cells)
    return rows


def _shapes(shapes):
    """Every shape, those inside groups included, in slide order."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape
