"""What an agent may do with the documents: list the collections it may see, search one, ask
it a question, and read a cited passage in its document's context. The MCP server (rag.mcp_server)
exposes these as tools; this module decides, the adapter only translates.

Who sees what follows the chat's rule (rag.collections): a toolbox made for a signed-in `user`
sees that user's collections, the shared ones and everyone's; without a user it sees everyone's
only (the default and those made with the CLI), never a user's private collection. Nothing is
read from the file system by a name the caller gives: passages come from the collection's index,
so no argument can reach a file outside the collection roots. Each argument is bounded like
the OpenAI API's (rag.bounds) and anything wrong raises a `QueryError` or `ConfigError` whose
message is one line.
"""
from __future__ import annotations

import difflib
import threading
from dataclasses import asdict, dataclass

from .bounds import API_MAX_TOP_K
from .collections import DEFAULT, CollectionRAGs, Collections
from .errors import ConfigError, QueryError, RagError
from .present import coverage_line, footer, numbered
from .question import clean_question
from .types import Answer, Citation
from .viewer import source_view

MAX_ID_CHARS = 1024  # a chunk id or a source prefix: a path and "#n"


@dataclass(frozen=True)
class Passage:
    """One search result, as an agent reads it."""

    chunk_id: str
    source: str
    location: str  # "page 3", "slide 2", "" for a text file
    heading: str
    score: float  # cosine similarity to the query
    text: str

    def to_dict(self) -> dict:
        return {"chunk_id": self.chunk_id, "source": self.source, "location": self.location,
                "heading": self.heading, "score": round(self.score, 4), "text": self.text}


