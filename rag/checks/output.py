"""Reading the model's output: the checks that tidy what a small model writes (`echo`, `length`,
`repeats`) and the one that reads a refusal as one (`refusal`)."""
from __future__ import annotations

import re

from ..text import CITE, normalise, stop_spans, strip_markers

_REFUSAL = re.compile(
    r"not found in (?:your|the) (?:documents|passages|context)|\bI (?:do not|don't|cannot|can't) "
    r"(?:know|find|answer)|\b(?:passages|context|documents) (?:do(?:es)? not|don't) "
    r"(?:contain|mention|say|provide)|no (?:relevant )?information (?:about|on|in)", re.I)
# A small model that starts copying the prompt's scaffolding has stopped answering. Early
# stopping (`rag.stopping`) reads the same pattern: both must agree on where the echo starts.
ECHO = re.compile(r"\n?\[\d{1,3}\]\s*\([^)\n]*\)\s*\n|</?(?:context|pre|section|div|p|span)\b[^>]*>|"
                  r"\n\s*Question\s*:", re.I)


def refused(text: str, *, strict: bool = True) -> bool:
    """Whether `text` is a refusal. Strictly, any refusal phrase makes it one; otherwise only an
    answer that cites nothing ("The passages do not mention the year, but LoRA ... [1]" answers)."""
    if not strip_markers(text):
        return not text.strip()
    if not _REFUSAL.search(text):
        return False
    return strict or not CITE.search(text)


def cut_echo(text: str) -> str:
    m = ECHO.search(text)
    return (text[:m.start()] if m else text).strip()


def drop_repeats(text: str) -> str:
    """Small models loop; keep each sentence once, the layout around the others as it was."""
    seen: set[str] = set()
    out, cursor, prev_end = [], 0, 0
    for start, end in stop_spans(text):
        key = normalise(text[start:end])
        if key and key in seen:  # the repeat goes with the space before it
            out.append(text[cursor:prev_end])
            cursor = end
        seen.add(key)
        prev_end = end
    out.append(text[cursor:])
    return "".join(out).strip()


def trim(text: str, max_sentences: int) -> str:
    """The first `max_sentences` sentences of `text` (0: all), the layout kept. "e.g." and
    initials end no sentence; a list item that ends in a full stop counts as one."""
    spans = stop_spans(text)
    if not max_sentences or len(spans) <= max_sentences:
        return text.strip()
    return text[:spans[max_sentences - 1][1]].strip()
