"""Extractive answering: a GBNF grammar that lets the model write only a span copied from a passage.

A 135M model asked to answer in its own words paraphrases and invents ("the country was France"
where the passage says "the Dutch Republic"). Constrained decoding removes that freedom: the
answer is a run of consecutive words of one passage sentence followed by the citation of that
passage, or the abstain text. What the model still chooses is where the span starts and stops.

Rules are one per word position, `wI_J ::= "word" (" " wI_J+1)?`, so the grammar grows linearly
with the context (a rule per start/end pair would grow quadratically).
"""
from __future__ import annotations

import re

from .ground import sentences

# Spans never cross a sentence; words are the passage's whitespace-separated pieces, kept as written.
_ESCAPE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    return '"' + "".join(_ESCAPE.get(ch, ch) for ch in text) + '"'


def _start(word: str, rule: str) -> str:
    """A span may start with its first letter capitalised ("the Dutch" -> "The Dutch")."""
    if word[:1].islower() and word[:1].upper() != word[:1]:
        return f"[{word[0].upper()}{word[0]}] {literal(word[1:])}" if word[1:] else \
            f"[{word[0].upper()}{word[0]}]"
    return rule


def span_grammar(passages: list[str], *, abstain: str) -> str:
    """GBNF for "<span of passage n> [n]" over the numbered `passages` (1-based), or `abstain`.

    A span is one or more consecutive words of a single sentence of one passage.
    """
    rules: list[str] = []
    alternatives = [literal(abstain)]
    for n, passage in enumerate(passages, 1):
        starts: list[str] = []
        for i, sent in enumerate(sentences(passage)):
            words = sent.split()
            for j, word in enumerate(words):
                name = f"w{n}-{i}-{j}"
                tail = f' (" " w{n}-{i}-{j + 1})?' if j + 1 < len(words) else ""
                rules.append(f"{name} ::= {literal(word)}{tail}")
                first = _start(word, name)
                if first == name:
                    starts.append(name)
                else:  # the capitalised variant continues like the word itself
                    starts.append(f"{first}{tail}")
        if starts:
            rules.append(f"p{n} ::= ({' | '.join(starts)}) \" [{n}]\"")
            alternatives.append(f"p{n}")
    return "\n".join([f"root ::= {' | '.join(alternatives)}"] + rules) + "\n"


_LOOSE_PUNCT = re.compile(r"[,;:]+(?=\s*\[\d+\]\s*$)")


def tidy_span(text: str) -> str:
    """Drop the comma or colon a span ends on when it was cut mid-sentence ("Republic, [1]")."""
    return _LOOSE_PUNCT.sub("", text.strip())
