"""Typed records passed between the stages. Plain dataclasses, cheap to build and to serialise."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path inside a document."""

    text: str
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Document:
    """One ingested file: where it came from, its title, its text split by headings."""

    source: str  # path relative to the indexed root, used as the document id
    title: str
    # a one-pass iterator instead of a tuple for very large text files (see ingest.load)
    sections: tuple[Section, ...] | Iterator[Section]
    sha256: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedder, with its provenance."""

    id: str  # "<source>#<n>", stable while the document is unchanged
    source: str
    title: str
    headings: tuple[str, ...]
    text: str

    @property
    def heading(self) -> str:
        return " > ".join(self.headings)

    def to_dict(self) -> dict:
        return {**asdict(self), "headings": list(self.headings)}

    @classmethod
    def from_dict(cls, d: dict) -> "Chunk":
        return cls(id=d["id"], source=d["source"], title=d["title"],
                   headings=tuple(d.get("headings", ())), text=d["text"])


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk. `score` ranks (the fused score in hybrid mode); `dense` is the cosine
    similarity and `lexical` the raw BM25 score, kept for calibrated decisions such as abstaining."""

    chunk: Chunk
    score: float
    dense: float = 0.0
    lexical: float = 0.0


@dataclass(frozen=True)
class Citation:
    """A source the answer relies on. `n` is the [n] marker of its context block."""

    n: int
    source: str
    chunk_id: str
    score: float  # cosine similarity of the passage to the question (a fused score only ranks)
    snippet: str
    heading: str = ""
    inferred: bool = False  # True when the model cited nothing and the best-supporting block was attached


@dataclass
class Timings:
    """Seconds spent per stage of one question."""

    load: float = 0.0  # loading models and index on first use; zero once warm
    retrieve: float = 0.0
    prompt: float = 0.0
    prefill: float = 0.0  # time to first token, i.e. prompt evaluation
    generate: float = 0.0  # decoding after the first token
    check: float = 0.0  # the answer checks after generation
    total: float = 0.0


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV state llama.cpp reused from the previous call


@dataclass
class Generation:
    """One completion and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    ttft: float  # seconds from the call to the first piece of text (prefill)
    total: float
    finish_reason: str
    stopped_by: str = ""  # the early-stop condition that ended it (see stopping), "" for none


@dataclass(frozen=True)
class SentenceSupport:
    """One sentence of an answer and how the documents back it."""

    text: str
    passage: int  # the [n] of the context block that supports it best, 0 for none
    support: float | None  # 0..1, None when the citation check is off
    verified: bool | None  # supported and not flagged; None when not checked
    flags: tuple[str, ...] = ()  # why it is not verified ("states 2019, which no passage contains")


@dataclass
class Answer:
    """What `ask()` returns: the answer text, the sources it cited and how it was made."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    abstained: bool = False
    abstain_reason: str = ""  # why the answer is "not found", for people
    abstain_code: str = ""  # the same as a stable code for programs (see guards)
    reasoning: str = ""  # chain-of-thought text, kept apart from the final answer
    template: str = ""
    support: float = 0.0  # how well the best passage supports the answer text (0..1)
    relevance: float = 0.0  # cosine between the question and the answer text
    sentences: list[SentenceSupport] = field(default_factory=list)
    guards: str = ""  # the guard profile that checked it: small, capable or off
    timings: Timings = field(default_factory=Timings)
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict:
        """The JSON shape printed by `rag ask --json`."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "abstain_code": self.abstain_code,
            "guards": self.guards,
            "template": self.template,
            "support": self.support,
            "relevance": self.relevance,
            "reasoning": self.reasoning,
            "citations": [asdict(c) for c in self.citations],
            "sentences": [{**asdict(x), "flags": list(x.flags)} for x in self.sentences],
            "hits": [{"source": h.chunk.source, "chunk_id": h.chunk.id, "score": round(h.score, 4),
                      "cosine": round(h.dense, 4), "heading": h.chunk.heading} for h in self.hits],
            "timings": {k: round(v, 4) for k, v in asdict(self.timings).items()},
            "usage": asdict(self.usage),
        }


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation, used for follow-up questions."""

    question: str
    answer: str
