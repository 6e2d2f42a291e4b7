"""Readers, one module per format: plain text, Markdown, HTML, PDF, office documents, e-books,
spreadsheets and images.

Each reader turns a file's bytes into `Section`s that keep what a citation needs: headings for
Markdown, HTML, Word and EPUB, slide number and title for PowerPoint, sheet name and row range
for spreadsheets, the page for PDF; tables stay tables (`Section.table`) so the chunker can
repeat their header row. `ingest.load` picks the reader by suffix (`READERS`) and raises
`DocumentError` for the file. Every reader charges the document's `Budget` (`budget`) while it
reads, not after. Readers import nothing above this package: the text-level helpers they share
(`encoding`, `tables`, `package`, `ocr`, `budget`) live here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..types import Section
from .budget import Budget


class Reader(Protocol):
    """Reads one file: `(title, sections)`; a one-line `DocumentError` when it cannot, and
    `OverBudget` (a DocumentError) as soon as reading it goes over one of `budget`'s limits
    (None: a fresh `Budget(path)` with the default limits)."""

    def __call__(self, path: Path, raw: bytes, *, budget: Budget | None = None
                 ) -> tuple[str, tuple[Section, ...]]: ...


def _lazy(module: str, name: str = "read") -> Reader:
    # readers import their libraries (python-docx, openpyxl, ...) only when such a file turns up
    def read(path: Path, raw: bytes, *, budget: Budget | None = None, **options):
        import importlib

        # (options: what one reader alone takes, as the PDF reader its `page_log`)
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)(path, raw, budget=budget, **options)

    read.__name__ = f"{module}.{name}"
    return read


# What a reader of each kind emits, versioned: an index re-reads an unchanged file whose kind's
# version is newer than the one it was read with (`rag index` without --rebuild). 2: HTML list
# items as "- " entries (issue 32; EPUB reads its chapters as HTML), PDF tables, columns and running lines (issue 33).
VERSIONS: dict[str, int] = {"html": 2, "epub": 2, "pdf": 2}


def version(kind: str) -> int:
    return VERSIONS.get(kind, 1)


# suffix -> (kind, reader); ingest.SUPPORTED takes the kinds from here
READERS: dict[str, tuple[str, Callable]] = {
    ".txt": ("text", _lazy("text")),
    ".md": ("markdown", _lazy("markdown")),
    ".markdown": ("markdown", _lazy("markdown")),
    ".html": ("html", _lazy("html")),
    ".htm": ("html", _lazy("html")),
    ".pdf": ("pdf", _lazy("pdf")),
    ".docx": ("docx", _lazy("docx")),
    ".pptx": ("pptx", _lazy("pptx")),
    ".xlsx": ("xlsx", _lazy("sheet", "read_xlsx")),
    ".xlsm": ("xlsx", _lazy("sheet", "read_xlsx")),
    ".csv": ("csv", _lazy("sheet", "read_csv")),
    ".tsv": ("csv", _lazy("sheet", "read_csv")),
    ".epub": ("epub", _lazy("epub")),
    ".png": ("image", _lazy("image")),
    ".jpg": ("image", _lazy("image")),
    ".jpeg": ("image", _lazy("image")),
    ".tif": ("image", _lazy("image")),  # scanners' multi-page TIFF: one page per frame
    ".tiff": ("image", _lazy("image")),
}
