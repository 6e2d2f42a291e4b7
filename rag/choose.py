"""The `auto` template: which prompt template answers a question best, chosen per question from
the question and the passages retrieved for it, before the model runs.

The grammar-constrained `extract` template copies a span from one passage sentence: the best
answer a small model gives to a factual question over prose (SQuAD's paragraphs), and a poor one
over notes, where the answer is spread over list items and headings, or to a question asking
for an explanation. `few_shot` writes its own sentences and is the safe choice otherwise.

The rule (`prose_factoid`) reads two things, each a named function with its own test:
- `asks_explanation`: "why", "how does", "explain", "describe", "what is the difference" ...
  want sentences of their own, not a copied span;
- `notes_share`: the share of the top passages' lines that are list items, headings or table
  rows. Prose is under `PROSE_MAX`.
A model that takes no grammar (some LLM servers) always gets `few_shot`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .types import Hit

AUTO = "auto"
FALLBACK = "few_shot"
EXTRACTIVE = "extract"
PROSE_MAX = 0.2  # passages with more of their lines in lists or headings than this are notes
TOP = 2  # how many of the best passages are read for their shape

_EXPLAIN = re.compile(
    r"^\s*(?:why\b|how (?:does|do|did|is|are|can|could|should|would|to)\b|explain\b|describe\b|"
    r"compare\b|summari[sz]e\b|discuss\b|what (?:is|are) the (?:difference|differences|advantages?|"
    r"disadvantages?|benefits?|pros|role|purpose|idea)\b|what happens\b|in what way)", re.I)
_NOTE_LINE = re.compile(r"^\s*(?:[-*+•]\s|\d{1,2}[.)]\s|#{1,6}\s|\|)")


@dataclass(frozen=True)
class Choice:
    """The template `auto` picked and why, in words (shown as `Answer.template_reason`)."""

    template: str
    reason: str


def asks_explanation(question: str) -> bool:
    """Whether the question asks for an explanation rather than a fact."""
    return bool(_EXPLAIN.search(question))


def notes_share(texts: list[str]) -> float:
    """Share of the non-empty lines of `texts` that are list items, headings or table rows."""
    lines = [line for t in texts for line in t.splitlines() if line.strip()]
    return sum(bool(_NOTE_LINE.match(line)) for line in lines) / len(lines) if lines else 0.0


def choose(question: str, hits: list[Hit], *, grammar: bool) -> Choice:
    """The template for `question` given its retrieved `hits` (best first); `grammar`: whether the
    model can follow a grammar, which `extract` needs."""
    if not grammar:
        return Choice(FALLBACK, "the model takes no grammar, which extract needs")
    if asks_explanation(question):
        return Choice(FALLBACK, "the question asks for an explanation")
    share = notes_share([h.chunk.text for h in hits[:TOP]])
    if share > PROSE_MAX:
        return Choice(FALLBACK, f"the passages are notes ({share:.0%} of their lines are lists or headings)")
    return Choice(EXTRACTIVE, "a factual question over prose passages")
