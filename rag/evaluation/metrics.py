"""The metric functions: answers against gold answers (SQuAD style), ranked documents against
gold documents, abstentions against unanswerable questions, and percentiles."""
from __future__ import annotations

import math
import re
import string
from collections import Counter

from ..text import content_words

# ------------------------------------------------------------------ answer metrics (SQuAD style)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def strip_citations(text: str) -> str:
    """The answer without its [n] markers, which are not part of what it says."""
    return _CITATION.sub("", text).strip()


def exact_match(prediction: str, golds: tuple[str, ...] | list[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: tuple[str, ...] | list[str]) -> float:
    """Best token-overlap F1 against any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if not pred or not ref:
            score = float(pred == ref)
        elif common == 0:
            score = 0.0
        else:
            p, r = common / len(pred), common / len(ref)
            score = 2 * p * r / (p + r)
        best = max(best, score)
    return best


def contains(prediction: str, golds: tuple[str, ...] | list[str]) -> float:
    """1 when a normalised gold answer appears as whole words inside the normalised prediction."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(g) and f" {normalize_answer(g)} " in pred for g in golds))


# ------------------------------------------------------------------ retrieval metrics

def recall_at_k(ranked: list[str], gold: set[str], k: int, *, any_source: bool = True) -> float:
    """any_source: 1 if a gold document is in the top k (each one holds the whole answer);
    otherwise the share of gold documents found in the top k (BEIR's definition)."""
    if not gold:
        return 0.0
    found = len(gold & set(ranked[:k]))
    return float(found > 0) if any_source else found / len(gold)


def mrr_at_k(ranked: list[str], gold: set[str], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: list[str], gold: set[str], k: int = 10, *, any_source: bool = True) -> float:
    """Binary-relevance nDCG. With any_source the gold documents are alternatives: the ideal
    ranking has one of them first and only the first one found earns gain."""
    if not gold:
        return 0.0
    dcg, seen = 0.0, False
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in gold and not (any_source and seen):
            dcg += 1.0 / math.log2(rank + 1)
            seen = True
    n_ideal = 1 if any_source else min(len(gold), k)
    return dcg / sum(1.0 / math.log2(r + 1) for r in range(1, n_ideal + 1))


def abstention_scores(abstained: list[bool], answerable: list[bool]) -> dict[str, float]:
    """Abstaining is the positive class and unanswerable questions are its gold; 0 where undefined."""
    tp = sum(a and not ok for a, ok in zip(abstained, answerable))
    fp = sum(a and ok for a, ok in zip(abstained, answerable))
    n_unanswerable = sum(not ok for ok in answerable)
    n_answerable = len(answerable) - n_unanswerable
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_unanswerable if n_unanswerable else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "false_abstention_rate": fp / n_answerable if n_answerable else 0.0}


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def list_contains(prediction: str, items: tuple[tuple[str, ...], ...] | list) -> float:
    """A list question: the share of its entries of which some alternative is in the prediction."""
    if not items:
        return 0.0
    return sum(contains(prediction, alts) for alts in items) / len(items)


# ------------------------------------------------------------------ the form of an answer
# Measured on the answer without its [n] markers. They catch what F1 against a short gold span
# cannot: an answer may hold the gold words and still be a fragment no user can read on its own.

MIN_CONTENT_WORDS = 4


def is_fragment(answer: str) -> bool:
    """Fewer than four content words (rag.text.content_words): "LoRA", "in 1973"."""
    return len(content_words(answer)) < MIN_CONTENT_WORDS


def is_echo(answer: str, question: str) -> bool:
    """Every content word of the answer is already in the question: it says nothing new."""
    return content_words(answer) <= content_words(question)


# A closed list of auxiliaries and common verbs; with the -s/-ed/-es endings below it finds a verb
# in nearly every English statement and in almost no title or noun phrase. A heuristic, not a
# parser: "Patterns of Trade Networks." ends in -s and passes, which the heading test catches
# only when every word is capitalised.
_VERBS = frozenset("""is are was were be been being am has have had do does did can could will would
shall should may might must get got make made take took give gave go went come came see saw know
knew use used find found keep kept hold held let put set run ran become became begin began bring
brought build built buy bought choose chose cut feel felt grow grew lead led leave left lose lost
mean meant meet met pay paid read say said sell sold send sent show shown stand stood tell told
think thought understand understood win won write wrote written allow allows need needs include
includes contain contains provide provides require requires""".split())
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_SMALL = frozenset("a an the of and or in on at to for by with from vs".split())


def _has_verb(words: list[str]) -> bool:
    for w in words:
        lw = w.lower()
        if lw in _VERBS:
            return True
        # inflected forms: "runs", "trained", "uses"; "ss" (class, process) is a noun ending
        if len(lw) > 3 and (lw.endswith("ed") or (lw.endswith("s") and not lw.endswith("ss"))):
            return True
    return False


def is_sentence(answer: str) -> bool:
    """A complete sentence: starts with a capital letter or a digit, ends with . ! or ? (markers
    removed first), has at least four words, is not heading-like (ends in a colon, or every word
    but a few small ones such as "of" and "the" is capitalised, as in a title) and holds a verb-like word (one of a
    closed list of auxiliaries and common verbs, or a word ending in -s, -es or -ed)."""
    text = strip_citations(answer).strip().strip("\"'“”‘’*_")
    if not text or not (text[0].isupper() or text[0].isdigit()):
        return False
    if text.endswith(":") or text[-1] not in ".!?":
        return False
    words = _WORD.findall(text)
    if len(words) < MIN_CONTENT_WORDS:
        return False
    long_words = [w for w in words if w.lower() not in _SMALL and w[0].isalpha()]
    if long_words and all(w[0].isupper() for w in long_words):
        return False  # "Steam Engines In The Industrial Revolution."
    return _has_verb(words)


def evidence_cited(cited_texts: list[str], evidence: tuple[str, ...] | list[str]) -> float:
    """1 when a cited passage holds one of the evidence strings (SQuAD normalisation on both, so
    punctuation, case and articles do not matter), else 0."""
    wanted = [e for e in (normalize_answer(x) for x in evidence) if e]
    texts = [f" {normalize_answer(t)} " for t in cited_texts]
    return float(any(f" {e} " in t for e in wanted for t in texts))
