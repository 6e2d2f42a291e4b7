"""Stand-ins for the three components, for tests that need no model:

    rag = RAG(embedder=HashEmbedder(), generator=ScriptedGenerator(["LoRA trains adapters [1]."]),
              store=MemoryStore(), corpus="docs/")

They follow `rag.protocols` like the real ones, so the whole pipeline runs (retrieval, prompts,
checks) in milliseconds. They are for tests only: a hashed bag of words is no embedding model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from typing import Iterator

import numpy as np

from .errors import IndexLocked, IndexMissing
from .manifest import check_embedder
from .prompts import Message
from .generators.streaming import Decoding
from .types import Capabilities, Chunk, Generation


class WordTokenizer:
    """Words and punctuation marks as tokens."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+|[^\w\s]", text)

    def __call__(self, text, add_special_tokens=True, truncation=False):
        return {"input_ids": [0] * (len(self.tokenize(text)) + 2 * add_special_tokens)}


class HashEmbedder:
    """A hashed bag of words: fast, deterministic, and texts sharing words get similar vectors."""

    name = "hash-embedder"
    dim = 64
    max_seq_length = 128

    def __init__(self, *, name: str = "hash-embedder", dim: int = 64) -> None:
        self.name = name
        self.dim = dim
        self.tokenizer = WordTokenizer()
        self.calls = 0
        self.embedded = 0

    @property
    def max_tokens(self) -> int:
        return self.max_seq_length

    @property
    def fingerprint(self) -> str:
        return f"hash-{self.dim}"

    def warm_up(self):
        return self

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out


class ScriptedGenerator:
    """Plays the given outputs in order, one per generation, streamed a word at a time; the
    messages of every call are kept in `calls`. An output that is an exception is raised.

    It declares grammars (which it records and ignores) and early stops; a test that needs a
    generator without one declares so in its `capabilities`."""

    name = "scripted"
    capabilities = Capabilities(grammar=True, stop_when=True)

    def __init__(self, outputs: list[str | BaseException], *, n_ctx: int = 4096,
                 n_params: int | None = None) -> None:
        self.outputs = list(outputs)
        self._n_ctx = n_ctx
        self.n_params = n_params
        self.calls: list[dict] = []

    @property
    def supports_grammar(self) -> bool:  # the name `capabilities.grammar` had before
        return self.capabilities.grammar

    @supports_grammar.setter
    def supports_grammar(self, value: bool) -> None:
        self.capabilities = dataclasses.replace(self.capabilities, grammar=value)

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def warm_up(self):
        return self

    def count_tokens(self, messages: list[Message]) -> int:
        return sum(len(re.findall(r"\w+|[^\w\s]", m.content)) + 4 for m in messages)

    def stream(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: tuple[str, ...] = (), grammar: str | None = None,
               stop_when=None) -> Iterator[str | Generation]:
        self.calls.append({"messages": list(messages), "max_tokens": max_tokens, "grammar": grammar,
                           "stop": stop, "temperature": temperature, "stop_when": stop_when})
        if not self.outputs:
            raise AssertionError("ScriptedGenerator has no output left for this generation")
        out = self.outputs.pop(0)
        if isinstance(out, BaseException):
            raise out
        pieces = re.findall(r"\S+\s*|\s+", out)[:max_tokens]
        decoding = Decoding(stop_when, finish="stop" if len(pieces) < max_tokens else "length")
        # the rest of the script, once stop_when fires, is never "generated"
        yield from decoding.run((piece, None) for piece in pieces)
        yield decoding.result(prompt_tokens=self.count_tokens(messages), completion_tokens=decoding.n_pieces)


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
        from .faiss_store import exact_search

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
        if not self.store._write.acquire(timeout=self.lock_wait if self.lock_wait > 0 else -1):
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
