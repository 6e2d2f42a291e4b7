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
from typing import Iterator

import numpy as np

from .prompts import Message
from .generators.streaming import Decoding
from .stores.memory import MemoryStore, MemoryVersion  # noqa: F401 - shipped here with the other stand-ins
from .types import Capabilities, Generation


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
