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


# A line that heads what follows it: a heading left in the text ("Word2Vec#", with the permalink
# mark of the page it was copied from; "## Setup") or a lead-in ending in a colon.
_HEADING = re.compile(r"^#{1,6}\s+\S|[#:]\s*$")
SECTION_MAX = 6  # sentences of a heading's section kept with it


def _section(ss: list[str], i: int) -> set[int]:
    """The sentences under heading `i`, up to the next heading or SECTION_MAX of them."""
    out: set[int] = set()
    for j in range(i + 1, min(len(ss), i + 1 + SECTION_MAX)):
        if _HEADING.search(ss[j]):
            break
        out.add(j)
    return out


def compress(question: str, hits: list[Hit], *, embed, keep_ratio: float = 0.5,
             sections: bool = True, rare: bool = False) -> list[Hit]:
    """Shrink each passage to its sentences most related to the question, in their original order.

    Kept always: what follows each of the two best sentences; with `sections`, a matching
    heading keeps its section ("Word2Vec#" keeps the lines under it down to "King - Man + Woman
    = Queen", which shares no word with "What vector arithmetic example illustrates word2vec?").
    With `rare`, also the sentence that best matches the question's rarest words (rare among the
    retrieved sentences). Measured on the corpus set with the 135M model, sections alone gained
    one "contains" on the 9 questions whose context they change; adding `rare` changed 2 more
    and turned a correct answer into an abstention, so it is off by default.

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
    words = [content_words(s) for s in flat]
    # a question word found in few of the retrieved sentences tells them apart; one in all, not
    rarity = {w: 1.0 / sum(w in ws for ws in words) for w in q_words if any(w in ws for ws in words)}
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
        here = words[pos - n:pos]
        lex = np.array([len(q_words & ws) / (len(q_words) or 1) for ws in here])
        rarest = np.array([sum(rarity.get(w, 0.0) for w in ws) for ws in here])
        score = 0.5 * cos + 0.5 * lex
        keep = max(2, math.ceil(n * keep_ratio))
        ranked = np.argsort(-score).tolist()
        chosen = set(ranked[:keep])
        if rare and rarest.max() > 0:
            chosen.add(int(np.argmax(rarest)))
        # a matching heading or lead-in is usually followed by the statement that answers it
        for i in ranked[:2]:
            if sections and _HEADING.search(ss[i]):
                chosen |= _section(ss, i)
            elif i + 1 < n:
                chosen.add(i + 1)
        # a sentence already given by a better-ranked passage (a copy of the same note in another
        # format, overlapping chunks) adds tokens and nothing new
        best = [i for i in sorted(chosen) if not keys[i] or keys[i] not in seen]
        if not best:
            continue
        seen |= {keys[i] for i in best}
        text = "\n".join(ss[i] for i in best)
        out.append(dataclasses.replace(hit, chunk=dataclasses.replace(hit.chunk, text=text)))
    return out
