"""Composition of the stages: clean → rewrite → retrieve → gate → template → context → prompt →
generate → check and cite (`RAG._stages` reads as that list).

`RAG` holds its components for repeated use: an `Embedder`, a `Generator` and a `VectorStore`
(see `protocols`), the shipped ones unless others are given; `ask()` uses one cached per index.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


from . import generators, index as index_mod
from .checks.claims import Vocabulary
from .config import DEFAULT_EMBEDDER_NAME, Settings
from .choose import AUTO, choose
from .context import compress
from .errors import BackendChanged, ConfigError, IndexMissing, RagError
from .extract import best_sentence, span_grammar
from .fairlock import FairLock
from .models import model_path
from .checks.figures import asks_quantity
from .checks.gate import retrieval_gate
from .checks.profiles import Policy, policy
from .prompts import ABSTAIN_TEXT, build_prompt, get_template, sanitize
from .question import clean_question
from .checks.readback import read_back
from .retrieve import Retriever
from .rewrite import rewrite_query
from .scope import Scope, recognise
from . import survey as survey_mod
from .stopping import early_stop
from .stores import open_store
from .types import Answer, Capabilities, DraftText, Generation, Hit, Timings, Turn

log = logging.getLogger(__name__)

# the model has started writing a new context block or question instead of answering
STOPS = ("\nQuestion:", "<context>", "</context>", "\n[1] (", "\n[2] (")


class RAG:
    """Question answering over one index. Cheap to construct; models load on first use.

    >>> rag = RAG(index="indexes/default", model="path/to/model.gguf", n_gpu_layers=-1)
    >>> rag.ask("What is LoRA?").text

    `embedder`, `generator` and `store` replace the shipped components (any objects following
    `rag.protocols`); keyword overrides are settings (`guards="capable"`, `top_k=6`, ...).
    """

    def __init__(self, settings: Settings | None = None, *, embedder=None, generator=None, store=None,
                 build_missing: bool | None = None, **overrides) -> None:
        if isinstance(store, str):  # the `store` setting ("faiss" or "milvus"), not a store object
            overrides["store"], store = store, None
        if settings is not None and overrides:
            raise TypeError("pass either settings or keyword overrides, not both")
        self.settings = settings if settings is not None else Settings.load(**overrides)
        # a missing index is built from the corpus only when the caller did not name one
        self.build_missing = (overrides.get("index") is None and settings is None and store is None) \
            if build_missing is None else build_missing
        # path checks are cheap and a wrong path should fail now, not at the first question
        self._model_path = model_path(self.settings) if generator is None and not self.settings.llm_url else ""
        self._embedder_path = self.settings.embedder_path() if embedder is None else ""
        self._embedder = embedder
        self._generator = generator
        self._store = store
        self._retriever: Retriever | None = None
        self._vocabulary = None
        self._owner: RAG | None = None  # the RAG whose model a sibling answers with
        # one generation at a time: llama.cpp contexts are not thread-safe. Retrieval, the prompt
        # and the checks run outside it, so other questions get those done meanwhile. First come
        # first served, and not bound to a thread: a streamed answer may be resumed by another
        # thread than the one that started it (Gradio)
        self._model_lock = FairLock()
        self._retriever_lock = threading.Lock()
        self._component_lock = threading.Lock()  # two first questions make one model, not two
        self._switch_lock = threading.Lock()  # one model change at a time (use_model)
        self._n_params: int | None = None  # the model's size, read once for guards=auto
        self._size_read = False

    # ---------------------------------------------------------------- components

    def _once(self, attr: str, make):
        """The component in `attr`, made by `make()` the first time (once, whatever the threads)."""
        if getattr(self, attr) is None:
            with self._component_lock:
                if getattr(self, attr) is None:
                    setattr(self, attr, make())
        return getattr(self, attr)

    def _embed_exact(self, texts: list[str]):
        """What the answer checks, compression and sentence ranking embed with: texts compared
        with one another, never with the index, so torch's vectors even under int8 (rag.embed)."""
        exact = getattr(self.embedder, "embed_exact", None)
        return exact(texts) if exact is not None else self.embedder.embed(texts)

    @property
    def embedder(self):
        return self._once("_embedder", self._new_embedder)

    def _new_embedder(self):
        from .embed import Embedder

        s = self.settings
        return Embedder(self._embedder_path, batch_size=s.embed_batch_size,
                        name="" if s.embedder else DEFAULT_EMBEDDER_NAME, query_backend=s.query_backend,
                        backend=s.embed_backend)

    @property
    def generator(self):
        """The chat model: an LLM server when `llm_url` is set, else the GGUF in-process."""
        if self._owner is not None:
            return self._owner.generator
        return self._once("_generator", self._new_generator)

    @property
    def capabilities(self) -> Capabilities:
        """What the generator declares it takes; one of your own that declares nothing is given
        none of the options (it plugs in as before capabilities were declared, minus them)."""
        return getattr(self.generator, "capabilities", None) or Capabilities()

    def _new_generator(self):
        return generators.from_settings(self.settings, model_path=self._model_path)

    @property
    def vocabulary(self) -> Vocabulary:
        """The embedder's whole-word vocabulary, which tells rare terms from common words for the
        `claims` check (read from its folder; no model is loaded for it)."""
        return self._once("_vocabulary", lambda: Vocabulary.of(self.embedder))

    llm = generator  # the name this attribute had before generators other than llama.cpp existed

    @property
    def model_path(self) -> str:
        """The GGUF answering: "" when answers come from a server or a generator given to RAG."""
        if self._owner is not None:
            return self._owner.model_path
        return self._model_path

    def use_model(self, model: str) -> str:
        """Answer with another GGUF from the next question on; returns its path.

        `model` is what the `model` setting takes (a path, a file in `models_dir`, a catalogue
        name). The new model is loaded here, while the current one goes on answering; only a
        model that loaded replaces it (a broken file raises ConfigError and changes nothing), and
        the old one is freed once no answer uses it. Choosing the model in use does nothing."""
        if self.settings.llm_url:
            raise ConfigError(f"answers come from the LLM server {self.settings.llm_url}; "
                              f"choose its model there (llm_model)")
        settings = dataclasses.replace(self.settings, model=model)
        path = model_path(settings)
        with self._switch_lock:
            if path == self._model_path and self._generator is not None:
                return path
            new = generators.local(path, settings)
            new.warm_up()
            with self._model_lock:  # an answer being written finishes with the model it began with
                self._generator, self._model_path, self.settings = new, path, settings
        log.info("answering with %s from now on", path)
        return path

    @property
    def vector_store(self):
        """Where the index lives (a `VectorStore`): the FAISS folder `settings.index` by default,
        Milvus with `store="milvus"`."""
        return self._once("_store", self._new_store)

    def _new_store(self):
        return open_store(self.settings)

    @property
    def store(self):
        """The live index version, loaded and verified (`IndexVersion`)."""
        return self._get_retriever().store

    def policy(self) -> Policy:
        """The answer checks in force; `guards=auto` loads the model to read its size."""
        return self._policy(self.settings)

    def _policy(self, s: Settings) -> Policy:
        if s.guards != "auto":
            return policy(s)
        return policy(s, n_params=self.model_size())

    def model_size(self) -> int | None:
        """The model's parameter count (None where a server does not say), read once."""
        if not self._size_read:  # once: the lock would make each question wait for another's answer
            with self._model_lock:
                gen = self.generator
                gen.warm_up()
                self._n_params, self._size_read = gen.n_params, True
        return self._n_params

    def _get_retriever(self) -> Retriever:
        """The retriever over the live index version; reloads when another build replaced it."""
        with self._retriever_lock:
            store = self.vector_store
            live = store.live()
            if self._retriever is not None and self._retriever.store.version == live:
                return self._retriever
            if live is None and self.build_missing:
                log.info("no index yet: building %s from %s", store.location, self.settings.corpus)
                self._index([self.settings.corpus])
                live = store.live()
            if live is None:
                raise IndexMissing(f"no index at {store.location}; build it with `rag index --index {store.location}`")
            try:
                opened = store.open(embedder=self.embedder)
            except BackendChanged:
                if not self.build_missing:
                    raise
                # built by another embedder backend (torch before int8 ONNX): built again, as a
                # missing index would be, rather than searched with the other backend's vectors
                log.info("%s was built by another embedder backend: rebuilding it", store.location)
                self._index([self.settings.corpus])
                opened = store.open(embedder=self.embedder)
            self._retriever = Retriever(opened, self.embedder,
                                        mode=self.settings.retrieval, alpha=self.settings.hybrid_alpha)
            return self._retriever

    def warm_up(self) -> "RAG":
        """Load the embedder, the index and the model now rather than on the first question.

        This includes the BM25 index (memory-mapped from the index version; built, about 20 s at
        100k chunks, for versions written before it was saved) and the question embedder (exported
        to ONNX on its first use ever), which would otherwise stall the first question.
        """
        retriever = self._get_retriever()
        if retriever.mode != "dense":
            retriever.bm25  # noqa: B018 (built on first access)
        self.embedder.embed(["warm up"])
        self._embed_exact(["warm up"])  # the checks' fp32 twin, under int8 a second ONNX model
        # a process that answers many questions embeds their passages faster with torch (the
        # checks' batches); a one-off `rag ask`, which never calls this, answers without it
        getattr(self.embedder, "model", None)
        with self._model_lock:
            self.generator.warm_up()
        return self

    def sibling(self, settings: Settings) -> "RAG":
        """A RAG over `settings` (another index: a collection's) that shares this one's embedder,
        model and the model's lock, so collections cost no second model and never generate at once."""
        other = RAG(settings, embedder=self.embedder, generator=self.generator, build_missing=False)
        other._model_lock = self._model_lock
        other._owner = self  # a model this one switches to (use_model) is the sibling's too
        return other

    # ---------------------------------------------------------------- verbs

    def index(self, paths: list[str | Path] | None = None, *, rebuild: bool = False, prune: bool = True,
              progress: bool = False, lock_wait: float = 0.0) -> index_mod.IndexReport:
        """Index `paths` (default: the corpus folder) into this RAG's index, incrementally.

        The returned report lists added, updated, removed, unchanged and skipped documents. When
        another build holds the index, wait up to `lock_wait` seconds before giving up. Questions
        keep being answered from the live version meanwhile; the next one after the commit reads
        the new version.
        """
        # no lock of this RAG is held while building: questions go on reading the live version
        # (the store's writer keeps builds apart), and the first after the commit loads the new one
        return self._index(paths, rebuild=rebuild, prune=prune, progress=progress, lock_wait=lock_wait)

    def _index(self, paths, *, rebuild: bool = False, prune: bool = True, progress: bool | str = False,
               lock_wait: float = 0.0) -> index_mod.IndexReport:
        s = self.settings
        return index_mod.build(paths or [s.corpus], store=self.vector_store, embedder=self.embedder,
                               chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap, rebuild=rebuild,
                               prune=prune, progress=progress, lock_wait=lock_wait,
                               read_limits=index_mod.ReadLimits.from_settings(s))

    def search(self, query: str, *, top_k: int | None = None, source: str | None = None) -> list[Hit]:
        """Retrieve the best distinct chunks for `query` (from documents under `source`, if given)."""
        return self._get_retriever().search(clean_question(query), k=top_k or self.settings.top_k,
                                            source=source or None)

    def ask(self, question: str, *, template: str = AUTO, top_k: int | None = None,
            history: list[Turn] | None = None, max_tokens: int | None = None,
            temperature: float | None = None, source: str | None = None) -> Answer:
        """Answer `question` from the indexed documents. See `Answer` for what comes back.

        `top_k`, `max_tokens` and `temperature` override the settings for this question; with
        `source`, only documents whose path starts with it are searched."""
        return self.stream(question, template=template, top_k=top_k, history=history, max_tokens=max_tokens,
                           temperature=temperature, source=source).finish()

    def stream(self, question: str, *, template: str = AUTO, top_k: int | None = None,
               history: list[Turn] | None = None, max_tokens: int | None = None,
               temperature: float | None = None, source: str | None = None,
               drafts: bool = False) -> "AnswerStream":
        """The answer as text pieces: iterate for them, then read `.answer`.

        The pieces are the checked answer, given once the checks are done: no reader sees a
        sentence the checks later remove. With `drafts`, the model's text comes first, as it is
        generated, in `DraftText` pieces, for a consumer that shows it visibly as a draft (the
        chat's greyed "checking" text) and replaces it with the checked pieces that follow."""
        return AnswerStream(self._stages(question, template=template, top_k=top_k, history=history,
                                         max_tokens=max_tokens, temperature=temperature, source=source),
                            drafts=drafts)

    # ---------------------------------------------------------------- the stages

    def _stages(self, question: str, *, template: str, top_k: int | None, history: list[Turn] | None,
                max_tokens: int | None = None, temperature: float | None = None,
                source: str | None = None) -> Iterator[str | Answer]:
        """The question path: clean → rewrite → retrieve → gate → template → context → prompt →
        generate → check and cite; every stage reads this question's settings `s`."""
        s = self._question_settings(top_k=top_k, max_tokens=max_tokens, temperature=temperature)
        clock = _Clock()
        question = clean_question(question)
        # `auto` picks the template once the model is loaded; a name is checked up front
        tmpl = get_template(template) if template != AUTO else None
        history = list(history or [])
        with clock("load"):
            retriever = self._get_retriever()
            self.embedder.warm_up()
        scope = self._scope(question, retriever, source, s, follow_up=bool(history))
        if scope is not None:
            with clock("retrieve"):
                answer = yield from self._survey(question, scope, retriever, s)
            if answer is not None:  # else a list question with no list: answered from top-k
                answer.timings = clock.stop()
                yield answer.text
                yield answer
                return
        with clock("retrieve"):
            query = rewrite_query(question, history)
            hits = retriever.search(query, k=s.top_k, source=source or None)
        refusal = self._gate(question, query, hits, retriever, tmpl, s)
        if refusal is not None:
            yield refusal.text
            refusal.timings = clock.stop()
            yield refusal
            return
        with clock("load"):
            pol = self._policy(s)
        tmpl, choice = self._template(question, tmpl)
        with clock("prompt"):
            context = self._context(query, self._passages(hits, tmpl, s), pol, s)
            prompt, grammar = self._prompt(question, context, tmpl, history, s)
        gen = yield from self._generate(prompt, grammar, pol, s)
        with clock("check"):
            answer = read_back(question, query, gen, prompt, hits, retriever, pol, embed=self._embed_exact,
                               vocabulary=self.vocabulary, quote=s.answer_unit == "sentence",
                               quote_previous=s.quote_previous, quote_context=s.quote_context,
                               overrule=self._overrule(question, prompt, tmpl, s),
                               previous=history[-1].answer if history else "",
                               previous_question=history[-1].question if history else "")
        if choice is not None:
            answer.template_reason = f"auto: {choice.reason}"
        answer.timings = clock.stop(prefill=gen.ttft, generate=gen.total - gen.ttft)
        yield answer.text  # the checked text: what any reader may be shown as the answer
        yield answer

    def _scope(self, question: str, retriever: Retriever, source: str | None, s: Settings, *,
               follow_up: bool = False) -> Scope | None:
        """A question about a whole document or collection (`rag.scope`), None for an ordinary
        one, with `whole=off` or over an empty index. `source` names the documents outright: a
        whole path is that document, a folder the documents under it (none: nothing to read)."""
        if s.whole == "off" or len(retriever.store) == 0:
            return None
        sources = self._sources(retriever)
        named: tuple[str, ...] = ()
        if source:
            named = (source,) if source in sources else tuple(sorted(x for x in sources if x.startswith(source)))
            named = named or (source,)  # names nothing: the survey finds nothing and says so
        off = {x.strip() for x in s.whole_off.split(",") if x.strip()}
        return recognise(question, sources=sources, documents=named, follow_up=follow_up, off=off)

    def _sources(self, retriever: Retriever) -> set[str]:
        """The indexed documents' paths, gathered once per index version."""
        cached = getattr(self, "_sources_of", None)
        if cached is None or cached[0] != retriever.store.version:
            cached = self._sources_of = (retriever.store.version, {c.source for c in retriever.store.chunks})
        return cached[1]

    def _survey(self, question: str, scope: Scope, retriever: Retriever, s: Settings):
        """Read every chunk in `scope` (rag.survey), yielding progress; the `Answer`, or None when
        a list question finds no list (the ordinary path answers it then)."""
        log.info("%s question (%s): reading %s", scope.kind, scope.reason,
                 ", ".join(scope.documents) or "the whole collection")
        store = retriever.store
        result = yield from survey_mod.survey(
            scope, question, chunks=store.chunks, vectors=store.vectors, lexical=retriever.bm25.scores,
            terms=retriever.bm25.terms, embed=self.embedder.embed,
            budget=survey_mod.Budget(chunks=s.whole_chunks, seconds=s.whole_seconds))
        if result is None:
            log.info("no list about %r: answering from the best passages", scope.topic)
            return None
        answer = Answer(question=question, text=result.text, citations=result.citations,
                        sentences=result.sentences, template="survey", scope=scope.kind,
                        template_reason=f"{scope.kind} question ({scope.reason})", support=1.0 if result.items else 0.0,
                        coverage=result.coverage, items=result.items)
        if not result.items:
            answer.text, answer.abstained, answer.abstain_code = ABSTAIN_TEXT, True, "nothing_found"
            if not result.coverage.chunks_total:
                answer.abstain_code = "document_not_found"
                answer.abstain_reason = f"no indexed document is {', '.join(scope.documents)[:200]}"
            else:
                answer.abstain_reason = (f"no document in scope mentions {scope.topic!r}" if scope.topic
                                         else "the documents in scope hold no text to read")
        else:
            answer.text = survey_mod.intro(scope, result) + "\n" + result.text
        return answer

    def _question_settings(self, *, top_k: int | None, max_tokens: int | None,
                           temperature: float | None) -> Settings:
        """The settings with this question's overrides: the one object every stage reads, so a
        model switched meanwhile (`use_model`) changes no stage of a question under way."""
        s = self.settings
        if max_tokens is not None or temperature is not None:
            s = dataclasses.replace(s, max_tokens=max_tokens or s.max_tokens,
                                    temperature=s.temperature if temperature is None else temperature)
            s.validate()
        return dataclasses.replace(s, top_k=top_k or s.top_k)

    def _gate(self, question: str, query: str, hits: list[Hit], retriever: Retriever, tmpl,
              s: Settings) -> Answer | None:
        """The abstaining `Answer` (its timings still to fill in) when nothing retrieved answers
        the question; the model is not loaded for it. The gate reads only retrieval settings,
        which every profile shares."""
        code, reason = retrieval_gate(retriever, query, hits, policy(s, n_params=0), vocabulary=self.vocabulary)
        if not code:
            return None
        log.info("abstaining before generation: %s", reason)
        return Answer(question=question, text=ABSTAIN_TEXT, hits=hits, abstained=True, abstain_reason=reason,
                      abstain_code=code, template=tmpl.name if tmpl else AUTO)

    def _template(self, question: str, tmpl):
        """The template named, or under `auto` the one `choose` picks for the question and the
        model, with the choice (None when it was named)."""
        if tmpl is not None:
            return tmpl, None
        choice = choose(question, grammar=self.capabilities.grammar, n_params=self.model_size(),
                        route=self.settings.auto_route)
        log.info("template %s: %s", choice.template, choice.reason)
        return get_template(choice.template), choice

    def _passages(self, hits: list[Hit], tmpl, s: Settings) -> list[Hit]:
        """The retrieved passages the prompt shows: an extractive template reads only the best
        `extract_passages`, since every further passage is one more place to copy a wrong span."""
        n = s.extract_passages
        return hits[:n] if tmpl.extractive and n else hits

    def _context(self, query: str, hits: list[Hit], pol: Policy, s: Settings) -> list[Hit]:
        """The passages as the model will read them: instructions left out (once, before anything
        counts sentences, so a document with injected text gives the prompt it would give without),
        then compressed to what matters for the question."""
        context = hits
        if pol.on("injection"):
            context = [dataclasses.replace(h, chunk=dataclasses.replace(h.chunk, text=sanitize(h.chunk.text)))
                       for h in hits]
        if s.compress:
            context = compress(query, context, embed=self._embed_exact)
        return context

    def _prompt(self, question: str, context: list[Hit], tmpl, history: list[Turn], s: Settings):
        """The prompt for `tmpl`, and for an extractive template the grammar its answer must follow."""
        gen = self.generator
        grammar = None
        if tmpl.extractive and not self.capabilities.grammar:
            raise ConfigError(f"the {tmpl.name} template needs a model that takes a grammar, and "
                              f"{gen.name} does not; choose another template")
        prompt = build_prompt(question, context, template=tmpl, count_tokens=gen.count_tokens,
                              budget=gen.n_ctx - s.max_tokens, history=history, best_last=s.best_last)
        if tmpl.extractive:
            # a question asking for a figure gets a span holding one, or the abstain text
            grammar = span_grammar([b.chunk.text for b in prompt.blocks], abstain=ABSTAIN_TEXT,
                                   need_figure=asks_quantity(question), question=question,
                                   sentences_kept=s.extract_sentences, scores=[b.score for b in prompt.blocks],
                                   may_refuse=s.extract_may_refuse,
                                   embed=self._embed_exact if s.sentence_rank == "words+meaning" else None,
                                   skip_headings=s.skip_headings)
        return prompt, grammar

    def _overrule(self, question: str, prompt, tmpl, s: Settings):
        """For a quoting template with `refusal_overrule` on: what stands in for the model's
        refusal, the best sentence quoted when it matches the question at least that well
        (`extract.best_sentence`), else None. The 135M model gave the abstain text for 13 of the
        181 answerable dev questions that reached it and 6 of the 55 unanswerable ones; those
        answerable had a best sentence matching at 0.66-1.45, the unanswerable mostly below 0.7."""
        if not (tmpl.extractive and s.refusal_overrule):
            return None

        def overrule() -> str | None:
            best = best_sentence([b.chunk.text for b in prompt.blocks], question, embed=self._embed_exact,
                                 need_figure=asks_quantity(question), scores=[b.score for b in prompt.blocks],
                                 skip_headings=s.skip_headings, by_meaning=s.sentence_rank == "words+meaning")
            if best is None or best[2] < s.refusal_overrule:
                return None
            return f"{best[1]} [{best[0]}]"
        return overrule

    def _generate(self, prompt, grammar: str | None, pol: Policy, s: Settings):
        """Yield the model's text pieces, then return its `Generation`. The model's lock is held
        for this stage only: one answer is written at a time, the other stages run meanwhile."""
        gen = None
        until = self._stream_options(prompt, pol, s)
        with self._model_lock:
            for item in self.generator.stream(list(prompt.messages), max_tokens=s.max_tokens,
                                              temperature=s.temperature, stop=STOPS, grammar=grammar,
                                              **until):
                if isinstance(item, Generation):
                    gen = item
                else:
                    yield DraftText(item)
        if gen is None:
            raise RagError(f"the model {self.generator.name} ended without a result")
        return gen

    def _stream_options(self, prompt, pol: Policy, s: Settings) -> dict:
        """The options of `stream` this answer passes where the generator declares them (see
        `types.Capabilities`): the early-stop conditions (`stop_early`) and how many leading
        messages are the template's own text, whose KV state may outlive the process (`cache_head`)."""
        can = self.capabilities
        out = {}
        if s.stop_early and can.stop_when and (stop := early_stop(prompt.template, pol)):
            out["stop_when"] = stop
        if can.cache_head:
            out["cache_head"] = prompt.fixed
        return out


