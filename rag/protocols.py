"""The three components a `RAG` is made of. Any object with these methods plugs in:

    RAG(embedder=my_embedder, generator=my_llm_client, store=my_vector_db)

The defaults are `embed.Embedder` (sentence-transformers), `generators.LLM` (a GGUF through
llama-cpp-python, or `generators.ServerGenerator` with `llm_url`) and `stores.faiss.FaissStore`;
`rag.testing` ships stand-ins for tests.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from .types import Capabilities, Chunk, Generation, Message


@runtime_checkable
class Embedder(Protocol):
    """Texts to unit-length vectors. `fingerprint` identifies the weights (the index records it)."""

    @property
    def name(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_tokens(self) -> int: ...  # the longest input it embeds whole, special tokens included
    @property
    def fingerprint(self) -> str: ...
    @property
    def tokenizer(self): ...  # has .tokenize(text) -> list, for the chunker to measure pieces

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray: ...
    def warm_up(self): ...


@runtime_checkable
class Generator(Protocol):
    """A chat model. `stream` yields text pieces, then one `Generation` with its counts.

    `capabilities` declares the options its `stream` takes beyond these (a `types.Capabilities`);
    the pipeline passes only those. One that declares `stop_when` (a callable given the text so
    far, returning a `stopping.Stop` or None) ends as soon as it returns a Stop, keeping `Stop.at`
    characters; one that declares `cache_head` takes `cache_head`, how many leading messages are
    fixed text. `generators.streaming.Decoding` is the loop the shipped ones share."""

    @property
    def name(self) -> str: ...
    @property
    def n_ctx(self) -> int: ...
    @property
    def n_params(self) -> int | None: ...  # None when unknown (a server's model); guards=auto reads it
    @property
    def capabilities(self) -> Capabilities: ...

    def count_tokens(self, messages: list[Message]) -> int: ...
    def stream(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: tuple[str, ...] = (), grammar: str | None = None,
               stop_when=None) -> Iterator[str | Generation]: ...
    def warm_up(self): ...


@runtime_checkable
class IndexVersion(Protocol):
    """One committed version of an index, loaded and verified: what retrieval reads."""

    version: str
    manifest: dict
    chunks: list[Chunk]

    def __len__(self) -> int: ...
    def vectors(self, rows=None) -> np.ndarray: ...
    # (scores, row ids), -1 where fewer than k; `source` keeps rows of paths starting with it
    def search(self, query_vecs: np.ndarray, k: int, *, source: str | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class StoreWriter(Protocol):
    """The next version of an index, built from the live one and committed atomically."""

    def start(self, *, fresh: bool, embedder=None) -> IndexVersion | None: ...
    def sources(self) -> set[str]: ...
    def remove(self, source: str) -> None: ...
    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None: ...
    def commit(self, manifest: dict, *, dim: int) -> str: ...


@runtime_checkable
class VectorStore(Protocol):
    """Versions of one index: readers `open` the live one (IndexMissing before the first commit,
    a plain StoreError when another embedder built it) and keep the version they opened while a
    newer one is committed; one writer at a time builds the next (a second waits up to
    `lock_wait` seconds, then gets IndexLocked). `tests/test_store_contract.py` is the contract
    every store passes."""

    @property
    def location(self) -> str: ...

    def live(self) -> str | None: ...
    def open(self, *, embedder=None) -> IndexVersion: ...
    def manifest(self) -> dict | None: ...
    def writer(self, *, lock_wait: float = 0.0) -> AbstractContextManager[StoreWriter]: ...
