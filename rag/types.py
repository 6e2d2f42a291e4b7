"""Typed records passed between the stages. Plain dataclasses, cheap to build and to serialise."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator


@dataclass(frozen=True)
class Location:
    """Where in a file a passage sits, for citations: a PDF page, a slide, or a sheet and its rows.

    `rows` are the spreadsheet's own row numbers (1 is the first row of the sheet), first and last.
    """

    page: int | None = None
    slide: int | None = None
    sheet: str | None = None
    rows: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """"page 3", "slide 2", "sheet Sales, rows 2-41": what a citation prints."""
        parts = []
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.slide is not None:
            parts.append(f"slide {self.slide}")
        if self.sheet is not None:
            parts.append(f"sheet {self.sheet}")
        if self.rows is not None:
            a, b = self.rows
            parts.append(f"row {a}" if a == b else f"rows {a}-{b}")
        return ", ".join(parts)

    def with_rows(self, first: int, last: int) -> "Location":
        return Location(page=self.page, slide=self.slide, sheet=self.sheet, rows=(first, last))

    def to_dict(self) -> dict:
        """The set fields and the label (JSON shape of citations and chunks.jsonl)."""
        d = {k: v for k, v in (("page", self.page), ("slide", self.slide), ("sheet", self.sheet),
                               ("rows", list(self.rows) if self.rows else None)) if v is not None}
        return {**d, "label": self.label}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Location | None":
        if not d:
            return None
        rows = d.get("rows")
        return cls(page=d.get("page"), slide=d.get("slide"), sheet=d.get("sheet"),
                   rows=(int(rows[0]), int(rows[1])) if rows else None)


@dataclass(frozen=True)
class Table:
    """A table kept whole so the chunker can repeat its header row in every chunk of it.

    `row_numbers`: each row's number in its sheet, for row ranges in citations (empty: none).
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    row_numbers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path inside a document; `table` set for a table, whose
    Markdown form is `text`."""

    text: str
    headings: tuple[str, ...] = ()
    location: Location | None = None
    table: Table | None = None


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
    location: Location | None = None

    @property
    def heading(self) -> str:
        return " > ".join(self.headings)

    @property
    def page(self) -> int | None:
        return self.location.page if self.location else None

    def to_dict(self) -> dict:
        d = {"id": self.id, "source": self.source, "title": self.title,
             "headings": list(self.headings), "text": self.text}
        if self.location is not None:  # absent, not null, so older indexes read the same
            d["location"] = self.location.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Chunk":
        return cls(id=d["id"], source=d["source"], title=d["title"],
                   headings=tuple(d.get("headings", ())), text=d["text"],
                   location=Location.from_dict(d.get("location")))


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
    location: Location | None = None  # page, slide or sheet and rows

    @property
    def where(self) -> str:
        """Heading and location in one line ("Results > page 4"); the location once when a PDF's
        heading already is its page."""
        label = self.location.label if self.location else ""
        parts = [self.heading] if self.heading else []
        if label and label not in parts:
            parts.append(label)
        return " > ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["location"] = self.location.to_dict() if self.location else None
        for key in ("page", "slide", "sheet"):  # flat too, for clients that want one field
            d[key] = getattr(self.location, key) if self.location else None
        return d


@dataclass(frozen=True)
class Message:
    """One chat message of a prompt: `role` is system, user or assistant."""

    role: str
    content: str


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
class Capabilities:
    """What a generator's `stream` takes beyond messages, limits and stop strings, as the generator
    declares it: the pipeline passes an option only to a generator that declares it."""

    grammar: bool = False  # `grammar`: a GBNF grammar limits what is generated (the extract template)
    stop_when: bool = False  # `stop_when`: decoding ends as soon as it returns a `stopping.Stop`
    cache_head: bool = False  # `cache_head`: the first n messages are fixed text whose KV state may be kept


@dataclass(frozen=True)
class SentenceSupport:
    """One sentence of an answer and how the documents back it."""

    text: str
    passage: int  # the [n] of the context block that supports it best, 0 for none
    support: float | None  # 0..1, None when the citation check is off
    verified: bool | None  # supported and not flagged; None when not checked
    flags: tuple[str, ...] = ()  # why it is not verified ("states 2019, which no passage contains")


class DraftText(str):
    """A piece of the model's text before the checks have read it: a consumer that asked for
    drafts (`RAG.stream(drafts=True)`) must show it as a draft, never as the answer; the checked
    text follows as plain `str` once the checks are done."""

    __slots__ = ()


class Progress(DraftText):
    """A line saying how far a long answer has got ("Scored 1,000 chunks in 12 documents"),
    given to a consumer that asked for drafts: shown in place of the draft, never as the answer.
    A consumer that knows only `DraftText` shows it as a draft, which it also is not the answer."""

    __slots__ = ()


@dataclass(frozen=True)
class FoundItem:
    """One entry of a whole-document or whole-collection answer (rag/survey.py): a list entry, a
    document that discusses the topic, or a summary sentence, with the passage it was read from."""

    text: str
    n: int  # the citation number of its passage in `Answer.citations`
    source: str
    chunk_id: str


@dataclass
class Coverage:
    """What a whole-document or whole-collection answer read (rag/survey.py), so that a reader
    knows whether a list is complete: `complete` is False when a budget stopped the reading."""

    scope: str  # "list", "documents" or "summary"
    document: str = ""  # the one document read; "" for the whole collection
    chunks_read: int = 0
    chunks_total: int = 0  # chunks in the scope (the document, or every document)
    documents_read: int = 0
    documents_found: int = 0  # documents in which items were found
    items: int = 0
    complete: bool = True
    stopped: str = ""  # why the reading stopped early ("the 60 s budget", "2,000 chunks")
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


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
    draft: str = ""  # the model's answer before the checks, kept so a rejection can be read
    template: str = ""
    template_reason: str = ""  # why `auto` chose `template` ("" when a template was named)
    support: float = 0.0  # how well the best passage supports the answer text (0..1)
    relevance: float = 0.0  # cosine between the question and the answer text
    sentences: list[SentenceSupport] = field(default_factory=list)
    guards: str = ""  # the guard profile that checked it: small, capable or off
    timings: Timings = field(default_factory=Timings)
    usage: Usage = field(default_factory=Usage)
    # a question about a whole document or collection ("list all", "which files", "summarise"):
    # its scope, what was read and the entries found; "" / None / [] for an ordinary question
    scope: str = ""
    coverage: Coverage | None = None
    items: list[FoundItem] = field(default_factory=list)

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
            "template_reason": self.template_reason,
            "support": self.support,
            "relevance": self.relevance,
            "reasoning": self.reasoning,
            "draft": self.draft,
            "citations": [c.to_dict() for c in self.citations],
            "sentences": [{**asdict(x), "flags": list(x.flags)} for x in self.sentences],
            "hits": [{"source": h.chunk.source, "chunk_id": h.chunk.id, "score": round(h.score, 4),
                      "cosine": round(h.dense, 4), "heading": h.chunk.heading,
                      "location": h.chunk.location.to_dict() if h.chunk.location else None}
                     for h in self.hits],
            "timings": {k: round(v, 4) for k, v in asdict(self.timings).items()},
            "usage": asdict(self.usage),
            "scope": self.scope,
            "coverage": self.coverage.to_dict() if self.coverage else None,
            "items": [asdict(i) for i in self.items],
        }


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation, used for follow-up questions."""

    question: str
    answer: str
