"""An answer as a reader of plain text meets it: its [n] markers renumbered 1..k in the order
they are read, and a short "Sources" footer naming each source's file, location and heading.

The pipeline numbers citations by context block ("[4]" is the fourth passage the model was
shown), which means nothing to a reader who sees only the cited ones: an answer citing blocks 4
and 2 reads "[1] ... [2]" here, with [1] the first source named. Clients that show only the
message text (the `llm` CLI, LangChain, most chat front ends) get the sources through the
footer; `numbered` keeps the block of each number for clients that read the structured field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable

from .text import CITE
from .types import Answer, Citation, Coverage

FOOTER_TITLE = "Sources:"
# a marker stands after a space or punctuation; "x[2]" or "m[1, 3]" right after a word or a
# bracket is code or a subscript, and keeps its numbers. Spaces before it (not line breaks)
# go with a marker that is dropped.
_SPACED_MARKER = re.compile(r"([ \t]*)(?<![\w\])])" + CITE.pattern)
# the line `coverage_line` writes, in both its shapes, at the end of a message
_COVERAGE = re.compile(r"\n\n(?:Read [\d,]+ of [\d,]+ chunks of |Searched [\d,]+ chunks in [\d,]+ documents?\b)"
                       r"[^\n]*\s*$")
_FOOTER = re.compile(r"\n\n" + re.escape(FOOTER_TITLE) + r"\n(?:\[\d+\] [^\n]*(?:\n|$))+\s*$")


@dataclass(frozen=True)
class Numbered:
    """The answer's text with reader numbers, its citations renumbered to match (in reader
    order), and `block_of`: reader number -> the context block it stood for."""

    text: str
    citations: tuple[Citation, ...]
    block_of: dict[int, int]

    def number_of(self, block: int) -> int | None:
        """The reader number of context block `block`, None when no citation names it."""
        return next((n for n, b in self.block_of.items() if b == block), None)


def numbered(answer: Answer) -> Numbered:
    """Renumber the markers of `answer.text` 1..k by first appearance. Citations the text does
    not mark (an inferred source) take the numbers after those; a marker naming no citation
    (a block the checks dropped) is left out of the text rather than pointing nowhere."""
    by_block = {c.n: c for c in answer.citations}
    order = reading_order(answer.text, by_block)
    text = renumbered(answer.text, {b: i for i, b in enumerate(order, 1)})
    citations = tuple(replace(by_block[b], n=i) for i, b in enumerate(order, 1))
    return Numbered(text=text, citations=citations, block_of={i: b for i, b in enumerate(order, 1)})


def reading_order(text: str, blocks: Iterable[int]) -> list[int]:
    """The cited context `blocks` in the order a reader of `text` meets them: those its markers
    name, by first appearance, then the ones it does not mark."""
    blocks = list(blocks)
    order: list[int] = []
    for m in _SPACED_MARKER.finditer(text):
        for part in m.group(2).split(","):
            if int(part) in blocks and int(part) not in order:
                order.append(int(part))
    return order + [b for b in blocks if b not in order]


def renumbered(text: str, number: dict[int, int]) -> str:
    """`text` with each marker's blocks written as reader numbers (`number`: block -> number);
    a marker naming none of them is left out (`marked_pieces`)."""
    return "".join(p if isinstance(p, str) else f"{p.space}[{', '.join(map(str, p.numbers))}]"
                   for p in marked_pieces(text, number))


@dataclass(frozen=True)
class Marker:
    """A citation marker of a text, its blocks given as reader numbers; `space` the spaces
    written before it."""

    numbers: tuple[int, ...]
    space: str = ""


def marked_pieces(text: str, number: dict[int, int]) -> list[str | Marker]:
    """`text` cut into plain pieces and its markers, each marker's blocks turned into reader
    numbers by `number` (block -> number). A marker naming no block of `number` is left out
    with the spaces before it, so nothing points nowhere."""
    out: list[str | Marker] = []
    pos = 0
    for m in _SPACED_MARKER.finditer(text):
        numbers = tuple(dict.fromkeys(number[int(p)] for p in m.group(2).split(",") if int(p) in number))
        out.append(text[pos:m.start()])
        if numbers:
            out.append(Marker(numbers, m.group(1)))
        pos = m.end()
    out.append(text[pos:])
    return [p for p in out if p != ""]


def source_line(c: Citation) -> str:
    """One footer line: "[1] notes/lora.md, page 3 (Fine-tuning > LoRA)"."""
    place = c.location.label if c.location else ""
    # a PDF chunk's heading path ends with its page: named once, as the place
    heading = " > ".join(h for h in c.heading.split(" > ") if h and h != place)
    line = f"[{c.n}] {c.source}" + (f", {place}" if place else "")
    return line + (f" ({heading})" if heading else "")


def footer(citations: tuple[Citation, ...] | list[Citation]) -> str:
    """The "Sources:" block appended to an answer's text, "" when nothing is cited."""
    if not citations:
        return ""
    return "\n\n" + FOOTER_TITLE + "\n" + "\n".join(source_line(c) for c in citations)


def without_footer(text: str) -> str:
    """`text` less a "Sources:" footer that `footer` appended, and the coverage line
    (`coverage_line`) a whole-document answer has above it: what a client sends back as an
    earlier answer, before it goes into a prompt again (its [n] lines would read as citations
    of the new question's passages)."""
    return _COVERAGE.sub("", _FOOTER.sub("", text))


def coverage_line(coverage: Coverage | None) -> str:
    """What a whole-document or whole-collection answer read, for the line under it: "Read 14 of
    14 chunks of notes.md." or "Searched 58 chunks in 5 documents; items found in 3.", and a
    warning when a budget stopped the reading, so a partial list never passes for a complete
    one. "" for an ordinary answer."""
    if coverage is None:
        return ""
    c = coverage
    if c.document:
        line = f"Read {c.chunks_read:,} of {c.chunks_total:,} chunks of {c.document}."
    else:
        docs = "document" if c.documents_read == 1 else "documents"
        line = f"Searched {c.chunks_read:,} chunks in {c.documents_read:,} {docs}"
        if c.scope == "summary":
            line += "."
        elif c.scope == "documents":
            line += f"; the topic is in {c.documents_found:,}."
        else:
            line += f"; items found in {c.documents_found:,}."
    if not c.complete:
        line += (f" Stopped early ({c.stopped}) after {c.chunks_read:,} of {c.chunks_total:,} chunks: "
                 f"the answer may be incomplete.")
    return line
