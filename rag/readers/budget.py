"""What reading one document may cost, enforced while it is read rather than after.

A file of a few kilobytes can expand into gigabytes or hours of work: a zip part that unpacks
a thousandfold, a sheet that declares 16,384 columns, one image listed under forty names, markup
nested 200,000 deep. Every reader charges a `Budget` as it goes (bytes unpacked, cells, images
decoded, pages OCR'd, nesting depth) and asks it the time at each loop step; the first limit
crossed raises `OverBudget`, so the file is skipped with its reason and the rest is indexed.
Limits come from settings (`read_seconds`, `read_ocr_seconds`, `read_unpacked_mb`, `read_markup_mb`, `read_cells`, `read_ocr_pages`;
RAG_READ_* in the environment) or a `ReadLimits` passed in.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import OverBudget

MB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """Per-document limits. The defaults read a 1,000-page manual or a 100,000-row sheet."""

    seconds: float = 300.0  # wall time for one document, reading only (not embedding, not OCR)
    # wall time OCR may take in one document: a scanned page takes 2-8 s here (BENCHMARKS.md),
    # so 200 pages fit; counted apart from `seconds`, which a 40-page scan would pass
    ocr_seconds: float = 1800.0
    # decompressed from an Office/EPUB zip, all parts together; also the size of an HTML file,
    # which is parsed as a stream (its memory follows the text kept, not a tree)
    unpacked_bytes: int = 256 * MB
    # XML or HTML parsed into trees: ~20x this in memory (package.NODE_COST charges node-dense
    # markup more). python-docx over a document.xml of empty paragraphs: 16 MB +362 MB, 32 MB
    # +720 MB; the largest accepted now peak at ~+320 MB. A 1,000-page manual's is ~5-10 MB (estimate)
    markup_bytes: int = 16 * MB
    cells: int = 2_000_000  # spreadsheet and table cells: rows x used columns
    ocr_pages: int = 200  # pages or images read by OCR (a page takes seconds)
    images: int = 400  # images decoded, each once, one at a time
    pixels: int = 64_000_000  # one image's width x height
    depth: int = 512  # nesting of markup elements

    @classmethod
    def from_settings(cls, settings) -> "ReadLimits":
        return cls(seconds=float(settings.read_seconds), unpacked_bytes=int(settings.read_unpacked_mb) * MB,
                   markup_bytes=int(settings.read_markup_mb) * MB, cells=int(settings.read_cells),
                   ocr_pages=int(settings.read_ocr_pages), ocr_seconds=float(settings.read_ocr_seconds))

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"read limit {f.name} must be positive, got {getattr(self, f.name)!r}")


DEFAULT_LIMITS = ReadLimits()

# how each resource is named in a skip reason, and the setting that raises its limit
_WORDS = {
    "seconds": ("took over {limit:g} s to read", "read_seconds"),
    "ocr_seconds": ("took over {limit:g} s of OCR", "read_ocr_seconds"),
    "unpacked_bytes": ("holds over {mb} MB unpacked", "read_unpacked_mb"),
    "markup_bytes": ("holds over {mb} MB of markup", "read_markup_mb"),
    "cells": ("has over {limit:,} table cells", "read_cells"),
    "ocr_pages": ("has over {limit:,} pages or images to OCR", "read_ocr_pages"),
    "images": ("has over {limit:,} images", ""),
    "pixels": ("has an image over {mp} megapixels", ""),
    "depth": ("nests markup over {limit:,} levels deep", ""),
}


class Budget:
    """One document's running account against `limits`. Not shared between threads."""

    def __init__(self, path: Path | str, limits: ReadLimits = DEFAULT_LIMITS, *, clock=time.monotonic) -> None:
        self.path = Path(path)
        self.limits = limits
        self._clock = clock
        self._start = clock()
        self._ocr = 0.0  # seconds spent in OCR so far
        self.spent: dict[str, int] = {}

    def spend(self, resource: str, amount: int = 1) -> None:
        """Add `amount` of `resource`; OverBudget once the total passes its limit. Checks the time too."""
        total = self.spent.get(resource, 0) + amount
        self.spent[resource] = total
        if total > getattr(self.limits, resource):
            raise self._over(resource)
        self.check_time()

    def allow(self, resource: str, amount: int) -> None:
        """OverBudget when one item of `amount` is over the limit itself (an image's pixels, a
        nesting depth), without adding it to a total."""
        if amount > getattr(self.limits, resource):
            raise self._over(resource)

    def ocr_seconds(self) -> float:
        """Seconds of OCR this document has used so far."""
        return self._ocr

    def check_time(self) -> None:
        if self._ocr > self.limits.ocr_seconds:
            raise self._over("ocr_seconds")
        if self.elapsed() > self.limits.seconds:
            raise self._over("seconds")

    def elapsed(self) -> float:
        """Seconds spent reading so far, OCR not counted (it has its own limit)."""
        return self._clock() - self._start - self._ocr

    @contextmanager
    def ocr(self):
        """Time spent inside counts against `ocr_seconds` instead of `seconds`; yields the OCR
        seconds left, for the engine's own timeout."""
        self.check_time()
        start = self._clock()
        try:
            yield self.limits.ocr_seconds - self._ocr
        finally:
            self._ocr += self._clock() - start

    def _over(self, resource: str) -> OverBudget:
        words, setting = _WORDS[resource]
        limit = getattr(self.limits, resource)
        reason = words.format(limit=limit, mb=limit // MB if isinstance(limit, int) else limit,
                              mp=limit // 1_000_000 if isinstance(limit, int) else limit)
        hint = f"; raise {setting} to read it" if setting else ""
        return OverBudget(f"{self.path}: not read: the file {reason}{hint}", resource=resource)


def unlimited(path: Path | str = "") -> Budget:
    """A budget for code that reads trusted input of a known size (tests, benchmarks of a library)."""
    big = 1 << 62
    return Budget(path, ReadLimits(seconds=float("inf"), ocr_seconds=float("inf"), unpacked_bytes=big, markup_bytes=big, cells=big,
                                   ocr_pages=big, images=big, pixels=big, depth=big))
