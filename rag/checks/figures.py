"""The figure checks: made-up figures (`figures`, held against the passage sentences that back
each sentence with `claims`) and a question asking for a figure that gets none (`quantity`)."""
from __future__ import annotations

import re
from typing import Callable

from ..text import figures, mask_enumerators, sentences, strip_markers
from . import claims


def made_up_figures(answer: str, sources: list[str], question: str = "", *,
                    embed: Callable[[list[str]], "object"] | None = None) -> list[tuple[str, list[str]]]:
    """Each sentence of the answer with the figures in it that no source contains ([] if none).

    A figure the passages do not contain is the surest sign of a made-up answer: a small model
    asked for a learning rate or a year it cannot find will still write one, often around a
    grounded sentence that is worth keeping. Figures the question gave count as known. With
    `embed` (the `claims` check), a sentence's figures must be in the passage sentences that
    back it (`claims.evidence`), not anywhere in the passages: "listens on 80" is not backed by
    "serves on port 8000" because another sentence mentions port 80."""
    asked = figures(question)
    # Enumerators are told apart in the whole answer: split into sentences, "including: 1. Image"
    # leaves "1." at a sentence end, where it reads like "has 16.". Masking them keeps every
    # sentence boundary where it was, so both splits line up.
    pairs = list(zip(sentences(answer), sentences(mask_enumerators(answer)), strict=True))
    backing: list[list[str]] = [sources] * len(pairs)
    if embed is not None:
        candidates = claims.passage_sentences(sources)
        with_figures = [i for i, (_, plain) in enumerate(pairs) if figures(plain) - asked]
        cos = claims.cosine_rows(embed, [pairs[i][1] for i in with_figures], candidates)
        for row, i in enumerate(with_figures):
            claim = strip_markers(pairs[i][1])
            if not claims.has_words(claim):
                continue  # a bare figure ("8000 [1]") has no words to find its sentence by
            ev = claims.evidence(claim, candidates, cosines=cos[row])
            if ev:  # no sentence backs it at all: the citation check speaks for it
                backing[i] = [candidates[j] for j in ev]
    out = []
    for (sent, plain), back in zip(pairs, backing):
        found = figures(plain) - asked
        unbacked = claims.unbacked_figures(plain, back, question)
        # "on the 14th of October 1066" with 1066 in the passage is grounded where it matters
        out.append((sent, unbacked if found and len(unbacked) == len(found) else []))
    return out


def drop_made_up_figures(answer: str, sources: list[str], question: str = "") -> tuple[str, list[str]]:
    """The answer without its sentences whose figures no source contains, and those figures."""
    kept, made_up = [], []
    for sent, bad in made_up_figures(answer, sources, question):
        made_up += [f for f in bad if f not in made_up]
        if not bad:
            kept.append(sent)
    return (" ".join(kept) if made_up else answer), made_up


# "When should I use LoRA?" asks for a condition; "When was/did ...?" for a date
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|old|often|far|big|large|fast|high|tall)\b|\bwhat (?:\w+[ -]){0,4}?"
    r"(?:rate|size|number|percentage|percent|year|date|accuracy|score|amount|count|price|cost|"
    r"temperature|speed|length|population)\b|\b(?:which|what) (?:year|decade|century)\b|"
    r"\bin which year\b|^when (?:was|were|did)\b", re.I)


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number or a date ("How many ...", "In which year ...")."""
    return bool(_QUANTITY.search(question.strip()))