class Toolbox:
    """The tools over `base` (the RAG of the default collection, whose model and embedder every
    collection shares), as `user` may use them (None: no sign-in, everyone's collections only).
    `default` is the collection a call without one uses."""

    def __init__(self, base, *, user: str | None = None, default: str = DEFAULT) -> None:
        self.collections = Collections.from_settings(base.settings)
        self.rags = CollectionRAGs(base, self.collections)
        self.user = user
        self.default = default
        self._ask_lock = threading.Lock()  # one answer at a time: the model is one
        self._visible(default)  # a default the caller may not see fails at start, not per call

    # ---------------------------------------------------------------- who sees what

    def _visible(self, name: str | None):
        name = name or self.default
        if not isinstance(name, str) or len(name) > 64:
            raise QueryError("collection must be a collection's name (see list_collections)")
        c = self.collections.get(name, user=self.user)  # ConfigError for one the user may not see
        if self.user is None and c.owner:  # a user's collection, shared or not, needs its user
            raise ConfigError(f"there is no collection named {name!r}")
        return c

    def _rag(self, name: str | None):
        c = self._visible(name)
        return c.name, self.rags.get(c.name, user=self.user)

    @staticmethod
    def _source(rag, name: str, source: str | None, what: str = "source") -> str | None:
        """`source` as a prefix of the collection's indexed paths, refused when it names none."""
        if source is None:
            return None
        return indexed_document(rag, source, name=what, where=f"collection {name!r}")

    # ---------------------------------------------------------------- the tools

    def list_collections(self) -> list[dict]:
        """Each collection this caller may use, with its number of documents and chunks."""
        out = []
        for c in self.collections.list(user=self.user):
            if self.user is None and c.owner:
                continue
            try:  # the live version's manifest: counted without loading the index
                manifest = self.rags.get(c.name, user=self.user).vector_store.manifest() or {}
                documents, chunks = len(manifest.get("documents") or {}), manifest.get("n_chunks")
            except RagError:  # unreadable, or being rebuilt: listed without counts
                documents = chunks = None
            out.append({"name": c.name, "documents": documents, "chunks": chunks,
                        "default": c.name == self.default, "owner": c.owner or None, "shared": c.shared})
        return out

    def search(self, query: str, *, collection: str | None = None, top_k: int = 5,
               source: str | None = None) -> dict:
        """The passages closest to `query` (hybrid retrieval, no model), each with its source,
        location and score; `source` keeps documents whose path starts with it."""
        query = clean_question(query)
        top_k = _count(top_k, "top_k", API_MAX_TOP_K)
        name, rag = self._rag(collection)
        source = self._source(rag, name, source)
        hits = rag.search(query, top_k=top_k, source=source)
        passages = [Passage(h.chunk.id, h.chunk.source, h.chunk.location.label if h.chunk.location else "",
                            h.chunk.heading, h.dense, h.chunk.text) for h in hits]
        return {"collection": name, "query": query, "passages": [p.to_dict() for p in passages]}

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None,
            source: str | None = None, document: str | None = None) -> dict:
        """The checked answer with reader-numbered citations, and `text`, what a person reads: the
        answer, the reason when it says "not found", the sentences the documents do not back, the
        coverage line of a whole-document or whole-collection answer and the "Sources:" footer.
        `source` keeps documents whose path starts with it; `document` names the document (its
        indexed path) or folder the question is about, so that "summarise this" reads all of it
        (the same choice as `source`, given as what the question is about). A question about a
        whole document or collection ("list all ...", "which files mention ...") also carries
        `scope`, `coverage` (what was read, whether it is complete) and `items`."""
        question = clean_question(question)
        if top_k is not None:
            top_k = _count(top_k, "top_k", API_MAX_TOP_K)
        name, rag = self._rag(collection)
        source = self._source(rag, name, source)
        document = self._source(rag, name, document, "document")
        if source is not None and document is not None and source != document:
            raise QueryError("give source or document, not both")
        source = document or source
        with self._ask_lock:
            answer = rag.ask(question, top_k=top_k, source=source)
        shown = numbered(answer)
        unverified = [{"sentence": s.text, "why": "; ".join(s.flags)} for s in answer.sentences if s.verified is False]
        text = shown.text + (f"\n({answer.abstain_reason})" if answer.abstained and answer.abstain_reason else "")
        if unverified:  # the reader should know which sentences the documents do not back
            text += "\n\nNot backed by the documents:\n" + "\n".join(f"- {u['sentence']} ({u['why']})"
                                                                      for u in unverified)
        covered = coverage_line(answer.coverage)  # so a partial list never passes for a whole one
        if covered:
            text += "\n\n" + covered
        return {"collection": name, "answer": shown.text, "text": text + footer(shown.citations),
                "abstained": answer.abstained, "abstain_code": answer.abstain_code,
                "abstain_reason": answer.abstain_reason,
                "citations": [{"n": c.n, "source": c.source, "chunk_id": c.chunk_id,
                               "location": c.location.label if c.location else "", "heading": c.heading,
                               "score": round(c.score, 4), "snippet": c.snippet} for c in shown.citations],
                "unverified": unverified, **survey_fields(answer, shown)}

    def read_passage(self, chunk_id: str, *, collection: str | None = None) -> dict:
        """A passage of the collection's index (a chunk id from `search` or a citation) with the
        text around it in its document."""
        chunk_id = _bounded(chunk_id, "chunk_id")
        name, rag = self._rag(collection)
        store = rag.store
        chunk = next((c for c in store.chunks if c.id == chunk_id), None)
        if chunk is None:
            raise QueryError(f"collection {name!r} has no passage {chunk_id[:120]!r}; use a chunk_id that "
                             "search or ask returned")
        cite = Citation(1, chunk.source, chunk.id, 0.0, "", heading=chunk.heading, location=chunk.location)
        view = source_view(Answer("", ""), cite, store, highlight=False)
        return {"collection": name, "chunk_id": chunk.id, "source": chunk.source,
                "location": chunk.location.label if chunk.location else "", "heading": chunk.heading,
                "before": view.before, "passage": view.passage, "after": view.after}


def survey_fields(answer: Answer, shown) -> dict:
    """`scope`, `coverage` (dict, None for an ordinary answer), its reader's line
    `coverage_line` ("" then) and `items`, each under the citation number the reader sees in
    `shown` (`present.numbered(answer)`): what the adapters add to an answer's structured form."""
    items = [{**asdict(i), "n": shown.number_of(i.n) or i.n} for i in answer.items]
    return {"scope": answer.scope, "coverage": answer.coverage.to_dict() if answer.coverage else None,
            "coverage_line": coverage_line(answer.coverage), "items": items}


def indexed_document(rag, document, *, name: str = "document", where: str = "the index") -> str:
    """`document` as `RAG.ask`'s `source` takes it, checked against `rag`'s live index: the
    path of an indexed document (that document) or the start of some (those under it, a folder).
    QueryError, one line naming `name` and the closest indexed paths, when none matches."""
    document = _bounded(document, name)
    sources = sorted({c.source for c in rag.store.chunks})
    if any(s.startswith(document) for s in sources):
        return document
    close = difflib.get_close_matches(document, sources, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(sources)} documents are indexed)"
    raise QueryError(f"{name}: no document of {where} has the path {document[:120]!r} or a path starting "
                     f"with it{hint}")


def _count(value, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise QueryError(f"{name} must be a whole number from 1 to {high}, not {str(value)[:40]}")
    return value


def _bounded(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS or "\x00" in value:
        raise QueryError(f"{name} must be a non-empty text of at most {MAX_ID_CHARS} characters")
    return value
