"""PowerPoint files (.pptx) through python-pptx: one section per slide, its title as the heading
and its number as the location; tables as Markdown tables; speaker notes after the slide text."""
from __future__ import annotations

import io
from pathlib import Path

from ..errors import DocumentError
from ..types import Location, Section
from .package import broken, open_package
from .tables import table_section


def read(path: Path, raw: bytes) -> tuple[str, tuple[Section, ...]]:
    open_package(path, raw, "pptx").close()
    try:
        from pptx import Presentation

        deck = Presentation(io.BytesIO(raw))
        title = (deck.core_properties.title or "").strip()
        sections: list[Section] = []
        for number, slide in enumerate(deck.slides, 1):
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
                if getattr(shape, "has_table", False) and shape.has_table:
                    rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
                    table = table_section(rows, headings=heads, location=where)
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


def _shapes(shapes):
    """Every shape, those inside groups included, in slide order."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape
