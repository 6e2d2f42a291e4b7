"""Composition of the stages: retrieve, build the prompt, generate, read back, cite.

`RAG` holds the loaded models and index for repeated use; `ask()` uses one cached per index.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from . import faiss_store, index as index_mod
from .config import DEFAULT_EMBEDDER_NAME, Settings
from .embed import Embedder
from .errors import QueryError, StoreError
from .extract import span_grammar, tidy_span
from .llm import LLM, Generation
from .ground import (asks_quantity, check_citations, compress, drop_made_up_figures, drop_made_up_names,
                     question_names, states_quantity, strip_markers)
from .prompts import ABSTAIN_TEXT, build_prompt, get_template, parse_output, sanitize
from .retrieve import Retriever
from .types import Answer, Citation, Hit, Timings, Turn, Usage

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
# the model has started writing a new context block or question instead of answering
STOPS = ("\nQuestion:", "<context>", "</context>", "\n[1] (", "\n[2] (")
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
                                      name="" if s.embedder else DEFAULT_EMBEDDER_NAME,
                                      query_backend=s.query_backend)
        return self._embedder

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            s = self.settings
            self._llm = LLM(self._model_path, n_ctx=s.n_ctx, n_threads=s.n_threads,
                            n_gpu_layers=s.n_gpu_layers, seed=s.seed)
        return self._llm

    @property
    def store(self) -> faiss_store.FaissVersion:
        return self._get_retriever().store

    def _get_retriever(self) -> Retriever:
        """The retriever over the live index version; reloads when another build replaced it."""
        index_dir = Path(self.settings.index)
        live = faiss_store.current_version(index_dir)
        if self._retriever is not None and self._retriever.store.path == live:
            return self._retriever
        if live is None and self.build_missing:
            log.info("no index yet: building %s from %s", index_dir, self.settings.corpus)
            self.index([self.settings.corpus])
            live = faiss_store.current_version(index_dir)
        if live is None:
            raise StoreError(f"no index at {index_dir}; build it with `rag index --index {index_dir}`")
        store = faiss_store.open_index(index_dir, embedder=self.embedder)
        self._retriever = Retriever(store, self.embedder, mode=self.settings.retrieval,
                                    alpha=self.settings.hybrid_alpha)
        return self._retriever

    def warm_up(self) -> "RAG":
        """Load the embedder, the index and the model now rather than on the first question.

        This includes the BM25 index (about 20 s at 100k chunks) and the question embedder
        (exported to ONNX on its first use ever), which would otherwise stall the first question.
        """
        retriever = self._get_retriever()
        if retriever.mode != "dense":
            retriever.bm25  # noqa: B018 (built on first access)
        self.embedder.embed(["warm up"])
        self.llm.warm_up()
        return self

    # ---------------------------------------------------------------- verbs

    def index(self, paths: list[str | Path] | None = None, *, rebuild: bool = False, prune: bool = True,
              progress: bool = False, lock_wait: float = 0.0) -> index_mod.IndexReport:
        """Index `paths` (default: the corpus folder) into this RAG's index, incrementally.

        The returned report lists added, updated, removed, unchanged and skipped documents. When
        another build holds the index, wait up to `lock_wait` seconds before giving up.
        """
        s = self.settings
        with self._lock:
            report = index_mod.build(paths or [s.corpus], index_dir=s.index, embedder=self.embedder,
                                     chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap,
                                     rebuild=rebuild, prune=prune, progress=progress,
                                     lock_wait=lock_wait, ann_threshold=s.ann_threshold)
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
        return self.stream(question, template=template, top_k=top_k, history=history).finish()

    def stream(self, question: str, *, template: str = "few_shot", top_k: int | None = None,
               history: list[Turn] | None = None) -> "AnswerStream":
        """The answer as it is generated: iterate for its text pieces, then read `.answer`."""
        return AnswerStream(self._stages(question, template=template, top_k=top_k, history=history))

    def _stages(self, question: str, *, template: str, top_k: int | None,
                history: list[Turn] | None) -> Iterator[str | Answer]:
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
            query = rewrite_query(question, history)
            hits = retriever.search(query, k=top_k or s.top_k)
            timings.retrieve = time.perf_counter() - t0
            reason = _retrieval_gate(retriever, query, hits, min_score=s.min_score)
            if reason:
                # nothing relevant: abstaining here saves the whole LLM call
                log.info("abstaining before generation: %s", reason)
                timings.total = time.perf_counter() - t_start
                yield ABSTAIN_TEXT
                yield Answer(question=question, text=ABSTAIN_TEXT, hits=hits, abstained=True,
                             abstain_reason=reason, template=tmpl.name, timings=timings)
                return
            t0 = time.perf_counter()
            llm = self.llm
            llm.warm_up()
            timings.load += time.perf_counter() - t0
            t0 = time.perf_counter()
            # injected instructions go first, so that nothing downstream (compression counts
            # sentences) behaves differently from the same document without them
            context = [dataclasses.replace(h, chunk=dataclasses.replace(h.chunk, text=sanitize(h.chunk.text)))
                       for h in hits]
            if s.compress:
                context = compress(query, context, embed=self.embedder.embed)
            prompt, grammar = self._prompt(question, context, tmpl, history)
            timings.prompt = time.perf_counter() - t0
            gen: Generation | None = None
            for item in llm.stream(list(prompt.messages), max_tokens=s.max_tokens,
                                   temperature=s.temperature, stop=STOPS, grammar=grammar):
                if isinstance(item, Generation):
                    gen = item
                else:
                    yield item
            assert gen is not None
            checked = self._check(question, query, gen, prompt, hits)
        if checked.reason:
            log.info("abstaining: %s", checked.reason)
        timings.prefill = gen.ttft
        timings.generate = gen.total - gen.ttft
        timings.total = time.perf_counter() - t_start
        yield Answer(question=question, text=checked.text, citations=checked.citations, hits=hits,
                     abstained=bool(checked.reason), abstain_reason=checked.reason,
                     reasoning=checked.reasoning, template=prompt.template.name,
                     support=round(checked.support, 4), relevance=round(checked.relevance, 4),
                     timings=timings, usage=Usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens))

    def _prompt(self, question: str, context: list[Hit], tmpl, history: list[Turn]):
        """The prompt for `tmpl`, and for an extractive template the grammar its answer must follow."""
        s, llm = self.settings, self.llm
        prompt = build_prompt(question, context, template=tmpl, count_tokens=llm.count_tokens,
                              budget=llm.n_ctx - s.max_tokens, history=history, best_last=s.best_last)
        grammar = None
        if tmpl.extractive:
            # a question asking for a figure gets a span holding one, or the abstain text
            grammar = span_grammar([b.chunk.text for b in prompt.blocks], abstain=ABSTAIN_TEXT,
                                   need_figure=asks_quantity(question), question=question)
        return prompt, grammar

    def _check(self, question: str, query: str, gen: Generation, prompt, hits: list[Hit]) -> "_Checked":
        """Read the model's output back and decide whether it is an answer (see `Answer`)."""
        s, tmpl = self.settings, prompt.template
        parsed = parse_output(tidy_span(gen.text) if tmpl.extractive else gen.text, template=tmpl,
                              n_blocks=len(prompt.blocks))
        out = _Checked(reasoning=parsed.reasoning)
        if parsed.refused:
            out.reason = "the model found no answer in the passages"
            return out
        answer_text, out.reason = _answer_gate(question, parsed.text, [h.chunk.text for h in hits],
                                               unknown=_unknown_names(self._get_retriever(), question))
        if out.reason:
            return out
        blocks = list(prompt.blocks)
        checked = check_citations(answer_text, [b.chunk.text for b in blocks], embed=self.embedder.embed,
                                  relevance=[b.score for b in blocks])
        if checked.dropped:
            log.info("dropped unsupported citations %s", list(checked.dropped))
        out.support = checked.support
        q_vec, a_vec = self.embedder.embed([query, strip_markers(answer_text)])
        out.relevance = float(q_vec @ a_vec)
        if out.relevance < s.min_relevance:
            # grounded or not, text about something else is no answer (and its sources mislead)
            out.reason = f"the answer does not address the question (cosine {out.relevance:.2f} < {s.min_relevance:.2f})"
        elif out.support < s.min_support:
            # nothing retrieved backs what the model wrote: a made-up answer is worse than none
            out.reason = f"answer support {out.support:.2f} is below {s.min_support:.2f}"
        else:
            out.text = checked.text
            out.citations = [_citation(n, blocks[n - 1]) for n in checked.cited]
            out.citations += [_citation(n, blocks[n - 1], inferred=True) for n in checked.inferred]
        return out


