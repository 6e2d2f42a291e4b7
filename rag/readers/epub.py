"""EPUB e-books through ebooklib: chapters in reading (spine) order, each read like an HTML page,
so headings give the section path and tables stay tables."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from ..errors import DocumentError
from ..types import Section
from .budget import Budget
from .html import HTMLSections
from .package import broken, open_package


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    zf = open_package(path, raw, "epub", budget=budget)
    try:
        if "META-INF/encryption.xml" in zf.namelist():
            enc = zf.read("META-INF/encryption.xml").decode("utf-8", "replace").lower()
            # fonts are often obfuscated (still readable text); encrypted chapters mean DRM
            if any(ext in enc for ext in (".xhtml", ".html", ".htm")):
                raise DocumentError(f"{path}: DRM-protected EPUB (its chapters are encrypted)")
    finally:
        zf.close()
    try:
        import ebooklib
        from ebooklib import epub

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ebooklib warns about options it will change
            book = epub.read_epub(io.BytesIO(raw), options={"ignore_ncx": True})
        titles = book.get_metadata("DC", "title")
        title = str(titles[0][0]).strip() if titles else ""
        sections: list[Section] = []
        for idref, *_ in book.spine:
            budget.check_time()
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
                continue
            parser = HTMLSections(budget)  # the same budget: depth, table cells and time
            parser.feed(item.get_content().decode("utf-8", "replace"))
            parser.close()
            sections.extend(parser.sections)
    except DocumentError:
        raise
    except Exception as e:  # ebooklib and lxml raise many kinds of errors on damaged books
        raise broken(path, "epub", e) from None
    return title, tuple(sections)
