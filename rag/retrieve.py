"""Stage 5: question to ranked `Hit`s by cosine similarity, near-duplicates collapsed."""
from __future__ import annotations

import re

import numpy as np

from .index import Store
from .types import Hit

# Chunks this similar carry the same content (the corpus ships one note as .txt and .md); the
# user should see it once, and the prompt should not spend tokens on it twice.
DUPLICATE_COSINE = 0.95


def _fingerprint(text: str) -> str:
    return re.sub(r"\W+", " ", text).lower().strip()


class Retriever:
    """Dense retrieval over a loaded `Store` with the embedder that built it."""

    def __init__(self, store: Store, embedder) -> None:
        self.store = store
        self.embedder = embedder

    def search(self, query: str, *, k: int = 4) -> list[Hit]:
        """The k best distinct chunks for `query`, best first."""
        if len(self.store) == 0:
            return []
        qvec = self.embedder.embed([query])
        scores, rows = self.store.search(qvec, k * 3 + 2)
        hits: list[Hit] = []
        kept_rows: list[int] = []
        seen_text: set[str] = set()
        for score, row in zip(scores[0], rows[0]):
            if row < 0:
                continue
            chunk = self.store.chunks[row]
            fp = _fingerprint(chunk.text)
            if fp in seen_text:
                continue
            if kept_rows:
                sims = self.store.vectors[kept_rows] @ self.store.vectors[row]
                if float(np.max(sims)) >= DUPLICATE_COSINE:
                    continue
            seen_text.add(fp)
            kept_rows.append(int(row))
            hits.append(Hit(chunk=chunk, score=float(score)))
            if len(hits) == k:
                break
        return hits
