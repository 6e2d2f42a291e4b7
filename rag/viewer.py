"""The source viewer: a cited passage in its document's context (the neighbouring text, the
page of a PDF) with the sentence that supports the answer's sentence marked.

`source_view(answer, citation, version)` gives a `SourceView`; the chat renders it (escaped) when
a citation is opened. Which sentence supports which is decided by `supporting_span`, a named
heuristic: the passage sentence holding the largest share of the answer sentence's content words
(at least `HIGHLIGHT_MIN`), the measure the citation check itself uses (`ground.lexical_support`).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from .checks.ground import lexical_support
from .text import sentence_spans, strip_markers
from .types import Answer, Citation

# below this share of its content words no passage sentence is said to support an answer
# sentence: nothing is marked rather than a sentence that only shares a word or two
HIGHLIGHT_MIN = 0.3
CONTEXT_CHARS = 400  # of each neighbouring chunk shown around the passage


@dataclass(frozen=True)
class SourceView:
    """A passage in context. `highlights` are (start, end) offsets in `passage` of the sentences
    that support the answer; `before`/`after` the neighbouring text of the same document."""

    source: str
    chunk_id: str
    heading: str
    page: str  # "page 3" for a PDF, else ""
    before: str
    passage: str
    after: str
    highlights: tuple[tuple[int, int], ...] = ()


def supporting_span(claim: str, passage: str, *, minimum: float = HIGHLIGHT_MIN) -> tuple[int, int] | None:
    """Offsets of the sentence of `passage` that supports `claim` best, None when none shares at
    least `minimum` of its content words (0: the best, however little). Ties go to the first."""
    best, span = 0.0, None
    claim = strip_markers(claim)
    for start, end in sentence_spans(passage):
        share = lexical_support(claim, passage[start:end])
        if share > best:
            best, span = share, (start, end)
    return span if span is not None and best >= minimum else None


def claims_for(answer: Answer, n: int) -> list[str]:
    """The answer sentences that passage `n` stands for: those the check gave to it, else (no
    per-sentence check, or an inferred source) the whole answer."""
    own = [s.text for s in answer.sentences if s.passage == n]
    return own or ([answer.text] if answer.text else [])


def source_view(answer: Answer, citation: Citation, version=None, *, passage: str | None = None,
                highlight: bool = True) -> SourceView:
    """The view of `citation`: its passage (from `passage`, the answer's hits, or `version`, an
    `IndexVersion` that also gives the neighbouring chunks), with the supporting sentences
    marked unless `highlight` is off."""
    chunk = _chunk(version, citation.chunk_id)
    if passage is None:
        passage = next((h.chunk.text for h in answer.hits if h.chunk.id == citation.chunk_id), None)
    if passage is None:
        passage = chunk.text if chunk is not None else citation.snippet
    before = after = ""
    if chunk is not None and chunk.text == passage:  # (a saved answer's document may have changed since)
        prev, nxt = _neighbour(version, citation.chunk_id, -1), _neighbour(version, citation.chunk_id, 1)
        if prev is not None:
            before = _tail(_without_overlap(prev.text, passage))
        if nxt is not None:
            after = _head(_after_overlap(passage, nxt.text))
    headings = chunk.headings if chunk is not None else tuple(citation.heading.split(" > "))
    page = next((h for h in headings if h.startswith("page ") and h[5:].isdigit()), "")
    spans = []
    if highlight:
        for claim in claims_for(answer, citation.n):
            span = supporting_span(claim, passage)
            if span is not None and span not in spans:
                spans.append(span)
    return SourceView(citation.source, citation.chunk_id, citation.heading, page, before, passage, after,
                      tuple(sorted(spans)))


# ---------------------------------------------------------------- neighbours in the index

_POSITIONS: "weakref.WeakKeyDictionary[object, dict[str, int]]" = weakref.WeakKeyDictionary()


def _positions(version) -> dict[str, int]:
    try:
        pos = _POSITIONS.get(version)
    except TypeError:  # not weak-referenceable: no cache
        return {c.id: i for i, c in enumerate(version.chunks)}
    if pos is None:
        pos = _POSITIONS[version] = {c.id: i for i, c in enumerate(version.chunks)}
    return pos


def _chunk(version, chunk_id: str):
    if version is None:
        return None
    i = _positions(version).get(chunk_id)
    return version.chunks[i] if i is not None else None


def _neighbour(version, chunk_id: str, step: int):
    """The chunk before (-1) or after (+1) `chunk_id` in the same document, if indexed."""
    source, _, n = chunk_id.rpartition("#")
    if not n.isdigit():
        return None
    return _chunk(version, f"{source}#{int(n) + step}")


def _without_overlap(before: str, passage: str) -> str:
    """`before` without its end that `passage` repeats (chunks overlap)."""
    for k in range(min(len(before), len(passage)), 15, -1):
        if before.endswith(passage[:k]):
            return before[:-k]
    return before


def _after_overlap(passage: str, after: str) -> str:
    for k in range(min(len(after), len(passage)), 15, -1):
        if passage.endswith(after[:k]):
            return after[k:]
    return after


def _tail(text: str) -> str:
    text = text.rstrip()
    if len(text) <= CONTEXT_CHARS:
        return text
    cut = text[-CONTEXT_CHARS:]
    return "... " + cut.split(" ", 1)[-1]


def _head(text: str) -> str:
    text = text.lstrip()
    if len(text) <= CONTEXT_CHARS:
        return text
    return text[:CONTEXT_CHARS].rsplit(" ", 1)[0] + " ..."
