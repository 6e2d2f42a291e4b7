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
import unicodedata
from typing import Callable

import numpy as np

from .types import Hit

_STOP = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been
being it its this that these those there here which who whom what when where why how do does did
can could should would may might will shall not no yes than then so such into about over under also
other some any each more most very just only your you our we they them their he she his her i me my
whether while whose both either neither all many much few own same too via per
passage passages context answer question according""".split())
# A full stop after an abbreviation or an initial ends no sentence: "(e.g. XGBoost, ...)" split
# there left "Gradient Boosting Machines (e.g." as a sentence of its own, and compression kept
# it without the names that answer the question. Each look-behind is fixed-width, as `re` needs.
_ABBREVIATIONS = ("cf", "vs", "al", "Fig", "Figs", "Eq", "Dr", "Mr", "Mrs", "Ms", "Prof")
_ABBREV = "".join(rf"(?<!\b{a}\.)" for a in ("[eE]\\.g", "[iI]\\.e", *_ABBREVIATIONS, "[A-Z]"))
_SENT = re.compile(rf"(?<=[.!?]){_ABBREV}\s+(?=[A-Z0-9\"'“‘(\[])|\n+")
_CITE = re.compile(r"\s*\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")

SUPPORT_MIN = 0.5  # below this a citation is dropped and no source is attached
# a cited passage that supports its sentence this much less than another passage gives way to it
REPOINT_MARGIN = 0.1

# Diagram source (mermaid arrows, fences) carries structure a reader sees rendered; in a prompt it
# is noise that a small model copies into its answer instead of the sentences around it.
_DIAGRAM = re.compile(r"^[ \t]*(?:```.*|(?:graph|flowchart)\s+(?:TD|TB|LR|RL|BT)\b.*|.*-->.*)$\n?", re.M)

# Numbers: "0.001", "1,024", "9.2%", "7B". A list enumerator ("1. ", "2) ") is not one, at a line
# start or inline after a space, as small models write lists ("including: 1. denoising 2. ...").
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_ENUMERATOR = re.compile(r"(?:^|(?<=\s))\d{1,2}[.)](?=\s)", re.M)
_NUMBER_WORDS = frozenset("""one two three four five six seven eight nine ten eleven twelve thirteen
fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
ninety hundred thousand million billion trillion dozen half twice once first second third""".split())
# questions whose answer is a quantity or a date
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|old|often|far|big|large|fast|high|tall)\b|\bwhat (?:\w+[ -]){0,4}?"
    r"(?:rate|size|number|percentage|percent|year|date|accuracy|score|amount|count|price|cost|"
    r"temperature|speed|length|population)\b|\b(?:which|what) (?:year|decade|century)\b|"
    r"\bin which year\b|^when\b", re.I)
# a capitalised word that does not start the question, or an acronym anywhere: "Mamba", "BERT"
_NAME = re.compile(r"(?<!^)(?<![.?!:]\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")


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


def strip_markers(text: str) -> str:
    return _CITE.sub("", text).strip()


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


def check_citations(answer: str, blocks: list[str], *, embed,
                    relevance: list[float] | None = None) -> CheckedAnswer:
    """Keep the [n] markers whose passage supports their sentence; move or remove the others.

    A marker whose passage supports the sentence clearly less than another passage does is moved
    to that passage; one that no passage supports is removed. With `relevance` (the passages'
    retrieval scores), a marker among passages that support the sentence about equally well goes
    to the one ranked highest for the question. `embed` maps a list of texts to unit vectors
    (the retrieval embedder). If no supported citation is left, the passage that best supports
    the whole answer is attached.
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
        support = [max(lexical_support(sent, b), float(c)) for b, c in zip(blocks, cos[i])]
        best = int(np.argmax(support)) + 1
        if relevance is not None:
            # of the passages that back the sentence about equally well, the one retrieval ranked
            # highest for the question is the source a reader should check
            best = _most_relevant(support, relevance, default=best)
        emitted: set[int] = set()  # "[1][2]" are two markers; a moved one must not repeat the other

        def keep_marker(m: re.Match) -> str:
            good: list[int] = []
            for part in m.group(1).split(","):
                n = int(part)
                in_range = 1 <= n <= len(blocks)
                if in_range and support[n - 1] >= SUPPORT_MIN \
                        and support[n - 1] >= max(support) - REPOINT_MARGIN \
                        and (relevance is None or relevance[n - 1] >= relevance[best - 1]):
                    chosen = n
                else:
                    if in_range and n not in dropped:
                        dropped.append(n)
                    if support[best - 1] < SUPPORT_MIN:
                        continue
                    chosen = best  # small models often cite a neighbour of the passage they copied from
                if chosen not in emitted:
                    good.append(chosen)
                    emitted.add(chosen)
                if chosen not in kept:
                    kept.append(chosen)
            return " " + "".join(f"[{n}]" for n in good) if good else ""
        out.append(_CITE.sub(keep_marker, sent).strip())
    text = " ".join(out)
    whole = [max(lexical_support(answer, b), float(c)) for b, c in zip(blocks, b_vecs @ a_vec)]
    best = int(np.argmax(whole))
    if relevance is not None:
        best = _most_relevant(whole, relevance, default=best + 1) - 1
    inferred: tuple[int, ...] = ()
    if not kept and whole[best] >= SUPPORT_MIN:
        inferred = (best + 1,)
        text = f"{text} [{best + 1}]"
    return CheckedAnswer(text, tuple(kept), tuple(d for d in dropped if d not in kept), inferred,
                         float(max(whole)))


