"""Composition of the stages: retrieve, build the prompt, generate, read back, cite.

`RAG` holds the loaded models and index for repeated use; `ask()` uses one cached per index.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Iterator

from . import index as index_mod
from .config import DEFAULT_EMBEDDER_NAME, Settings
from .embed import Embedder
from .errors import QueryError, StoreError
from .llm import LLM, Generation
from .prompts import ABSTAIN_TEXT, build_prompt, get_template, parse_output
from .retrieve import Retriever
from .types import Answer, Citation, Hit, Timings, Turn, Usage

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
SNIPPET_CHARS = 240


class RAG:
    """Question answering over one index. Cheap to construct; models load on first use.

    >>> rag = RAG(index="indexes/default", model="path/to/model.gguf", n_gpu_layers=-1)
    >>> rag.ask("What is LoRA?").text
    """

    def __init__(self, settings: Settings | None = None, *, build_missing: bool | None = None,
                 **overrides) -> None:
        if settings is not None and overrides:
            raise TypeError("pass either settings or keyword overrides, not both")
        self.settings = settings if settings is not None else Settings.load(**overrides)
        # a missing index is built from the corpus only when the caller did not name one
        self.build_missing = (overrides.get("index") is None and settings is None) \
            if build_missing is None else build_missing
        # path checks are cheap and a wrong path should fail now, not at the first question
        self._model_path = self.settings.model_path()
        self._embedder_path = self.settings.embedder_path()
        self._embedder: Embedder | None = None
        self._llm: LLM | None = None
        self._retriever: Retriever | None = None
        self._lock = threading.RLock()  # llama.cpp contexts are not thread-safe

    # ---------------------------------------------------------------- components

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = Embedder(self._embedder_path, batch_size=s.embed_batch_size,
                                      name="" if s.embedder else DEFAULT_EMBEDDER_NAME)
        return self._embedder

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            s = self.settings
            self._llm = LLM(self._model_path, n_ctx=s.n_ctx, n_threads=s.n_threads,
                            n_gpu_layers=s.n_gpu_layers, seed=s.seed)
        return self._llm

    @property
    def store(self) -> index_mod.Store:
        return self._get_retriever().store

    def _get_retriever(self) -> Retriever:
        """The retriever over the live index version; reloads when another build replaced it."""
        index_dir = Path(self.settings.index)
        live = index_mod.current_version(index_dir)
        if self._retriever is not None and self._retriever.store.path == live:
            return self._retriever
        if live is None and self.build_missing:
            log.info("no index yet: building %s from %s", index_dir, self.settings.corpus)
            self.index([self.settings.corpus])
            live = index_mod.current_version(index_dir)
        if live is None:
            raise StoreError(f"no index at {index_dir}; build it with `rag index --index {index_dir}`")
        store = index_mod.open_index(index_dir, embedder_name=self.embedder.name)
        self._retriever = Retriever(store, self.embedder)
        return self._retriever

    def warm_up(self) -> "RAG":
        """Load the embedder, the index and the model now rather than on the first question."""
        self._get_retriever()
        self.embedder.warm_up()
        self.llm.warm_up()
        return self

    # ---------------------------------------------------------------- verbs

    def index(self, paths: list[str | Path] | None = None, *, rebuild: bool = False, prune: bool = True,
              progress: bool = False) -> index_mod.IndexReport:
        """Index `paths` (default: the corpus folder) into this RAG's index, incrementally."""
        s = self.settings
        with self._lock:
            report = index_mod.build(paths or [s.corpus], index_dir=s.index, embedder=self.embedder,
                                     chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap,
                                     rebuild=rebuild, prune=prune, progress=progress,
                                     ann_threshold=s.ann_threshold)
            self._retriever = None
        return report

    def search(self, query: str, *, top_k: int | None = None) -> list[Hit]:
        """Retrieve the best distinct chunks for `query`."""
        query = _clean_question(query)
        with self._lock:
            return self._get_retriever().search(query, k=top_k or self.settings.top_k)

    def ask(self, question: str, *, template: str = "few_shot", top_k: int | None = None,
            history: list[Turn] | None = None) -> Answer:
        """Answer `question` from the indexed documents. See `Answer` for what comes back."""
        for item in self.stream(question, template=template, top_k=top_k, history=history):
            if isinstance(item, Answer):
                return item
        raise RuntimeError("stream ended without an answer")  # unreachable by construction

    def stream(self, question: str, *, template: str = "few_shot", top_k: int | None = None,
               history: list[Turn] | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are generated, then the final `Answer`."""
        t_start = time.perf_counter()
        question = _clean_question(question)
        tmpl = get_template(template)
        s = self.settings
        history = list(history or [])
        with self._lock:
            retriever = self._get_retriever()
            retriever.embedder.warm_up()
            timings = Timings(load=time.perf_counter() - t_start)
            t0 = time.perf_counter()
            hits = retriever.search(retrieval_query(question, history), k=top_k or s.top_k)
            timings.retrieve = time.perf_counter() - t0
            if not hits or hits[0].score < s.min_score:
                # nothing relevant: abstaining here saves the whole LLM call
                timings.total = time.perf_counter() - t_start
                yield ABSTAIN_TEXT
                yield Answer(question=question, text=ABSTAIN_TEXT, hits=hits, abstained=True,
                             template=tmpl.name, timings=timings)
                return
            t0 = time.perf_counter()
            llm = self.llm
            llm.warm_up()
            timings.load += time.perf_counter() - t0
            t0 = time.perf_counter()
            prompt = build_prompt(question, hits, template=tmpl, count_tokens=llm.count_tokens,
                                  budget=llm.n_ctx - s.max_tokens, history=history)
            timings.prompt = time.perf_counter() - t0
            gen: Generation | None = None
            for item in llm.stream(list(prompt.messages), max_tokens=s.max_tokens,
                                   temperature=s.temperature, stop=("\nQuestion:", "<context>")):
                if isinstance(item, Generation):
                    gen = item
                else:
                    yield item
        assert gen is not None
        parsed = parse_output(gen.text, template=tmpl, n_blocks=len(prompt.blocks))
        blocks = list(prompt.blocks)
        if parsed.refused:
            text, citations = ABSTAIN_TEXT, []
        else:
            text = parsed.text
            citations = [_citation(n, blocks[n - 1]) for n in parsed.cited]
            if not citations and blocks:
                best = max(range(len(blocks)), key=lambda i: _overlap(text, blocks[i].chunk.text))
                citations = [_citation(best + 1, blocks[best], inferred=True)]
        timings.prefill = gen.ttft
        timings.generate = gen.total - gen.ttft
        timings.total = time.perf_counter() - t_start
        yield Answer(question=question, text=text, citations=citations, hits=hits,
                     abstained=parsed.refused, reasoning=parsed.reasoning, template=tmpl.name,
                     timings=timings,
                     usage=Usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens))


def _clean_question(question: str) -> str:
    if not isinstance(question, str):
        raise QueryError("the question must be text")
    question = " ".join(question.split())
    if not question:
        raise QueryError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question is {len(question)} characters long; the limit is "
                         f"{MAX_QUESTION_CHARS}")
    return question


_FOLLOW_UP = re.compile(r"\b(it|its|they|their|them|this|that|these|those|he|she|his|her)\b", re.I)


def retrieval_query(question: str, history: list[Turn]) -> str:
    """A follow-up such as "what are its disadvantages?" is searched together with the
    question it follows, so "its" finds the earlier topic."""
    if history and (_FOLLOW_UP.search(question) or len(question.split()) <= 4):
        return f"{history[-1].question} {question}"
    return question


def _tokens(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _overlap(answer: str, passage: str) -> float:
    a = _tokens(answer)
    return len(a & _tokens(passage)) / (len(a) or 1)


def _citation(n: int, hit: Hit, *, inferred: bool = False) -> Citation:
    text = " ".join(hit.chunk.text.split())
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."
    return Citation(n=n, source=hit.chunk.source, chunk_id=hit.chunk.id, score=round(hit.score, 4),
                    snippet=snippet, heading=hit.chunk.heading, inferred=inferred)


_DEFAULTS: dict[str, RAG] = {}
_DEFAULTS_LOCK = threading.Lock()


def ask(question: str, *, template: str = "few_shot", top_k: int | None = None,
        index: str | None = None, history: list[Turn] | None = None) -> Answer:
    """Answer a question from your documents with the default models.

    The first call loads the models (and builds the default index from `corpus/` if it is
    missing); later calls reuse them. Settings come from RAG_* environment variables.
    """
    key = str(Path(index).resolve()) if index else ""
    with _DEFAULTS_LOCK:
        rag = _DEFAULTS.get(key)
        if rag is None:
            rag = _DEFAULTS[key] = RAG(index=index)
    return rag.ask(question, template=template, top_k=top_k, history=history)
