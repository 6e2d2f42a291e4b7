"""The metric functions: answers against gold answers (SQuAD style), ranked documents against
gold documents, abstentions against unanswerable questions, percentiles, and the items of a
whole-document or whole-collection answer against gold entries and the index's chunks."""
from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass

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


# ------------------------------------------------------------------ whole-document and whole-collection answers
# A question of kind "list", "documents" or "summary" is answered from every relevant chunk, not the
# top k (rag/survey.py); its answer carries `items` (rag.types.FoundItem), each with the chunk it was
# read from. These metrics judge the items against the gold entries and against the index's chunks.

SCOPE_KINDS = ("list", "documents", "summary")
GROUNDED_SHARE = 0.8  # a reworded item counts as read from a chunk holding this share of its content words
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TOKEN = re.compile(r"(?:(?<![\w-])--?)?\w+")


def match_form(text: str) -> str:
    """`text` as the scope metrics compare it: case, punctuation, bullets and [n] markers set aside,
    words split at inner hyphens ("tree-based" reads "tree based"), but the leading - or -- of an
    option kept ("--no-contains" reads "--no contains", which does not name "--contains")."""
    return " ".join(_TOKEN.findall(unicodedata.normalize("NFKC", strip_citations(text)).casefold()))


def names(text: str, spelling: str) -> bool:
    """`spelling` is in `text` as whole words, both in `match_form`; its last word may carry a
    plural -s or -es ("GANs" names "GAN")."""
    want = match_form(spelling)
    if not want:
        return False
    hay = f" {match_form(text)} "
    return any(f" {want}{end} " in hay for end in ("", "s", "es"))


def mentions(text: str, spelling: str) -> bool:
    """The topic test of a documents question: `spelling` as written, case and runs of white space
    aside, not inside a longer word, with an optional plural -s or -es: "--abort", "ORIG_HEAD",
    "GAN" ("GANs", not "organ"). As grep finds it: "rerere" is in "--rerere-autoupdate", where
    `names` reads an option "--rerere"."""
    words = spelling.split()
    if not words:
        return False
    body = r"\s+".join(re.escape(w) for w in words)
    start = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    end = r"(?:e?s)?(?!\w)" if re.search(r"\w$", words[-1]) else ""
    return re.search(start + body + end, text, re.IGNORECASE) is not None


def same_file(name: str, gold: str) -> bool:
    """A file as an answer names it ("notes.md", "sub/notes.md") against a gold one: the same path,
    or the same file name when either side gives only the name."""
    if not name or not gold:
        return False
    name, gold = name.strip().replace("\\", "/"), gold.strip().replace("\\", "/")
    if name == gold:
        return True
    base = lambda p: p.rsplit("/", 1)[-1]  # noqa: E731
    return ("/" not in name or "/" not in gold) and base(name) == base(gold)


class Passage:
    """A chunk of the index with its normal forms, computed once for every item judged against it."""

    __slots__ = ("source", "text", "_norm", "_words")

    def __init__(self, source: str, text: str):
        self.source, self.text = source, text
        self._norm: str | None = None
        self._words: set[str] | None = None

    @property
    def norm(self) -> str:
        if self._norm is None:
            self._norm = f" {match_form(self.text)} "
        return self._norm

    @property
    def words(self) -> set[str]:
        if self._words is None:
            self._words = content_words(self.text)
        return self._words


def grounded(text: str, passage: Passage | str) -> bool:
    """`text` was read from `passage`, not made up: its `match_form` is in the passage's, or, for a
    reworded item or a summary sentence, at least 80% of its content words
    (`rag.text.content_words`, suffixes folded) are the passage's."""
    p = passage if isinstance(passage, Passage) else Passage("", passage)
    t = match_form(text)
    if not t:
        return False
    if f" {t} " in p.norm:
        return True
    words = content_words(text)
    return bool(words) and len(words & p.words) >= GROUNDED_SHARE * len(words)


def answer_lines(text: str) -> list[str]:
    """What an answer without items lists: its bullet or numbered lines, or else its sentences,
    citation markers removed."""
    lines = [line for line in text.splitlines() if line.strip()]
    bullets = [_BULLET.sub("", line) for line in lines if _BULLET.match(line)]
    parts = bullets or _SENTENCE_END.split(" ".join(line.strip() for line in lines))
    return [t for t in (strip_citations(p) for p in parts) if t]


@dataclass
class ScopeScore:
    """One scope answer against its gold entries. precision and cited are None for an answer
    without items (an ordinary answer): there is nothing to judge, and the run adds up 0 items."""

    recall: float  # share of the gold entries found
    found: list[str]  # the texts judged: the items', or for an answer without items its lines
    missing: list[str]  # the first spelling of each gold entry not found
    n_items: int = 0
    n_grounded: int = 0  # list, summary: items read from some chunk; documents: files that are gold
    n_cited: int = 0  # items whose own chunk holds them (documents: is of the file and on the topic)

    @property
    def precision(self) -> float | None:
        return self.n_grounded / self.n_items if self.n_items else None

    @property
    def cited(self) -> float | None:
        return self.n_cited / self.n_items if self.n_items else None


def score_scope(kind: str, gold: tuple[tuple[str, ...], ...] | list, items: list, text: str,
                passages: dict[str, Passage], *, topic: tuple[str, ...] | list = ()) -> ScopeScore:
    """Score a scope answer. `items` are (text, source, chunk_id) triples (rag.types.FoundItem's);
    `text` is the answer's text, read instead when there are no items; `passages` are the index's
    chunks by id; `gold` the entries, for documents the gold file names as the index names them.

    - list, summary: an entry is found when one of its spellings is `names`d by an item's text;
      an item is grounded when it was read from some chunk (`grounded`), cited right when from its
      own chunk;
    - documents: a gold file is found when an item's text or source is that file (`same_file`);
      an item is grounded when its file is gold, cited right when its chunk is of that file and,
      where the question has a topic, `mentions` one of its spellings.
    """
    if kind not in SCOPE_KINDS:
        raise ValueError(f"not a scope kind: {kind!r}")
    triples = [(t or "", s or "", c or "") for t, s, c in items]
    if kind == "documents":
        files = [g[0] for g in gold]
        if triples:
            found_in = [any(same_file(t, g) or same_file(s, g) for t, s, _ in triples) for g in files]
            found = [s or t for t, s, _ in triples]
        else:  # an ordinary answer: the file names it writes
            found_in = [names(text, g.rsplit("/", 1)[-1]) for g in files]
            found = answer_lines(text)
        missing = [g for g, ok in zip(files, found_in) if not ok]
        score = ScopeScore(recall=sum(found_in) / len(files) if files else 0.0, found=found, missing=missing,
                           n_items=len(triples))
        for t, s, c in triples:
            listed = s or t
            score.n_grounded += any(same_file(listed, g) or same_file(t, g) for g in files)
            p = passages.get(c)
            score.n_cited += bool(p is not None and (same_file(p.source, listed) or same_file(p.source, t))
                                  and (not topic or any(mentions(p.text, w) for w in topic)))
        return score
    texts = [t for t, _, _ in triples] if triples else answer_lines(text)
    found_in = [any(names(t, alt) for t in texts for alt in alts) for alts in gold]
    score = ScopeScore(recall=sum(found_in) / len(gold) if gold else 0.0, found=texts,
                       missing=[alts[0] for alts, ok in zip(gold, found_in) if not ok], n_items=len(triples))
    for t, _, c in triples:
        own = passages.get(c)
        cited = own is not None and grounded(t, own)
        score.n_cited += cited
        score.n_grounded += cited or any(grounded(t, p) for p in passages.values())
    return score
