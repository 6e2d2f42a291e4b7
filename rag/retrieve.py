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

import logging
import re

import numpy as np

from .bm25 import BM25
from .chunk import embed_text
from .errors import ConfigError
from .types import Hit

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")
# Chunks this similar carry the same content (the corpus ships one note as .txt and .md); the
# user should see it once, and the prompt should not spend tokens on it twice.
DUPLICATE_COSINE = 0.95
CANDIDATES = 50  # per signal; both lists are merged before normalising


def _fingerprint(text: str) -> str:
    return re.sub(r"\W+", " ", text).lower().strip()


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
    # the same tokens as `BM25.terms` (stemming never empties a word, so it is left out here)
    return bool(bm25s.tokenize([query], stopwords="en", stemmer=None, show_progress=False,
                               return_ids=False)[0])


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
        self._bm25: BM25 | None = None

    @property
    def bm25(self) -> BM25:
        if self._bm25 is None:  # once per loaded index version: read where it was saved, else built
            saved = getattr(self.store, "saved_bm25", None)
            self._bm25 = saved() if saved is not None else None
            if self._bm25 is None:
                self._bm25 = BM25([embed_text(c) for c in self.store.chunks])
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
