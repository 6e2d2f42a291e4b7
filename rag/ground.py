"""Grounding: keep the context to the sentences that matter, and check that every citation in
an answer points at a passage that supports the sentence citing it.

Support between a sentence and a passage is the larger of two measures: lexical recall (the
share of the sentence's content words found in the passage) and the embedder's cosine
similarity. Either alone misleads: paraphrases share few words, and generic sentences embed
close to everything on the same topic.
"""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from .types import Hit

_STOP = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been
being it its this that these those there here which who whom what when where why how do does did
can could should would may might will shall not no yes than then so such into about over under also
other some any each more most very just only your you our we they them their he she his her i me my
passage passages context answer question according""".split())
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_CITE = re.compile(r"\s*\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")

SUPPORT_MIN = 0.5  # below this a citation is dropped and no source is attached


_WRAP = re.compile(r"(?<![.!?:;\n])\n(?=[a-z(])")


def sentences(text: str) -> list[str]:
    # a line break inside a sentence (hard-wrapped text) is not a boundary; one after a heading is
    text = _WRAP.sub(" ", text)
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


def content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", _CITE.sub(" ", text).lower())
    # crude suffix folding so that "encoders" meets "encoder" and "learned" meets "learn"
    return {re.sub(r"(ing|ed|es|s|e)$", "", w) if len(w) > 3 else w
            for w in words if w not in _STOP and len(w) > 1}


def lexical_support(sentence: str, passage: str) -> float:
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


@dataclasses.dataclass(frozen=True)
class CheckedAnswer:
    text: str
    cited: tuple[int, ...]  # supported block numbers, in order of first use
    dropped: tuple[int, ...]  # cited, but the passage does not support the sentence
    inferred: tuple[int, ...]  # attached because the answer cited nothing supported
    support: float  # best support of the answer by any passage, 0..1


def check_citations(answer: str, blocks: list[str], *, embed) -> CheckedAnswer:
    """Keep the [n] markers whose passage supports their sentence; remove the others.

    `embed` maps a list of texts to unit vectors (the retrieval embedder). If no supported
    citation is left, the passage that best supports the whole answer is attached.
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
    for i, sent in enumerate(sents):
        def keep_marker(m: re.Match) -> str:
            good = []
            for part in m.group(1).split(","):
                n = int(part)
                if not 1 <= n <= len(blocks):
                    continue
                support = max(lexical_support(sent, blocks[n - 1]), float(cos[i, n - 1]))
                if support >= SUPPORT_MIN:
                    good.append(n)
                    kept.append(n) if n not in kept else None
                elif n not in dropped:
                    dropped.append(n)
            return " " + "".join(f"[{n}]" for n in good) if good else ""
        out.append(_CITE.sub(keep_marker, sent).strip())
    text = " ".join(out)
    whole = [max(lexical_support(answer, b), float(c)) for b, c in zip(blocks, b_vecs @ a_vec)]
    best = int(np.argmax(whole))
    inferred: tuple[int, ...] = ()
    if not kept and whole[best] >= SUPPORT_MIN:
        inferred = (best + 1,)
        text = f"{text} [{best + 1}]"
    return CheckedAnswer(text, tuple(kept), tuple(d for d in dropped if d not in kept), inferred,
                         float(max(whole)))


def compress(question: str, hits: list[Hit], *, embed, keep_ratio: float = 0.5) -> list[Hit]:
    """Shrink each passage to its sentences most related to the question, in their original order,
    plus the sentence after each of the two best (a heading that matches is followed by its content).

    Prefill dominates answer latency on a CPU, and a small model copies better from a short,
    focused passage. Passages of one or two sentences are kept whole.
    """
    split = [sentences(h.chunk.text) for h in hits]
    flat = [s for ss in split for s in ss]
    if not flat:
        return hits
    vecs = embed([question] + flat)
    q, s_vecs = vecs[0], vecs[1:]
    q_words = content_words(question)
    out: list[Hit] = []
    pos = 0
    for hit, ss in zip(hits, split):
        n = len(ss)
        cos = s_vecs[pos:pos + n] @ q
        pos += n
        if n <= 2:
            out.append(hit)
            continue
        lex = np.array([len(q_words & content_words(s)) / (len(q_words) or 1) for s in ss])
        score = 0.5 * cos + 0.5 * lex
        keep = max(2, math.ceil(n * keep_ratio))
        ranked = np.argsort(-score).tolist()
        chosen = set(ranked[:keep])
        # a matching heading or lead-in is usually followed by the statement that answers it
        chosen |= {i + 1 for i in ranked[:2] if i + 1 < n}
        best = sorted(chosen)
        text = "\n".join(ss[i] for i in best)
        out.append(dataclasses.replace(hit, chunk=dataclasses.replace(hit.chunk, text=text)))
    return out
