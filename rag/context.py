"""Stage 6a: the context the model reads: each retrieved passage shrunk to the sentences that
matter for the question, markup read as rendered, repeated sentences given once.

Prefill dominates answer latency on a CPU, and a small model copies better from a short,
focused passage.
"""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from .text import content_words, normalise, sentences
from .types import Hit

# Diagram source (mermaid arrows, fences) carries structure a reader sees rendered; in a prompt it
# is noise that a small model copies into its answer instead of the sentences around it.
_DIAGRAM = re.compile(r"^[ \t]*(?:```.*|(?:graph|flowchart)\s+(?:TD|TB|LR|RL|BT)\b.*|.*-->.*)$\n?", re.M)


def strip_diagrams(text: str) -> str:
    return _DIAGRAM.sub("", text)


# Markdown a reader sees rendered: a link shows its text, bold shows plain. In a prompt the
# addresses cost tokens and the markers split a name a small model should copy whole.
_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"\n]*\")?\)")
_MD_BOLD = re.compile(r"(\*\*)(?=\S)(.+?)(?<=\S)\1")  # "__" is left alone: it is also in __init__


def plain_markup(text: str) -> str:
    return _MD_BOLD.sub(r"\2", _MD_LINK.sub(r"\1", text))


def compress(question: str, hits: list[Hit], *, embed, keep_ratio: float = 0.5) -> list[Hit]:
    """Shrink each passage to its sentences most related to the question, in their original order,
    plus the sentence after each of the two best (a heading that matches is followed by its content).

    Prefill dominates answer latency on a CPU, and a small model copies better from a short,
    focused passage. Passages of one or two sentences are kept whole.
    """
    split = [sentences(strip_diagrams(plain_markup(h.chunk.text))) for h in hits]
    flat = [s for ss in split for s in ss]
    if not flat:
        return hits
    vecs = embed([question] + flat)
    q, s_vecs = vecs[0], vecs[1:]
    q_words = content_words(question)
    out: list[Hit] = []
    seen: set[str] = set()
    pos = 0
    for hit, ss in zip(hits, split):
        n = len(ss)
        cos = s_vecs[pos:pos + n] @ q
        pos += n
        keys = [normalise(x) for x in ss]
        if n <= 2:
            whole_keys = set(keys) - {""}
            if whole_keys and whole_keys <= seen:
                continue
            seen |= whole_keys
            whole = strip_diagrams(plain_markup(hit.chunk.text))
            out.append(hit if whole == hit.chunk.text else
                       dataclasses.replace(hit, chunk=dataclasses.replace(hit.chunk, text=whole.strip())))
            continue
        lex = np.array([len(q_words & content_words(s)) / (len(q_words) or 1) for s in ss])
        score = 0.5 * cos + 0.5 * lex
        keep = max(2, math.ceil(n * keep_ratio))
        ranked = np.argsort(-score).tolist()
        chosen = set(ranked[:keep])
        # a matching heading or lead-in is usually followed by the statement that answers it
        chosen |= {i + 1 for i in ranked[:2] if i + 1 < n}
        # a sentence already given by a better-ranked passage (a copy of the same note in another
        # format, overlapping chunks) adds tokens and nothing new
        best = [i for i in sorted(chosen) if not keys[i] or keys[i] not in seen]
        if not best:
            continue
        seen |= {keys[i] for i in best}
        text = "\n".join(ss[i] for i in best)
        out.append(dataclasses.replace(hit, chunk=dataclasses.replace(hit.chunk, text=text)))
    return out
