"""The text toolkit every stage shares: sentences, citation markers, content words, figures and
one normal form for comparing texts. One of each, so that the prompt, the checks and the
evaluation never disagree on where a sentence ends or what a marker is.
"""
from __future__ import annotations

import re
import unicodedata

STOPWORDS = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been
being it its this that these those there here which who whom what when where why how do does did
can could should would may might will shall not no yes than then so such into about over under also
other some any each more most very just only your you our we they them their he she his her i me my
whether while whose both either neither all many much few own same too via per
passage passages context answer question according""".split())

# ---------------------------------------------------------------- citation markers

# "[1]", "[2, 3]": the marker of a numbered context block
CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# the same with the space before it, for removing markers from running text
SPACED_CITE = re.compile(r"\s*" + CITE.pattern)


def strip_markers(text: str) -> str:
    return SPACED_CITE.sub("", text).strip()


def cited_numbers(text: str, n_blocks: int) -> tuple[int, ...]:
    """Block numbers cited in `text`, in order of first use, only those from 1 to `n_blocks`."""
    out: list[int] = []
    for m in CITE.finditer(text):
        for part in m.group(1).split(","):
            n = int(part)
            if 1 <= n <= n_blocks and n not in out:
                out.append(n)
    return tuple(out)


# ---------------------------------------------------------------- sentences

# A full stop after an abbreviation or an initial ends no sentence: "(e.g. XGBoost, ...)" split
# there left "Gradient Boosting Machines (e.g." as a sentence of its own, and compression kept
# it without the names that answer the question. Each look-behind is fixed-width, as `re` needs.
ABBREVIATIONS = ("cf", "vs", "al", "Fig", "Figs", "Eq", "Dr", "Mr", "Mrs", "Ms", "Prof")
_ABBREV = "".join(rf"(?<!\b{a}\.)" for a in ("[eE]\\.g", "[iI]\\.e", *ABBREVIATIONS, "[A-Z]"))
_SENT = re.compile(rf"(?<=[.!?]){_ABBREV}\s+(?=[A-Z0-9\"'“‘(\[])|\n+")
# a line break inside a sentence (hard-wrapped text) is not a boundary; one after a heading is
_WRAP = re.compile(r"(?<![.!?:;\n])\n(?=[a-z(])")


def sentences(text: str) -> list[str]:
    """`text` split into sentences and lines, each stripped; empty pieces left out."""
    text = _WRAP.sub(" ", text)
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


# ---------------------------------------------------------------- words and normal forms

def content_words(text: str) -> set[str]:
    """Lower-case words of `text` that carry meaning, suffixes folded crudely ("encoders" meets
    "encoder", "learned" meets "learn"); markers, stopwords and one-letter words left out."""
    words = re.findall(r"[a-z0-9]+", SPACED_CITE.sub(" ", text).lower())
    return {re.sub(r"(ing|ed|es|s|e)$", "", w) if len(w) > 3 else w
            for w in words if w not in STOPWORDS and len(w) > 1}


def bare_words(text: str) -> str:
    """`text` without punctuation: a checked answer that differs from its draft only in the
    punctuation around a marker is the same answer."""
    return re.sub(r"[\W_]+", " ", text).strip()


def normalise(text: str) -> str:
    """Case, punctuation and bullets set aside, in any script: the .md and .txt copies of one
    note, or a sentence a model repeats, give the same key."""
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


# ---------------------------------------------------------------- figures

# Numbers: "0.001", "1,024", "9.2%", "7B". A list enumerator ("1. ", "2) ") is not one, at a line
# start or inline after a space, as small models write lists ("including: 1. denoising 2. ...").
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_ENUMERATOR = re.compile(r"(?:^|(?<=\s))\d{1,2}[.)](?=\s)", re.M)
NUMBER_WORDS = frozenset("""one two three four five six seven eight nine ten eleven twelve thirteen
fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
ninety hundred thousand million billion trillion dozen half twice once first second third""".split())


def figures(text: str) -> set[str]:
    """The numbers `text` states, thousands separators removed; enumerators and markers aside."""
    return {n.replace(",", "") for n in _NUMBER.findall(_ENUMERATOR.sub(" ", SPACED_CITE.sub(" ", text)))}


def states_quantity(text: str) -> bool:
    """Whether `text` gives a figure or a number word."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return bool(figures(text)) or bool(words & NUMBER_WORDS)


def mask_enumerators(text: str) -> str:
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


# how a reader counts the sentences of a model's answer: a full stop, "!" or "?" and a space end
# one whatever follows ("model. - Gradient" is two), abbreviations and initials aside
_STOP = re.compile(rf"(?<=[.!?]){_ABBREV}\s+")


def stop_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the pieces of `text` that end at sentence punctuation."""
    out, pos = [], 0
    for m in list(_STOP.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        if text[pos:end].strip():
            out.append((pos, end))
        if m:
            pos = m.end()
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets in `text` of the pieces `sentences` returns, so that a sentence can be
    cut or removed without flattening the line breaks around it."""
    flat = _WRAP.sub(" ", text)  # same length: offsets carry over
    out, pos = [], 0
    for m in list(_SENT.finditer(flat)) + [None]:
        end = m.start() if m else len(flat)
        piece = flat[pos:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((pos + lead, pos + len(piece.rstrip())))
        if m:
            pos = m.end()
    return out