def strip_diagrams(text: str) -> str:
    return _DIAGRAM.sub("", text)


# Markdown a reader sees rendered: a link shows its text, bold shows plain. In a prompt the
# addresses cost tokens and the markers split a name a small model should copy whole.
_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"\n]*\")?\)")
_MD_BOLD = re.compile(r"(\*\*)(?=\S)(.+?)(?<=\S)\1")  # "__" is left alone: it is also in __init__


def plain_markup(text: str) -> str:
    return _MD_BOLD.sub(r"\2", _MD_LINK.sub(r"\1", text))


def _sentence_key(sentence: str) -> str:
    """A sentence with case, punctuation and list bullets set aside: the .md and .txt copies of
    one note give the same key."""
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", sentence).casefold()))


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(_ENUMERATOR.sub(" ", _CITE.sub(" ", text)))}


def drop_made_up_figures(answer: str, sources: list[str], question: str = "") -> tuple[str, list[str]]:
    """The answer without its sentences whose figures no source contains, and those figures.

    A figure the passages do not contain is the surest sign of a made-up answer: a small model
    asked for a learning rate or a year it cannot find will still write one, often around a
    grounded sentence that is worth keeping. Figures the question gave count as known."""
    asked = _numbers(question)
    known = asked.union(*(_numbers(s) for s in sources))
    # Enumerators are told apart in the whole answer: split into sentences, "including: 1. Image"
    # leaves "1." at a sentence end, where it reads like "has 16.". Masking them with a capital
    # keeps every sentence boundary where it was, so both splits line up.
    masked = _mask_enumerators(answer)
    kept, made_up = [], []
    for sent, plain in zip(sentences(answer), sentences(masked), strict=True):
        figures = _numbers(plain) - asked
        # "on the 14th of October 1066" with 1066 in the passage is grounded where it matters
        if figures and not figures & known:
            made_up += sorted(f for f in figures if f not in made_up)
        else:
            kept.append(sent)
    return (" ".join(kept) if made_up else answer), made_up


_LEAD_CITE = re.compile(rf"(?:{_CITE.pattern})*\s*")
# what may come before a sentence's first word: "- Whisper", "1. **Visualization**:", "## Summary"
_ITEM_START = re.compile(r"^[\s\"'“‘(#*_>•-]*(?:\d{1,2}[.)])?[\s\"'“‘(*_]*")
# in an answer already split into sentences, any capitalised word but the first may be a name
# ("e.g. DeepMind", "J. Minaj"); one after a semicolon is a sentence start in all but name
_ANSWER_NAME = re.compile(r"(?<!;\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")
_TITLES = frozenset(_ABBREVIATIONS)
# an abbreviation in brackets after the words it shortens: small models coin these ("(DLAS)")
_COINED = re.compile(r"(?<=\w)\s*\(([A-Z][A-Z0-9-]+s?)\)")


