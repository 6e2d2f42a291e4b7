"""Stage 5: question to ranked `Hit`s. Hybrid by default: BM25 and dense cosine scores, each
standardised (z-score) over the union of both candidate lists, then mixed with a fixed weight.

Why a convex mix and not reciprocal-rank fusion: on the shipped SQuAD v2 sample the mix
reached MRR@10 0.886-0.889 against 0.83-0.84 for RRF (same candidates; alpha picked on one half
of the questions and checked on the other). Dense-only MiniLM found the gold paragraph in the
top 5 for 0.85 of the questions, BM25 alone 0.94, the mix 0.95-0.96. Why z-scores and not
min-max: on that sample they tie (alpha 0.6: recall@1 0.832 vs 0.831, recall@5 0.962 vs 0.960,
MRR@10 0.889 both), but when the cosines of all candidates bunch together min-max stretches a
0.01 difference over the whole range and outvotes a clear BM25 winner; on the corpus questions
recall@1 went from 0.909 to 0.939.
"""
from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

from .chunk import embed_text
from .errors import ConfigError
from .types import Hit

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")
# Chunks this similar carry the same content (the corpus ships one note as .txt and .md); the
# user should see it once, and the prompt should not spend tokens on it twice.
DUPLICATE_COSINE = 0.95
CANDIDATES = 50  # per signal; both lists are merged before normalising


# a token bm25s's tokenizer never yields (it keeps runs of two or more word characters)
_NO_TERM = "\x00"


def _fingerprint(text: str) -> str:
    return re.sub(r"\W+", " ", text).lower().strip()


