"""The `auto` template: which prompt template answers a question best, chosen per question from
the question and the passages retrieved for it, before the model runs.

The grammar-constrained `extract` template copies a span from one passage sentence: the best
answer a small model gives to a factual question over prose (SQuAD's paragraphs), and a poor one
over notes, where the answer is spread over list items and headings, or to a question asking
for an explanation. `few_shot` writes its own sentences and is the safe choice otherwise.

The rule (`prose_factoid`) reads two things, each a named function with its own test:
- `asks_explanation`: "why", "how does", "explain", "describe", "what is the difference" ...
  want sentences of their own, not a copied span;
- `prose_share`: the share of the top passages' text that is in paragraphs: lines of
  `PARAGRAPH_CHARS` or more, or holding two sentences or more. Notes are short lines, list
  items and headings. Passages are prose from `PROSE_MIN`: on the shipped sets every SQuAD
  passage pair scored 0.92 or more and every corpus one 0.60 or less.
A model that takes no grammar (some LLM servers) always gets `few_shot`.

What "otherwise" means depends on the model (`free_form`). The 135M default writes its best
sentences after worked examples (corpus set: few_shot 0.455 against cot 0.121), while the 0.5B
Qwen2.5-Coder learns mostly the examples' refusal from them (few_shot 0.364 with 61% false
abstention, against cot 0.576 and 9%; SQuAD sample 0.278 against 0.500), so a model of
`REASONING_PARAMS` or more reasons first instead.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .types import Hit

AUTO = "auto"
FALLBACK = "few_shot"
REASONING = "cot"
REASONING_PARAMS = 300_000_000  # between the 135M default (few_shot best) and the 0.5B (cot best)
EXTRACTIVE = "extract"
PROSE_MIN = 0.75  # passages with less of their text in paragraphs than this are notes
PARAGRAPH_CHARS = 200
TOP = 2  # how many of the best passages are read for their shape

_EXPLAIN = re.compile(
    r"^\s*(?:why\b|how (?:does|do|did|is|are|can|could|should|would|to)\b|explain\b|describe\b|"
    r"compare\b|summari[sz]e\b|discuss\b|what (?:is|are) the (?:difference|differences|advantages?|"
    r"disadvantages?|benefits?|pros|role|purpose|idea)\b|what happens\b|in what way)", re.I)
_NOTE_LINE = re.compile(r"^\s*(?:[-*+•]\s|\d{1,2}[.)]\s|#{1,6}\s|\|)")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


@dataclass(frozen=True)
class Choice:
    """The template `auto` picked and why, in words (shown as `Answer.template_reason`)."""

    template: str
    reason: str


def asks_explanation(question: str) -> bool:
    """Whether the question asks for an explanation rather than a fact."""
    return bool(_EXPLAIN.search(question))


def prose_share(texts: list[str]) -> float:
    """Share of the characters of `texts` in paragraph lines: long ones, or ones holding two
    sentences or more, that are not list items, headings or table rows."""
    lines = [line for t in texts for line in t.splitlines() if line.strip()]
    total = sum(len(line) for line in lines)
    prose = sum(len(line) for line in lines if not _NOTE_LINE.match(line)
                and (len(line) >= PARAGRAPH_CHARS or len(_SENTENCE_END.findall(line)) >= 2))
    return prose / total if total else 0.0


def free_form(n_params: int | None) -> str:
    """The template a model of `n_params` parameters answers best in its own words (None: a
    server that does not say, which keeps the long-standing default)."""
    return REASONING if n_params is not None and n_params >= REASONING_PARAMS else FALLBACK


def choose(question: str, hits: list[Hit], *, grammar: bool, n_params: int | None = None) -> Choice:
    """The template for `question` given its retrieved `hits` (best first); `grammar`: whether the
    model can follow a grammar, which `extract` needs; `n_params`: the model's size."""
    own = free_form(n_params)
    if not grammar:
        return Choice(own, "the model takes no grammar, which extract needs")
    if asks_explanation(question):
        return Choice(own, "the question asks for an explanation")
    share = prose_share([h.chunk.text for h in hits[:TOP]])
    if share < PROSE_MIN:
        return Choice(own, f"the passages are notes (only {share:.0%} of their text is in paragraphs)")
    return Choice(EXTRACTIVE, "a factual question over prose passages")
