"""Claim-level verification: each answer sentence held against the passage sentences that back it.

Checking an answer against the passages as a whole lets a wrong claim through whenever the
passages hold its parts somewhere: "http.server listens on 80" passed because a passage
mentioned port 80 elsewhere (the page says 8000), and "two years [3]" answered a question about a
product that passage [3] never names. So each sentence is read as a claim:

- its **evidence** is the passage sentences that support it best, by word overlap with figures
  set aside (a figure must not vote for the sentence that holds it) or by embedding cosine;
- every **figure** it states must occur, as that whole figure, in its evidence (80 is not 8000);
- its **subject** (the names it uses and, when it names none of the question's terms, the
  question's most specific one) must occur in the passage it cites.

A question's terms are its names and its rare words: words the embedder's vocabulary has no
whole entry for ("frobnitz", "warranty"); common words ("speed", "default") are in every
vocabulary and say nothing about what is asked. Of those, the one found in the fewest retrieved
passages is what a fragment answer ("Two years [3]") must find in the passage it cites.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..text import STOPWORDS, content_words, figures, sentences, strip_markers
from .names import CLAIM_NAME, name_body

log = logging.getLogger(__name__)

EVIDENCE_FLOOR = 0.3  # a passage sentence backing a claim less than this is no evidence for it
EVIDENCE_MARGIN = 0.15  # sentences this close to the best one are evidence too
EVIDENCE_MIN = 2  # ... and at least this many of the best: a claim may join two sentences

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z-]{4,}")


def _figure_blind(text: str) -> set[str]:
    return {w for w in content_words(text) if not w[:1].isdigit()}


def has_words(claim: str) -> bool:
    """Whether `claim` has content words besides its figures (something to find evidence by)."""
    return bool(_figure_blind(claim))


def support(claim: str, candidate: str) -> float:
    """Share of the claim's content words (figures aside) that `candidate` holds, 0..1."""
    words = _figure_blind(claim)
    return len(words & _figure_blind(candidate)) / len(words) if words else 0.0


def evidence(claim: str, candidates: list[str], *, cosines: Iterable[float] | None = None,
             floor: float = EVIDENCE_FLOOR, margin: float = EVIDENCE_MARGIN,
             minimum: int = EVIDENCE_MIN) -> list[int]:
    """Indexes of the `candidates` (passage sentences) that back `claim` best, best first.

    A candidate's score is the larger of word overlap and its cosine to the claim (`cosines`,
    aligned with `candidates`); those within `margin` of the best, and the best `minimum` in any
    case, are the evidence, as long as they score `floor` at least."""
    if not candidates:
        return []
    cos = list(cosines) if cosines is not None else [0.0] * len(candidates)
    scores = [max(support(claim, c), float(x)) for c, x in zip(candidates, cos)]
    order = sorted(range(len(candidates)), key=lambda j: -scores[j])
    best = scores[order[0]]
    return [j for rank, j in enumerate(order)
            if scores[j] >= floor and (rank < minimum or scores[j] >= best - margin)]


def unbacked_figures(claim: str, backing: list[str], question: str = "") -> list[str]:
    """The figures of `claim` that none of the `backing` sentences (nor the question) states."""
    known = figures(question).union(*(figures(s) for s in backing))
    return sorted(figures(claim) - known)


# ---------------------------------------------------------------- subjects

