"""Markdown files: sections by heading path (`# A` / `## B` -> ("A", "B")); the title from the
front matter's `title:`, else the first heading."""
from __future__ import annotations

import re
from pathlib import Path

from ..types import Section
from .budget import Budget
from .encoding import decode

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def read(path: Path, raw: bytes, *, budget: Budget | None = None) -> tuple[str, tuple[Section, ...]]:
    budget = Budget(path) if budget is None else budget
    text = decode(raw, path)
    budget.check_time()
    return parse(text)


def parse(text: str) -> tuple[str, tuple[Section, ...]]:
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    title = ""
    m = _FRONT_MATTER.match(text)
    if m:
        for line in m.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "title":
                title = value.strip().strip("'\"")
        text = text[m.end():]
    levels = [("#" * i, f"h{i}") for i in range(1, 7)]
    splitter = MarkdownHeaderTextSplitter(levels, strip_headers=True)
    sections = []
    for doc in splitter.split_text(text):
        heads = tuple(doc.metadata[f"h{i}"] for i in range(1, 7) if f"h{i}" in doc.metadata)
        sections.append(Section(doc.page_content, heads))
    if not title:
        title = next((s.headings[0] for s in sections if s.headings), "")
    return title, tuple(sections)
