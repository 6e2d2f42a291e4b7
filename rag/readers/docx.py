"""Word documents (.docx) through python-docx: paragraphs under their heading path, tables as
Markdown tables, in document order."""
from __future__ import annotations

import io
import re
from pathlib import Path

from ..errors import DocumentError
from ..types import Section
from .package import broken, open_package
from .tables import table_section

_HEADING = re.compile(r"heading (\d)$", re.I)


def heading_level(style_name: str) -> int:
    """1-9 for Word's "Heading N" styles, 1 for "Title", 0 for body text."""
    name = (style_name or "").strip()
    if name.lower() == "title":
        return 1
    m = _HEADING.match(name)
    return int(m.group(1)) if m else 0


def read(path: Path, raw: bytes) -> tuple[str, tuple[Section, ...]]:
    open_package(path, raw, "docx").close()
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

        for block in document.iter_inner_content():
            if isinstance(block, DocxTable):
                flush()
                rows = [[cell.text for cell in _unmerged(row.cells)] for row in block.rows]
                table = table_section(rows, headings=tuple(t for _, t in heads))
                if table is not None:
                    sections.append(table)
                continue
            text = block.text.strip()
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


def _unmerged(cells):
    """A merged cell appears once per grid column it spans; keep it once."""
    seen, out = set(), []
    for cell in cells:
        key = id(cell._tc)
        if key not in seen:
            seen.add(key)
            out.append(cell)
    return out
