"""Running an evaluation: retrieval, then every prompt template on every question.

Retrieval is measured once per question on the ranked list of distinct source documents (the
top chunks, collapsed to their documents, first occurrence wins); it does not depend on the
template. Each template then answers every question through the normal `RAG.ask()` path with
temperature 0 and a fixed seed, so two runs give the same answers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import asdict
from pathlib import Path

from ..config import PROJECT_ROOT, Settings
from ..errors import ConfigError, DatasetError
from ..pipeline import RAG
from ..prompts import get_template
from .data import EvalItem, EvalSet, sample
from .metrics import (SCOPE_KINDS, Passage, contains, evidence_cited, exact_match, list_contains, percentile,
                      score_scope, strip_citations, token_f1)
from .results import EvalReport, QuestionResult, retrieval_scores, template_scores

log = logging.getLogger(__name__)

RANK_DEPTH = 10  # documents ranked per question for the retrieval metrics
CACHE_ROOT = PROJECT_ROOT / "indexes"


def parse_overrides(pairs: list[str]) -> dict:
    """`--set KEY=VALUE` pairs, each cast to its Settings field's type."""
    types = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        if key not in types:
            raise ConfigError(f"--set {key}: unknown setting; known: {', '.join(sorted(types))}")
        kind = types[key]
        try:
            if kind == "int":
                out[key] = int(value)
            elif kind == "float":
                out[key] = float(value)
            elif kind == "bool":
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                out[key] = value.lower() in ("1", "true", "yes")
            else:
                out[key] = value
        except ValueError:
            raise ConfigError(f"--set {key}={value!r}: not a valid {kind}") from None
    return out


def open_rag(evalset: EvalSet, settings: Settings, *, index_given: bool, progress: bool = False):
    """The `RAG` to evaluate. Datasets with their own corpus get a named index of it, one per
    embedder and chunker setting, brought up to date incrementally (free when unchanged)."""
    if evalset.docs_dir is None:
        return RAG(settings, build_missing=not index_given)
    if not index_given:
        key = f"{settings.embedder}|{settings.chunk_size}|{settings.chunk_overlap}"
        name = f"index-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        # a JSONL set's corpus is a real folder (the repository's): its index goes in the cache
        home = Path(evalset.index_home) if evalset.index_home else Path(evalset.docs_dir).parent
        settings = dataclasses.replace(settings, index=str(home / name))
    rag = RAG(settings, build_missing=False)
    report = rag.index([evalset.docs_dir], progress=progress)
    log.info("eval index %s: %s", settings.index, report.summary())
    return rag


def _check_sources(evalset: EvalSet, items: list[EvalItem], rag) -> list[EvalItem]:
    """The items with each gold source as the index names it. The index names a document by its
    path relative to the indexed folder ("git-commit.html", "sub/x.html"); a set may name it by
    its file name alone, which counts when exactly one indexed document has that name. The gold
    files of a documents question are resolved alike."""
    known = {c.source for c in rag.store.chunks}
    by_name: dict[str, list[str]] = {}
    for source in known:
        by_name.setdefault(source.rsplit("/", 1)[-1], []).append(source)

    def resolve(s: str, item: EvalItem) -> str:
        if s in known:
            return s
        if len(by_name.get(s, ())) == 1:
            return by_name[s][0]
        if s in by_name:
            raise DatasetError(f"{item.where}: source {s!r} names {len(by_name[s])} documents of the "
                               f"index {rag.settings.index}; give its path, e.g. {sorted(by_name[s])[0]!r}")
        raise DatasetError(f"{item.where}: source {s!r} is not in the index {rag.settings.index}")

    out = []
    for item in items:
        resolved = tuple(resolve(s, item) for s in item.sources)
        files = tuple((resolve(e[0], item),) for e in item.items) if item.kind == "documents" else item.items
        out.append(item if resolved == item.sources and files == item.items else
                   dataclasses.replace(item, sources=resolved, items=files))
    return out