class AnswerStream:
    """Text pieces of an answer; `.answer` holds the checked `Answer` once the iteration is over.
    The pieces are the checked text only, unless `drafts` lets the model's unchecked text
    (`DraftText` pieces) through ahead of it."""

    def __init__(self, items: Iterator[str | Answer], *, drafts: bool = False) -> None:
        self._items = items
        self._drafts = drafts
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for item in self._items:
                if isinstance(item, Answer):
                    self.answer = item
                elif self._drafts or not isinstance(item, DraftText):
                    yield item
        finally:
            # a consumer that stops early (a client gone) ends the stages now, so the model's
            # lock is released by the thread that holds it, not whenever the stream is collected
            self._items.close()

    def close(self) -> None:
        self._items.close()

    def finish(self) -> Answer:
        """Run to the end without looking at the pieces; the `Answer`."""
        for _ in self:
            pass
        assert self.answer is not None  # the stages always end with one
        return self.answer


class _Clock:
    """Seconds per stage of one question, added up across repeated stages."""

    def __init__(self) -> None:
        self.timings = Timings()
        self._t0 = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            setattr(self.timings, stage, getattr(self.timings, stage) + time.perf_counter() - t0)

    def stop(self, **measured: float) -> Timings:
        """The timings, the total up to now, and stages measured elsewhere (the generator's
        prefill) filled in."""
        self.timings.total = time.perf_counter() - self._t0
        for k, v in measured.items():
            setattr(self.timings, k, v)
        return self.timings


_DEFAULTS: dict[str, RAG] = {}
_DEFAULTS_LOCK = threading.Lock()


def ask(question: str, *, template: str = AUTO, top_k: int | None = None,
        index: str | None = None, history: list[Turn] | None = None, collection: str | None = None) -> Answer:
    """Answer a question from your documents with the default models.

    The first call loads the models (and builds the default index from `corpus/` if it is
    missing); later calls reuse them. Settings come from RAG_* environment variables.
    `collection` names a collection (see `rag.collections`) instead of an `index` folder.
    """
    if collection and index:
        raise ConfigError("name an index or a collection, not both")
    key = str(Path(index).resolve()) if index else ""
    with _DEFAULTS_LOCK:
        rag = _DEFAULTS.get(key)
        if rag is None:
            rag = _DEFAULTS[key] = RAG(index=index)
    if collection:
        from .collections import CollectionRAGs, Collections

        with _DEFAULTS_LOCK:
            rags = _COLLECTIONS.get(key)
            if rags is None:
                rags = _COLLECTIONS[key] = CollectionRAGs(rag, Collections.from_settings(rag.settings))
        rag = rags.get(collection)
    return rag.ask(question, template=template, top_k=top_k, history=history)


_COLLECTIONS: dict[str, object] = {}