def drop_made_up_names(answer: str, *, unknown: Callable[[list[str]], list[str]]) -> tuple[str, list[str]]:
    """The answer without its sentences naming what the documents never mention, and those names.

    The counterpart of `drop_made_up_figures` for names: a small model asked who made PyTorch
    wrote a pop singer, and "NEAT" became a game "by DeepMind". A name is a capitalised word past
    a sentence's (or list item's) start, or an acronym; `unknown` returns those of a list that
    are nowhere in the documents. An abbreviation the model coined in brackets ("neural
    architecture search (DLAS)") is removed and the sentence kept: the words it shortens are
    what the sentence says."""
    kept, made_up, coined = [], [], set()
    dropped = False
    for sent in sentences(answer):
        # "engineer. [4] It ..." splits after the full stop: the marker goes with its sentence
        lead = _LEAD_CITE.match(sent).group(0)
        if lead.strip() and kept:
            if not dropped:
                kept[-1] += " " + lead.strip()
            sent = sent[len(lead):]
        if not strip_markers(sent):
            continue
        here = set(unknown([m.group(1) for m in _COINED.finditer(sent)]))
        coined |= here
        sent = _COINED.sub(lambda m: "" if m.group(1) in here else m.group(0), sent)
        body = strip_markers(sent)
        body = body[_ITEM_START.match(body).end():]
        body = re.sub(r"^[\w'’-]+", "", body)  # the first word is capitalised as a sentence start
        names = list(dict.fromkeys(m.group(0) for m in _ANSWER_NAME.finditer(body)
                                   if len(m.group(0)) > 1 and m.group(0) not in _TITLES))
        missing = unknown(names) if names else []
        made_up += [n for n in missing if n not in made_up]
        dropped = bool(missing)
        if not dropped:
            kept.append(sent)
    if made_up:
        return " ".join(kept), made_up
    # nothing cut: the answer keeps its layout (lists, line breaks), less the coined abbreviations
    return _COINED.sub(lambda m: "" if m.group(1) in coined else m.group(0), answer), []


def _mask_enumerators(text: str) -> str:
    """List numbers replaced by "NN" (one capital would read as an initial, which ends no
    sentence): those at a line start or after a colon, and the ones that continue such a list
    ("including: 1. denoising 2. ..."). "has 16. It" keeps its figure."""
    out, last, expect = [], 0, None
    for m in _ENUMERATOR.finditer(text):
        before = text[:m.start()].rstrip(" \t")
        n = int(m.group(0)[:-1])
        if not before or before.endswith(("\n", ":")) or n == expect:
            out += [text[last:m.start()], "NN" + m.group(0)[-1]]
            last, expect = m.end(), n + 1
    return "".join(out) + text[last:]


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number or a date ("How many ...", "In which year ...")."""
    return bool(_QUANTITY.search(question.strip()))


def states_quantity(text: str) -> bool:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return bool(_numbers(text)) or bool(words & _NUMBER_WORDS)


def question_names(question: str) -> list[str]:
    """The names a question is about: capitalised words past its first word, and acronyms."""
    return list(dict.fromkeys(m.group(0).strip("-") for m in _NAME.finditer(question.strip())))


def _most_relevant(support: list[float], relevance: list[float], *, default: int) -> int:
    """1-based number of the most question-relevant passage among those supporting about as well
    as the best one; `default` when none supports well enough."""
    floor = max(SUPPORT_MIN, max(support) - REPOINT_MARGIN)
    near = [j for j, x in enumerate(support) if x >= floor]
    return max(near, key=lambda j: relevance[j]) + 1 if near else default


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
        keys = [_sentence_key(x) for x in ss]
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