def _bar(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q", leave=False)


def _retrieve(rag, item: EvalItem) -> tuple[list[str], list[str], float]:
    t0 = time.perf_counter()
    # chunks of one document collapse into one rank, so look deeper than RANK_DEPTH chunks
    hits = rag.search(item.question, top_k=2 * RANK_DEPTH)
    seconds = time.perf_counter() - t0
    sources = list(dict.fromkeys(h.chunk.source for h in hits))[:RANK_DEPTH]
    return [h.chunk.id for h in hits[:RANK_DEPTH]], sources, seconds


def gold_answers(item: EvalItem) -> tuple[str, ...]:
    """What EM and F1 compare with: the answers, or for a list question given without them its
    entries' first spellings joined, as one answer naming them all."""
    return item.answers or (", ".join(alts[0] for alts in item.items),)


def score_contains(text: str, item: EvalItem) -> float:
    """`contains`; for a list, documents or summary question the share of its entries named."""
    return list_contains(text, item.items) if item.items else contains(text, item.answers)


def _evidence(item: EvalItem, res: QuestionResult, *, paragraph_docs: bool) -> float:
    # where a document is one paragraph (SQuAD), the gold document is the evidence itself
    if paragraph_docs and set(res.cited_sources) & set(item.sources):
        return 1.0
    wanted = item.evidence or item.answers or item.topic or tuple(a for alts in item.items for a in alts)
    return evidence_cited(res.cited_texts, wanted)


def found_items(answer) -> list[tuple[str, str, str]]:
    """(text, source, chunk_id) of each item of a scope answer (`Answer.items`), the source and chunk
    taken from its citation [n] where the item leaves them out; [] for an ordinary answer."""
    by_n = {getattr(c, "n", None): c for c in answer.citations}
    out = []
    for i in getattr(answer, "items", None) or []:
        cited = by_n.get(i.n)
        out.append((i.text, i.source or (cited.source if cited else ""),
                    i.chunk_id or (cited.chunk_id if cited else "")))
    return out


def _score_scope(res: QuestionResult, item: EvalItem, a, passages: dict[str, Passage]) -> None:
    """The scope metrics of a list, documents or summary question (metrics.score_scope)."""
    s = score_scope(item.kind, item.items, found_items(a), "" if a.abstained else a.text, passages,
                    topic=item.topic)
    res.scope = getattr(a, "scope", "") or ""
    res.found_items, res.missing_items = s.found, s.missing
    res.item_recall, res.item_precision, res.item_cited = s.recall, s.precision, s.cited
    res.n_items, res.n_grounded, res.n_cited = s.n_items, s.n_grounded, s.n_cited
    coverage = getattr(a, "coverage", None)
    if coverage is not None:
        res.coverage_complete = bool(coverage.complete)
        res.chunks_read, res.chunks_total = coverage.chunks_read, coverage.chunks_total
        if not res.total_s:  # a survey that did not fill the timings still says how long it read
            res.total_s = coverage.seconds


def _answer(rag, item: EvalItem, template: str, base: QuestionResult, *,
            paragraph_docs: bool = False, passages: dict[str, Passage] | None = None) -> QuestionResult:
    a = rag.ask(item.question, template=template)
    t = a.timings
    text = "" if a.abstained else strip_citations(a.text)
    res = QuestionResult(**{**asdict(base), "template": template})
    res.answer, res.abstained, res.abstain_reason = a.text, a.abstained, a.abstain_reason
    res.abstain_code, res.chosen, res.draft = a.abstain_code, a.template, a.draft
    res.support, res.relevance = a.support, a.relevance
    res.cited_sources = list(dict.fromkeys(c.source for c in a.citations))
    texts = {h.chunk.id: h.chunk.text for h in a.hits}
    res.cited_texts = list(dict.fromkeys(texts.get(c.chunk_id, c.snippet) for c in a.citations))
    if item.answerable and (item.answers or item.items):
        golds = gold_answers(item)
        res.em, res.f1 = exact_match(text, golds), token_f1(text, golds)
        res.contains = score_contains(text, item)
        res.draft_contains = score_contains(strip_citations(a.draft), item)
        if not a.abstained:
            res.evidence_cited = _evidence(item, res, paragraph_docs=paragraph_docs)
    res.retrieve_s = t.retrieve
    res.ttft_s = t.retrieve + t.prompt + t.prefill  # what the user waits for the first word
    res.total_s = t.total - t.load
    res.generate_s = t.generate
    res.prompt_tokens, res.completion_tokens = a.usage.prompt_tokens, a.usage.completion_tokens
    if item.kind in SCOPE_KINDS and item.answerable:
        _score_scope(res, item, a, passages if passages is not None else {})
    return res


def run_eval(evalset: EvalSet, rag, *, templates: list[str], limit: int | None = None,
             retrieval_only: bool = False, progress: bool = False, seed: int = 0) -> EvalReport:
    """Evaluate `rag` on `evalset`: retrieval once, then every template on every question."""
    if not templates and not retrieval_only:
        raise ConfigError("no templates to evaluate; name some with --templates or use --retrieval-only")
    for name in templates:
        if name != "auto":
            get_template(name)  # an unknown name fails before minutes of work
    t_start = time.perf_counter()
    items = sample(evalset.items, limit, seed=seed)
    retrieval_only = retrieval_only or evalset.retrieval_only
    items = _check_sources(evalset, items, rag)
    # a scope answer's items are judged against every chunk of the index, read once
    passages = {c.id: Passage(c.source, c.text) for c in rag.store.chunks} \
        if any(i.kind in SCOPE_KINDS for i in items) else {}
    rag.embedder.warm_up()
    rag.search(items[0].question)  # first-call costs stay out of the latency figures
    base: list[QuestionResult] = []
    for item in _bar(items, progress, "retrieval"):
        ids, sources, seconds = _retrieve(rag, item)
        base.append(QuestionResult(
            id=item.id, question=item.question, template="", answerable=item.answerable,
            gold_sources=list(item.sources), kind=item.kind, gold_evidence=list(item.evidence),
            gold_answers=list(item.answers) or [" | ".join(alts) for alts in item.items],
            gold_items=[" | ".join(alts) for alts in item.items] if item.kind in SCOPE_KINDS else [],
            retrieved_ids=ids, retrieved_sources=sources, retrieval_s=seconds))
    retrieval = retrieval_scores(base, evalset.any_source)
    search_s = [r.retrieval_s for r in base]
    report = EvalReport(
        dataset=evalset.name, format=evalset.format, n=len(items), split=evalset.split,
        settings={**asdict(rag.settings), "llm_api_key": "", "model": rag.generator.name,
                  "embedder": rag.embedder.name},
        retrieval=retrieval,
        retrieval_latency={"p50_s": percentile(search_s, 50), "p95_s": percentile(search_s, 95)},
        templates={}, results=[] if not retrieval_only else base, seconds=0.0)
    if not retrieval_only:
        rag.generator.warm_up()
        for name in templates:
            # start each template from an empty KV cache so a run does not depend on what ran before
            if hasattr(rag.generator, "reset"):
                rag.generator.reset()
            results = [_answer(rag, item, name, b, paragraph_docs=evalset.paragraph_docs, passages=passages)
                       for item, b in zip(_bar(items, progress, name), base)]
            report.templates[name] = template_scores(results, retrieval)
            report.results.extend(results)
            log.info("template %s done", name)
    report.seconds = time.perf_counter() - t_start
    return report
