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
from .metrics import contains, exact_match, percentile, strip_citations, token_f1
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
        settings = dataclasses.replace(settings, index=str(Path(evalset.docs_dir).parent / name))
    rag = RAG(settings, build_missing=False)
    report = rag.index([evalset.docs_dir], progress=progress)
    log.info("eval index %s: %s", settings.index, report.summary())
    return rag


def _check_sources(evalset: EvalSet, items: list[EvalItem], rag) -> None:
    known = {c.source for c in rag.store.chunks}
    for item in items:
        missing = [s for s in item.sources if s not in known]
        if missing:
            raise DatasetError(f"{item.where}: source {missing[0]!r} is not in the index "
                               f"{rag.settings.index}")


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


def _answer(rag, item: EvalItem, template: str, base: QuestionResult) -> QuestionResult:
    a = rag.ask(item.question, template=template)
    t = a.timings
    text = "" if a.abstained else strip_citations(a.text)
    res = QuestionResult(**{**asdict(base), "template": template})
    res.answer, res.abstained, res.abstain_reason = a.text, a.abstained, a.abstain_reason
    res.abstain_code, res.chosen, res.draft = a.abstain_code, a.template, a.draft
    res.support, res.relevance = a.support, a.relevance
    res.cited_sources = list(dict.fromkeys(c.source for c in a.citations))
    if item.answerable and item.answers:
        res.em, res.f1, res.contains = (exact_match(text, item.answers), token_f1(text, item.answers),
                                        contains(text, item.answers))
        res.draft_contains = contains(strip_citations(a.draft), item.answers)
    res.retrieve_s = t.retrieve
    res.ttft_s = t.retrieve + t.prompt + t.prefill  # what the user waits for the first word
    res.total_s = t.total - t.load
    res.generate_s = t.generate
    res.prompt_tokens, res.completion_tokens = a.usage.prompt_tokens, a.usage.completion_tokens
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
    _check_sources(evalset, items, rag)
    rag.embedder.warm_up()
    rag.search(items[0].question)  # first-call costs stay out of the latency figures
    base: list[QuestionResult] = []
    for item in _bar(items, progress, "retrieval"):
        ids, sources, seconds = _retrieve(rag, item)
        base.append(QuestionResult(
            id=item.id, question=item.question, template="", answerable=item.answerable,
            gold_sources=list(item.sources), gold_answers=list(item.answers),
            retrieved_ids=ids, retrieved_sources=sources, retrieval_s=seconds))
    retrieval = retrieval_scores(base, evalset.any_source)
    search_s = [r.retrieval_s for r in base]
    report = EvalReport(
        dataset=evalset.name, format=evalset.format, n=len(items),
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
            results = [_answer(rag, item, name, b)
                       for item, b in zip(_bar(items, progress, name), base)]
            report.templates[name] = template_scores(results, retrieval)
            report.results.extend(results)
            log.info("template %s done", name)
    report.seconds = time.perf_counter() - t_start
    return report
