"""The `relevance` check's reading of a terse copied span: "ReLU [2]" is judged by the passage
sentence it was copied from, which says what it answers."""
from __future__ import annotations

from ..text import content_words, sentences, strip_markers
from . import claims

TERSE_WORDS = 4  # an answer of at most this many content words is read in its passage sentence


def terse_relevance(q_vec, answer: str, cited: tuple[int, ...], blocks: list[str], embed) -> float:
    """The question's cosine to the passage sentence a terse copied span comes from, or 0.

    "ReLU [2]" or "SHAP values [2]" says too little on its own to embed near "Which activation
    function helps with the vanishing gradient problem?" (cosine 0.12), yet the sentence it was
    copied from answers it (0.62): the 0.5B model lost 6 right extract answers on the corpus
    set to the relevance check that way. A sentence counts when it mentions every content word
    of the answer; among the `cited` passages' (all passages' when none is cited), the closest to
    the question. In notes a line's subject is often the line before ("PyTorch : A framework."
    then "Open Source software, made initially by Meta AI"), so each sentence is also read
    joined to the one before it in its passage."""
    answer = strip_markers(answer)
    if not 0 < len(content_words(answer)) <= TERSE_WORDS:
        return 0.0
    cited = [n for n in cited if 1 <= n <= len(blocks)] or range(1, len(blocks) + 1)
    homes = []
    for n in cited:
        sents = sentences(blocks[n - 1])
        for i, sent in enumerate(sents):
            if claims.mentions(content_words(sent), answer):
                homes += [sent] + ([f"{sents[i - 1]} {sent}"] if i else [])
    if not homes:
        return 0.0
    return max(float(v @ q_vec) for v in embed(homes))
