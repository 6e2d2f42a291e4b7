"""Exact inner-product search over stored vectors: what a FAISS version uses when a question is
limited to some documents, and all the in-memory stand-in ever does."""
from __future__ import annotations

import numpy as np


def exact_search(vectors: np.ndarray, keep: list[bool], q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product top-k over the rows where `keep` is true: (scores, row ids), -1 padded."""
    rows = np.flatnonzero(np.asarray(keep, dtype=bool))
    scores = np.full((len(q), k), -np.inf, np.float32)
    ids = -np.ones((len(q), k), np.int64)
    if len(rows):
        sims = q @ vectors[rows].T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        n = top.shape[1]
        scores[:, :n] = np.take_along_axis(sims, top, axis=1)
        ids[:, :n] = rows[top]
    return scores, ids