class _BM25:
    """bm25s over the chunks' embedded text (headings included), English stopwords, stemmed.

    Built from the texts, or loaded (memory-mapped) from what `save` wrote beside an index
    version: rebuilding took 20 s at 100k chunks and 129 s at 1M on every start."""

    def __init__(self, texts: list[str] | None = None, *, saved: str | Path | None = None) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self._stem = _stemmer()
        self._bm25s = bm25s
        if saved is not None:
            self.model = bm25s.BM25.load(str(saved), mmap=True, show_progress=False)
        else:
            self.model = bm25s.BM25()
            tokens = bm25s.tokenize(texts or [], stopwords="en", stemmer=self._stem, show_progress=False)
            if texts and not tokens.vocab:
                # no chunk has a word to index (a collection of emoji or signs only), and bm25s
                # cannot build an empty vocabulary: one token that no query yields stands in
                tokens = [[_NO_TERM]] + [[] for _ in texts[1:]]
            self.model.index(tokens, show_progress=False)
        self._folded: set[str] | None = None

    def save(self, folder: str | Path) -> None:
        self.model.save(str(folder), show_progress=False)

    def terms(self, text: str) -> list[str]:
        return self._bm25s.tokenize([text], stopwords="en", stemmer=self._stem, show_progress=False,
                                    return_ids=False)[0]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for `query`; all 0 when it has no terms (bm25s raises
        IndexError on an empty term list)."""
        terms = self.terms(query)
        if not terms:
            return np.zeros(int(self.model.scores["num_docs"]), dtype=np.float32)
        return np.asarray(self.model.get_scores(terms), dtype=np.float32)

    def unknown(self, words: list[str], *, fuzzy: bool = True) -> list[str]:
        """The words with a term that occurs nowhere in the indexed chunks, even misspelt a little.

        Accents are ignored ("Herve" finds "Hervé") and, `fuzzy`, a term of five letters or more
        matches a vocabulary term that differs by a letter or two ("Scotish", "Hatmanis"): people
        misspell the names they ask about, and a typo must not read as "not in your documents".
        The stem is compared too, because the index holds stems: "charecterized" stems to
        "charecter", a letter from "character", but is four letters longer than that entry.
        """
        if self._folded is None:
            self._folded = {_fold(term) for term in self.model.vocab_dict}
        from bm25s.stopwords import STOPWORDS_EN

        def known(token: str) -> bool:
            # the stemmer treats "herve" and "hervé" differently, so both forms are looked up
            forms = {_fold(token)} | {_fold(t) for t in self.terms(token)}
            if forms & self._folded:
                return True
            return fuzzy and len(token) >= 5 and any(close(form) for form in forms)

        def close(form: str) -> bool:
            return len(form) >= 5 and bool(difflib.get_close_matches(
                form, [v for v in self._folded if abs(len(v) - len(form)) <= 2 and v[:1] == form[:1]],
                n=1, cutoff=0.85))

        return [w for w in words if any(not known(t) for t in re.findall(r"\w\w+", w.lower())
                                        if t not in STOPWORDS_EN)]


def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWords
    except ImportError:  # stemming helps recall a little; BM25 works without it
        return None


def has_terms(query: str) -> bool:
    """Whether `query` holds a word retrieval can look up. One of signs, emoji or stopwords only
    ("???", "and the", "🙂") holds none: BM25 has nothing to score, and the passages nearest its
    embedding are near by chance, so nothing retrieved for it could be its answer."""
    import bm25s

    # a letter outside ASCII is a word in itself for scripts written without spaces: "猫" is
    # one character, shorter than bm25s's two-character tokens, yet a question the dense
    # side can answer
    if any(c.isalpha() and ord(c) > 0x2E7F for c in query):
        return True
    # the same tokens as `_BM25.terms` (stemming never empties a word, so it is left out here)
    return bool(bm25s.tokenize([query], stopwords="en", stemmer=None, show_progress=False,
                               return_ids=False)[0])


def bm25_params() -> dict:
    """What a saved BM25 depends on besides the chunk texts; one saved under other parameters
    (no stemmer then, another bm25s) is rebuilt rather than read."""
    import importlib.metadata

    return {"format": 1, "stopwords": "en", "stemmer": "english" if _stemmer() else "",
            "bm25s": importlib.metadata.version("bm25s"), "text": "embed_text"}


def _fold(term: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", term) if not unicodedata.combining(c))


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std()) if len(x) else 0.0
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


class Retriever:
    """Retrieval over a loaded `Store` with the embedder that built it."""

    def __init__(self, store, embedder, *, mode: str = "hybrid", alpha: float = 0.6) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"hybrid_alpha must be between 0 and 1, got {alpha}")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.alpha = alpha  # weight of the dense score; 1 - alpha goes to BM25
        self._bm25: _BM25 | None = None

    @property
    def bm25(self) -> _BM25:
        if self._bm25 is None:  # once per loaded index version: read where it was saved, else built
            saved = getattr(self.store, "saved_bm25", None)
            self._bm25 = saved() if saved is not None else None
            if self._bm25 is None:
                self._bm25 = _BM25([embed_text(c) for c in self.store.chunks])
        return self._bm25

    def unknown(self, words: list[str], *, fuzzy: bool = True) -> list[str]:
        """Those of `words` that the indexed documents never mention (after stemming; `fuzzy`:
        a small misspelling of a term they have counts as that term)."""
        return self.bm25.unknown(words, fuzzy=fuzzy) if words and len(self.store) else list(words)

    def mentioned(self, words: list[str], hits: list[Hit]) -> bool:
        """Whether every one of `words` occurs (after stemming) in the text of `hits`."""
        found = {t for h in hits for t in self.bm25.terms(embed_text(h.chunk))}
        return all(t in found for w in words for t in self.bm25.terms(w))

    def search(self, query: str, *, k: int = 4, source: str | None = None) -> list[Hit]:
        """The k best distinct chunks for `query`, best first; with `source`, only chunks of
        documents whose path starts with it. None for a query without search terms (`has_terms`)."""
        n = len(self.store)
        if n == 0 or not has_terms(query):
            return []  # the pipeline reads no hits as nothing to answer from, and abstains
        want = max(CANDIDATES, 5 * k)
        # the query vector is computed in every mode: its cosine is what the abstention gate reads
        qvec = self.embedder.embed([query])[0]
        cand: np.ndarray = np.zeros(0, dtype=np.int64)
        if self.mode != "bm25":
            _, rows = self.store.search(qvec[None, :], want, **({"source": source} if source else {}))
            cand = rows[0][rows[0] >= 0]
        lexical = self.bm25.scores(query) if self.mode != "dense" else None
        if lexical is not None:
            if source:
                lexical = np.where(self._prefix_mask(source), lexical, -np.inf).astype(np.float32)
            top = np.argpartition(-lexical, min(want, n) - 1)[:want] if n > want else np.arange(n)
            top = top[np.isfinite(lexical[top])]
            cand = np.union1d(cand, top)
        cand = cand.astype(np.int64)
        if not len(cand):
            return []
        vecs = self.store.vectors(cand)  # once: a remote store answers each call over the network
        dense = vecs @ qvec
        lex = lexical[cand] if lexical is not None else np.zeros(len(cand), np.float32)
        if self.mode == "dense":
            fused = dense
        elif self.mode == "bm25":
            fused = lex
        else:
            fused = self.alpha * _zscore(dense) + (1 - self.alpha) * _zscore(lex)
        order = np.argsort(-fused, kind="stable")
        return self._distinct(cand[order], vecs[order], fused[order], dense[order], lex[order], k)

    def _prefix_mask(self, source: str) -> np.ndarray:
        return np.array([c.source.startswith(source) for c in self.store.chunks], dtype=bool)

    def _distinct(self, rows, vecs, fused, dense, lex, k: int) -> list[Hit]:
        hits: list[Hit] = []
        kept: list[np.ndarray] = []
        seen_text: set[str] = set()
        for row, vec, score, d, b in zip(rows, vecs, fused, dense, lex):
            chunk = self.store.chunks[row]
            fp = _fingerprint(chunk.text)
            if fp in seen_text:
                continue
            if kept and float(np.max(np.stack(kept) @ vec)) >= DUPLICATE_COSINE:
                continue
            seen_text.add(fp)
            kept.append(vec)
            hits.append(Hit(chunk=chunk, score=float(score), dense=float(d), lexical=float(b)))
            if len(hits) == k:
                break
        return hits
