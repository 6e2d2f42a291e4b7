"""Grounding: check that every citation in an answer points at a passage that supports the
sentence citing it, and say for each sentence which passage backs it and how well.

Support between a sentence and a passage is the larger of two measures: lexical recall (the
share of the sentence's content words found in the passage) and the embedder's cosine
similarity. Either alone misleads: paraphrases share few words, and generic sentences embed
close to everything on the same topic.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..text import SPACED_CITE, content_words, sentences, strip_markers

SUPPORT_MIN = 0.5  # below this a citation is dropped and no source is attached
# a cited passage that supports its sentence this much less than another passage gives way to it
REPOINT_MARGIN = 0.1


def lexical_support(sentence: str, passage: str) -> float:
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


@dataclasses.dataclass(frozen=True)
class SentenceCheck:
    """One answer sentence: its text after the check, the passage that supports it best (block
    number, 0 for none) and that support, 0..1."""

    text: str
    passage: int
    support: float

    def supported(self, minimum: float = SUPPORT_MIN) -> bool:
        return self.passage > 0 and self.support >= minimum


@dataclasses.dataclass(frozen=True)
class CheckedAnswer:
    text: str
    cited: tuple[int, ...]  # supported block numbers, in order of first use
    dropped: tuple[int, ...]  # cited, but the passage does not support the sentence
    inferred: tuple[int, ...]  # attached because the answer cited nothing supported
    support: float  # best support of the answer by any passage, 0..1
    sentences: tuple[SentenceCheck, ...] = ()


def check_citations(answer: str, blocks: list[str], *, embed, relevance: list[float] | None = None,
                    min_support: float = SUPPORT_MIN, margin: float = REPOINT_MARGIN) -> CheckedAnswer:
    """Keep the [n] markers whose passage supports their sentence; move or remove the others.

    A marker whose passage supports the sentence clearly (`margin`) less than another passage
    does is moved to that passage; one that no passage supports `min_support` is removed. With
    `relevance` (the passages' retrieval scores), a marker among passages that support the
    sentence about equally well goes to the one ranked highest for the question. `embed` maps a
    list of texts to unit vectors (the retrieval embedder). If no supported citation is left, the
    passage that best supports the whole answer is attached.
    """
    sents = sentences(answer)
    if not sents or not blocks:
        return CheckedAnswer(answer, (), (), (), 0.0)
    vecs = embed(sents + blocks + [answer])
    s_vecs, b_vecs, a_vec = vecs[:len(sents)], vecs[len(sents):-1], vecs[-1]
    cos = s_vecs @ b_vecs.T
    kept: list[int] = []
    dropped: list[int] = []
    out: list[str] = []
    checks: list[SentenceCheck] = []
    for i, sent in enumerate(sents):
        support = [max(lexical_support(sent, b), float(c)) for b, c in zip(blocks, cos[i])]
        best = int(np.argmax(support)) + 1
        if relevance is not None:
            # of the passages that back the sentence about equally well, the one retrieval ranked
            # highest for the question is the source a reader should check
            best = _most_relevant(support, relevance, default=best, minimum=min_support, margin=margin)
        emitted: set[int] = set()  # "[1][2]" are two markers; a moved one must not repeat the other

        def keep_marker(m) -> str:
            good: list[int] = []
            for part in m.group(1).split(","):
                n = int(part)
                in_range = 1 <= n <= len(blocks)
                if in_range and support[n - 1] >= min_support \
                        and support[n - 1] >= max(support) - margin \
                        and (relevance is None or relevance[n - 1] >= relevance[best - 1]):
                    chosen = n
                else:
                    if in_range and n not in dropped:
                        dropped.append(n)
                    if support[best - 1] < min_support:
                        continue
                    chosen = best  # small models often cite a neighbour of the passage they copied from
                if chosen not in emitted:
                    good.append(chosen)
                    emitted.add(chosen)
                if chosen not in kept:
                    kept.append(chosen)
            return " " + "".join(f"[{n}]" for n in good) if good else ""
        text = SPACED_CITE.sub(keep_marker, sent).strip()
        out.append(text)
        if strip_markers(text):
            checks.append(SentenceCheck(text, best if support[best - 1] >= min_support else 0,
                                        round(float(support[best - 1]), 4)))
    text = " ".join(out)
    whole = [max(lexical_support(answer, b), float(c)) for b, c in zip(blocks, b_vecs @ a_vec)]
    best = int(np.argmax(whole))
    if relevance is not None:
        best = _most_relevant(whole, relevance, default=best + 1, minimum=min_support, margin=margin) - 1
    inferred: tuple[int, ...] = ()
    if not kept and whole[best] >= min_support:
        inferred = (best + 1,)
        text = f"{text} [{best + 1}]"
    return CheckedAnswer(text, tuple(kept), tuple(d for d in dropped if d not in kept), inferred,
                         float(max(whole)), tuple(checks))


def _most_relevant(support: list[float], relevance: list[float], *, default: int,
                   minimum: float = SUPPORT_MIN, margin: float = REPOINT_MARGIN) -> int:
    """1-based number of the most question-relevant passage among those supporting about as well
    as the best one; `default` when none supports well enough."""
    floor = max(minimum, max(support) - margin)
    near = [j for j, x in enumerate(support) if x >= floor]
    return max(near, key=lambda j: relevance[j]) + 1 if near else default
