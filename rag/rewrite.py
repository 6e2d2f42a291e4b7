"""Follow-up questions made standalone for retrieval, from the conversation so far.

"What are its disadvantages?" retrieves nothing useful on its own; with the subject of the last
question put in for the pronoun it finds the passages the user means.
"""
from __future__ import annotations

import re

from .types import Turn

_PRONOUN = re.compile(r"\b(it|its|they|their|them|this|that|these|those)\b", re.I)
_WH = re.compile(r"^\s*(?:what|which|who|whom|how|why|when|where|is|are|was|were|do|does|did|can|could|"
                 r"should|would|tell me|explain|describe|define)\b(?:\s+(?:is|are|was|were|do|does|did|the|a|an)\b)*\s*",
                 re.I)


_GENERIC = frozenset("""and or but so the a an of for about any more some other what why how
advantages disadvantages pros cons benefits drawbacks limitations problems issues examples example
uses use applications types kinds alternatives difference differences else""".split())


def _topic(question: str) -> str:
    """The subject of a question: "What are transformer networks?" -> "transformer networks"."""
    topic = _WH.sub("", question).strip(" ?.!")
    return re.sub(r"\s+(?:used for|used|mean|work|about)$", "", topic, flags=re.I)


def rewrite_query(question: str, history: list[Turn]) -> str:
    """Make a follow-up standalone for retrieval: "What are its disadvantages?" after "What are
    transformer networks?" becomes "What are transformer networks disadvantages?". A question
    that names its own subject is left alone."""
    if not history:
        return question
    topic = _topic(history[-1].question)
    if not topic:
        return question
    if _PRONOUN.search(question):
        return _PRONOUN.sub(topic, question, count=1)
    own = set(re.findall(r"[a-z]+", _topic(question).lower())) - _GENERIC
    if not own:  # "and the disadvantages?", "why?", "any examples?"
        return f"{topic} {question}"
    return question
