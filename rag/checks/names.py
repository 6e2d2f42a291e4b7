"""Finding names: the capitalised words and acronyms the answer checks read as what a question,
an answer sentence or a claim is about.

Three patterns, each matching exactly what its check has always matched. They differ in where a
capitalised word counts as a sentence start rather than a name:

- `QUESTION_NAME` (the retrieval gate, `question_names`): read on a whole question, so it skips
  the first word and a word after ". ", "? ", "! " or ": "; a capital after "; " is a name.
- `CLAIM_NAME` (the claims check: `claims.names`, `claims.key_terms`): the same, and a word after
  "; " is a sentence start too.
- `ANSWER_NAME` (the made-up-names check): read on a sentence body whose first word is already
  removed (`name_body`) in an answer already split into sentences, so only "; " starts one:
  "e.g. DeepMind" and "J. Minaj" are names.

Unifying them would change what the gate turns away, what a claim must find in its passage and
which sentences are cut as made up, so it changes answers: it needs a `rag eval` on the corpus
set (before and after, same model and seed), not a tidy-up.
"""
from __future__ import annotations

import re

from ..text import ABBREVIATIONS, strip_markers

QUESTION_NAME = re.compile(r"(?<!^)(?<![.?!:]\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")
CLAIM_NAME = re.compile(r"(?<!^)(?<![.?!:;]\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")
ANSWER_NAME = re.compile(r"(?<!;\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")

# what may come before a sentence's first word: "- Whisper", "1. **Visualization**:", "## Summary"
ITEM_START = re.compile(r"^[\s\"'“‘(#*_>•-]*(?:\d{1,2}[.)])?[\s\"'“‘(*_]*")
# "Dr", "Prof", "Fig" and the like are capitalised without naming anything
TITLES = frozenset(ABBREVIATIONS)
# an abbreviation in brackets after the words it shortens: small models coin these ("(DLAS)")
COINED = re.compile(r"(?<=\w)\s*\(([A-Z][A-Z0-9-]+s?)\)")


def question_names(question: str) -> list[str]:
    """The names a question is about: capitalised words past its first word, and acronyms."""
    return list(dict.fromkeys(m.group(0).strip("-") for m in QUESTION_NAME.finditer(question.strip())))


def name_body(sentence: str) -> str:
    """A sentence without its markers, its list-item lead and its first word, which is
    capitalised as a sentence start: where its names are looked for."""
    body = strip_markers(sentence)
    body = body[ITEM_START.match(body).end():]
    return re.sub(r"^[\w'’-]+", "", body)
