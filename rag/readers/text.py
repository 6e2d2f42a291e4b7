"""Plain text files: one section, titled by the first line when it is short enough to be one.
Files too large to hold whole are read in blocks by `ingest.load` instead (see LARGE_FILE_BYTES)."""
from __future__ import annotations

from pathlib import Path

from ..types import Section
from .budget import Budget
from .encoding import decode


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    text = decode(raw, path)
    budget.check_time()
    return first_line_title(text), (Section(text.strip()),)


def first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= 120 else ""
    return ""