class AnswerStream:
    """Text pieces of an answer as they are generated; `.answer` holds the checked `Answer` once
    the iteration is over (the draft streamed may differ from it: see `Answer.text`)."""

    def __init__(self, items: Iterator[str | Answer]) -> None:
        self._items = items
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for item in self._items:
            if isinstance(item, Answer):
                self.answer = item
            else:
                yield item

    def finish(self) -> Answer:
        """Run to the end without looking at the pieces; the `Answer`."""
        for _ in self:
            pass
        assert self.answer is not None  # the stages always end with one
        return self.answer


@dataclasses.dataclass
class _Checked:
    """What the checks made of one generation: the answer to show, or why there is none."""

    text: str = ABSTAIN_TEXT
    citations: list[Citation] = dataclasses.field(default_factory=list)
    reason: str = ""
    reasoning: str = ""
    support: float = 0.0
    relevance: float = 0.0


def _retrieval_gate(retriever: Retriever, query: str, hits: list[Hit], *, min_score: float) -> str:
    """Why the retrieved passages cannot answer `query`, or "" when they may."""
    if not hits:
        return "the index is empty"
    names = question_names(query)
    unknown = retriever.unknown(names)
    if unknown:
        # the question is about something the documents never mention, however close its topic
        return "the documents never mention " + ", ".join(repr(w) for w in unknown)
    best = max(h.dense for h in hits)
    # MiniLM embeds rare acronyms poorly ("What does RLHF stand for?" scores 0.16 against the
    # passage that spells it out), so passages naming everything the question names still count
    if best < min_score and not (names and retriever.mentioned(names, hits)):
        return f"no passage is close to the question (best cosine {best:.2f} < {min_score:.2f})"
    return ""


