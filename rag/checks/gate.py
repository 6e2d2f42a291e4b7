"""The check before generation: whether the retrieved passages can answer the question at all
(the `retrieval` check). Turning a question away here costs no model call."""
from __future__ import annotations

from ..retrieve import has_terms
from .claims import Vocabulary
from .names import question_names
from .profiles import Policy
from .verdict import EMPTY_INDEX, LOW_RETRIEVAL, UNKNOWN_NAMES


def retrieval_gate(retriever, query: str, hits, pol: Policy, *,
                   vocabulary: Vocabulary | None = None) -> tuple[str, str]:
    """(code, reason) why the retrieved passages cannot answer `query`, or ("", "") when they may.

    With the embedder's `vocabulary` (and the `claims` check on), the question's rare terms
    ("frobnitz") count as names: a lower-case word the documents never use is as telling."""
    if not hits:
        if len(retriever.store) and not has_terms(query):  # "???", "and the": retrieval returns nothing
            return LOW_RETRIEVAL, "the question has no words to search for"
        return EMPTY_INDEX, "the index is empty"
    if not pol.on("retrieval"):
        return "", ""
    names = question_names(query)
    if vocabulary and pol.on("claims"):
        names += [w for w in vocabulary.rare(query) if w not in {n.lower() for n in names}]
    unknown = retriever.unknown(names)
    if unknown:
        # the question is about something the documents never mention, however close its topic
        return UNKNOWN_NAMES, "the documents never mention " + ", ".join(repr(w) for w in unknown)
    best = max(h.dense for h in hits)
    # MiniLM embeds rare acronyms poorly ("What does RLHF stand for?" scores 0.16 against the
    # passage that spells it out), so passages naming everything the question names still count
    if best < pol.min_score and not (names and retriever.mentioned(names, hits)):
        return LOW_RETRIEVAL, f"no passage is close to the question (best cosine {best:.2f} < {pol.min_score:.2f})"
    return "", ""
