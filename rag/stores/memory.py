"""The in-memory `VectorStore`, for tests that need no disk and no engine (`rag.testing`
ships it beside the other stand-ins): versions are objects swapped under a lock, searched
exactly, and gone with the process."""
from __future__ import annotations

import threading

import numpy as np

from ..errors import IndexLocked, IndexMissing
from ..manifest import check_embedder
from ..types import Chunk
from .exact import exact_search


class MemoryVersion:
    """One committed version of a `MemoryStore`: exact inner-product search."""

    def __init__(self, version: str, manifest: dict, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self.version = version
        self.manifest = manifest
        self.chunks = chunks
        self._vectors = vectors

    def __len__(self) -> int:
        return len(self.chunks)

    def vectors(self, rows=None) -> np.ndarray:
        return self._vectors if rows is None else self._vectors[rows]

    def search(self, query_vecs: np.ndarray, k: int, *, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, len(self.chunks)))
        keep = [source is None or c.source.startswith(source) for c in self.chunks]
        return exact_search(self._vectors, keep, np.asarray(query_vecs, np.float32), k)


class MemoryStore:
    """A `VectorStore` in memory: versions swap atomically under a lock, one writer at a time."""

    def __init__(self) -> None:
        self.location = "memory"
        self._live: MemoryVersion | None = None
        self._n = 0
        self._write = threading.Lock()

    def live(self) -> str | None:
        return self._live.version if self._live is not None else None

    def open(self, *, embedder=None) -> MemoryVersion:
        if self._live is None:
            raise IndexMissing("no index in memory yet; build it first")
        check_embedder(self._live.manifest, self.location, embedder=embedder)
        return self._live

    def manifest(self) -> dict | None:
        return self._live.manifest if self._live is not None else None

    def writer(self, *, lock_wait: float = 0.0) -> "_MemoryWriter":
        return _MemoryWriter(self, lock_wait)


class _MemoryWriter:
    def __init__(self, store: MemoryStore, lock_wait: float) -> None:
        self.store = store
        self.lock_wait = lock_wait
        self.chunks: list[Chunk] = []
        self.vectors: list[np.ndarray] = []

    def __enter__(self):
        # lock_wait 0 refuses at once, as the FAISS and Milvus stores do (the protocol's contract)
        if not (self.store._write.acquire(timeout=self.lock_wait) if self.lock_wait > 0 else
                self.store._write.acquire(blocking=False)):
            raise IndexLocked("another build is writing the memory store")
        return self

    def __exit__(self, *exc):
        self.store._write.release()

    def start(self, *, fresh: bool, embedder=None) -> MemoryVersion | None:
        base = None if fresh or self.store._live is None else self.store.open(embedder=embedder)
        self.chunks = list(base.chunks) if base else []
        self.vectors = [base.vectors()[i:i + 1] for i in range(len(base))] if base else []
        return base

    def sources(self) -> set[str]:
        return {c.source for c in self.chunks}

    def remove(self, source: str) -> None:
        keep = [i for i, c in enumerate(self.chunks) if c.source != source]
        self.chunks = [self.chunks[i] for i in keep]
        self.vectors = [self.vectors[i] for i in keep]

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self.chunks += chunks
        self.vectors += [vectors[i:i + 1] for i in range(len(chunks))]

    def commit(self, manifest: dict, *, dim: int) -> str:
        self.store._n += 1
        vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, dim), np.float32)
        version = f"m{self.store._n:06d}"
        self.store._live = MemoryVersion(version, {**manifest, "n_chunks": len(self.chunks)},
                                         list(self.chunks), vectors)
        return version