def _unknown_names(retriever: Retriever, question: str) -> Callable[[list[str]], list[str]]:
    """Which of some names the indexed documents never mention (for `drop_made_up_names`)."""
    asked = set(re.findall(r"[\w-]+", question.lower()))

    def unknown(names: list[str]) -> list[str]:
        # names from the question count as known: the retrieval gate has already vetted them;
        # the stemmer keeps "GPUs" and "Google's" whole, so their singular is tried too
        return [n for n in retriever.unknown(names) if n.lower() not in asked
                and retriever.unknown([re.sub(r"(?:'s|s)$", "", n)])]
    return unknown


def _answer_gate(question: str, answer: str, sources: list[str], *,
                 unknown: Callable[[list[str]], list[str]] | None = None) -> tuple[str, str]:
    """The answer with its made-up figures (and, given `unknown`, names) removed, and why nothing
    usable is left ("" if it is)."""
    if not strip_markers(answer):
        return answer, "the answer holds citation markers and no text"
    kept, made_up = drop_made_up_figures(answer, sources, question)
    if made_up:
        log.info("left out answer sentences with figures no passage contains: %s", ", ".join(made_up))
    if not strip_markers(kept):
        return answer, "the answer states figures no passage contains: " + ", ".join(made_up[:5])
    kept, made_up = drop_made_up_names(kept, unknown=unknown) if unknown else (kept, [])
    if made_up:
        log.info("left out answer sentences naming what the documents never mention: %s", ", ".join(made_up))
    if not strip_markers(kept):
        return answer, "the answer names what the documents never mention: " + ", ".join(made_up[:5])
    if asks_quantity(question) and not states_quantity(kept):
        return answer, "the question asks for a figure and no passage-backed one was given"
    return kept, ""


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


_PRONOUN = re.compile(r"\b(it|its|they|their|them|this|that|these|those)\b", re.I)
_WH = re.compile(r"^\s*(?:what|which|who|whom|how|why|when|where|is|are|was|were|do|does|did|can|could|"
                 r"should|would|tell me|explain|describe|define)\b(?:\s+(?:is|are|was|were|do|does|did|the|a|an)\b)*\s*",
                 re.I)


_GENERIC = frozenset("""and or but so the a an of for about any more some other what why how
advantages disadvantages pros cons benefits drawbacks limitations problems issues examples example
uses use applications types kinds alternatives difference differences else""".split())


def _topic(question: str) -> str:
    """The subject of a question: "What are transformer networks?" -> "transformer networks"."""
    topic = _WH.sub("", question).strip(" ?.!")
    return re.sub(r"\s+(?:used for|used|mean|work|about)$", "", topic, flags=re.I)


def rewrite_query(question: str, history: list[Turn]) -> str:
    """Make a follow-up standalone for retrieval: "What are its disadvantages?" after "What are
    transformer networks?" becomes "What are transformer networks disadvantages?". A question
    that names its own subject is left alone."""
    if not history:
        return question
    topic = _topic(history[-1].question)
    if not topic:
        return question
    if _PRONOUN.search(question):
        return _PRONOUN.sub(topic, question, count=1)
    own = set(re.findall(r"[a-z]+", _topic(question).lower())) - _GENERIC
    if not own:  # "and the disadvantages?", "why?", "any examples?"
        return f"{topic} {question}"
    return question


def _citation(n: int, hit: Hit, *, inferred: bool = False) -> Citation:
    text = " ".join(hit.chunk.text.split())
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."
    return Citation(n=n, source=hit.chunk.source, chunk_id=hit.chunk.id, score=round(hit.dense, 4),
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