class Vocabulary:
    """The whole words of an embedder's vocabulary (WordPiece entries without `##`), to tell
    rare terms from common words; empty when the embedder has none, and then no word is rare."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words = frozenset(w.lower() for w in words if w.isalpha())

    @classmethod
    def of(cls, embedder) -> "Vocabulary":
        """Read from the embedder's folder (`vocab.txt`, else `tokenizer.json`) without loading
        the model; empty for an embedder with neither."""
        folder = Path(getattr(embedder, "path", "") or ".")
        try:
            if (folder / "vocab.txt").is_file():
                words = (folder / "vocab.txt").read_text(encoding="utf-8").split()
            elif (folder / "tokenizer.json").is_file():
                vocab = (json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
                         .get("model") or {}).get("vocab") or {}
                words = list(vocab) if isinstance(vocab, dict) else [v[0] for v in vocab if v]
            else:
                words = []
        except (OSError, ValueError, TypeError, IndexError):
            log.warning("cannot read the embedder's vocabulary in %s; rare terms are not checked", folder)
            words = []
        return cls(w for w in words if not w.startswith("##"))

    def __bool__(self) -> bool:
        return bool(self.words)

    def rare(self, text: str) -> list[str]:
        """Words of five letters or more in `text` that the vocabulary lacks, lower case, in order."""
        if not self.words:
            return []
        out = []
        for w in _WORD.findall(text):
            low = w.lower().strip("-")
            # "autoencoders" is rare, "models" is "model" plus a plural the vocabulary need not list
            if low in STOPWORDS or low in self.words or re.sub(r"(?:es|s)$", "", low) in self.words:
                continue
            if all(part in self.words for part in low.split("-") if part):
                continue  # "state-space": each half is a common word
            if ORDINARY_FORMS and self.ordinary(low):
                continue
            if low not in out:
                out.append(low)
        return out

    def ordinary(self, word: str) -> bool:
        """Whether `word` (lower case), which the vocabulary lacks, is still an ordinary word
        made of ones it has: a common prefix on a word ("untrusted", "underfitting"), a word
        inflected ("queried" from "query"), or two words of four letters or more joined
        ("drawback"). A WordPiece vocabulary keeps about 30,000 whole words, so many ordinary
        words are missing from it, and the documents' not using one says nothing about whether
        they answer the question. A coined term ("difftool", "distillation", "mamba") is none of
        these and stays rare."""
        def known(w: str) -> bool:
            return len(w) >= 4 and (w in self.words or any(
                w.endswith(end) and w[:-len(end)] + base in self.words
                for end, base in _INFLECTIONS if len(w) - len(end) >= 3))

        if known(word):
            return True
        if any(word.startswith(p) and known(word[len(p):]) for p in _PREFIXES):
            return True
        return any(known(word[:i]) and known(word[i:]) for i in range(4, len(word) - 3))


# A rare word made of common ones is an ordinary word (`Vocabulary.ordinary`): measured on the
# dev splits, the retrieval gate turned away an answerable question for "untrusted" and no
# unanswerable one is let through by this (docs/checks.md). False: every word the
# vocabulary lacks is rare, as before.
ORDINARY_FORMS = True
_PREFIXES = ("under", "over", "non", "un", "re", "mis", "pre", "dis", "out", "sub", "super", "inter")
# (ending, what replaces it) of the inflections read back to a vocabulary word
_INFLECTIONS = (("ied", "y"), ("ies", "y"), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("er", ""),
                ("ers", ""), ("es", ""), ("s", ""), ("ly", ""), ("ness", ""), ("ment", ""), ("ments", ""))


def names(sentence: str) -> list[str]:
    """Capitalised words past the sentence's (or list item's) first word, and acronyms."""
    return list(dict.fromkeys(m.group(0).strip("-") for m in CLAIM_NAME.finditer(name_body(sentence))
                              if len(m.group(0)) > 1))


def key_terms(text: str, vocabulary: Vocabulary, *, question: bool = False) -> list[str]:
    """What `text` is about: its names and rare terms. A question's first word is never a name
    ("Which", "How"), but an acronym there is ("RLHF stands for what?")."""
    found = names(text) if not question else [
        m.group(0).strip("-") for m in CLAIM_NAME.finditer(text.strip()) if len(m.group(0)) > 1]
    rare = [w for w in vocabulary.rare(strip_markers(text)) if w not in {n.lower() for n in found}]
    return list(dict.fromkeys([*found, *rare]))


def mentions(passage_words: set[str], term: str) -> bool:
    """Whether a passage (its `content_words`) holds every word of `term`, suffixes folded."""
    words = content_words(term)
    return bool(words) and words <= passage_words


@dataclasses.dataclass(frozen=True)
class Subject:
    """What a sentence must find in the passage it cites: all of `own` and, when not empty, one
    of `asked` (the question's terms, required when the sentence names none of them)."""

    own: tuple[str, ...]
    asked: tuple[str, ...] = ()

    def missing(self, passage_words: set[str]) -> list[str]:
        out = [t for t in self.own if not mentions(passage_words, t)]
        if self.asked and not any(mentions(passage_words, t) for t in self.asked):
            out.append(" or ".join(self.asked))
        return out


def subject(sentence: str, question_terms: list[str], specific_terms: list[str] | None = None) -> Subject:
    """What `sentence` must find in the passage it cites: the names it uses and, when it names
    none of the `question_terms`, one of the `specific_terms` (default: all of them; see
    `specific`). A sentence's own rare words are not required: "visualization" is no entry of
    MiniLM's vocabulary and still no subject."""
    said = content_words(strip_markers(sentence))
    named = any(content_words(t) <= said for t in question_terms)
    asked = question_terms if specific_terms is None else specific_terms
    return Subject(tuple(names(sentence)), () if named else tuple(asked))


def specific(terms: list[str], passage_words: list[set[str]]) -> list[str]:
    """The most specific of a question's `terms`: those found in the fewest of the retrieved
    passages (their `content_words`; in one at least). For "How long does the frobnitz warranty
    last?" that is "frobnitz" when every passage speaks of some warranty; a term no passage uses
    is not asked of any (the passages may word it otherwise)."""
    counts = {t: sum(mentions(w, t) for w in passage_words) for t in terms}
    found = [n for n in counts.values() if n]
    return [t for t in terms if found and counts[t] == min(found)]


def passage_sentences(passages: list[str]) -> list[str]:
    """Every sentence of `passages`, in order."""
    return [s for p in passages for s in sentences(p)]


def cosine_rows(embed: Callable[[list[str]], np.ndarray], claims: list[str],
                candidates: list[str]) -> np.ndarray:
    """Cosines between each claim, its figures aside, and each candidate sentence (unit vectors
    from `embed`)."""
    if not claims or not candidates:
        return np.zeros((len(claims), len(candidates)), dtype=np.float32)
    # figures are left out of the claims: "port 80" must not pull towards the sentence holding 80
    vecs = embed([_NUMBER.sub(" ", strip_markers(c)) for c in claims] + candidates)
    return vecs[:len(claims)] @ vecs[len(claims):].T
