"""The first stage: the question as the later stages read it, or a `QueryError` saying why
there is none."""
from __future__ import annotations

import re
import unicodedata

from .errors import QueryError

MAX_QUESTION_CHARS = 4000
# control characters (an ANSI escape, a NUL) mean nothing to retrieval and showed in a source
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_question(question: str) -> str:
    """The question with control characters and runs of white space removed; QueryError if
    nothing is left or it is too long."""
    if not isinstance(question, str):
        raise QueryError("the question must be text")
    question = unicodedata.normalize("NFC", _CONTROL.sub(" ", question))
    question = " ".join(question.split())
    if not question:
        raise QueryError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question is {len(question)} characters long; the limit is "
                         f"{MAX_QUESTION_CHARS}")
    return question
