"""Offline evaluation: retrieval, answer, abstention, citation and cost metrics per prompt template.

Retrieval is measured once per question on the ranked list of distinct source documents (the
top chunks, collapsed to their documents, first occurrence wins); it does not depend on the
template. Each template then answers every question through the normal `RAG.ask()` path with
temperature 0 and a fixed seed, so two runs give the same answers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import PROJECT_ROOT, Settings
from .errors import ConfigError, DatasetError
from .evaldata import EvalItem, EvalSet, sample

log = logging.getLogger(__name__)

RANK_DEPTH = 10  # documents ranked per question for the retrieval metrics
RECALL_AT = (1, 3, 5, 10)
CACHE_ROOT = PROJECT_ROOT / "indexes"

# ------------------------------------------------------------------ answer metrics (SQuAD style)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def strip_citations(text: str) -> str:
    """The answer without its [n] markers, which are not part of what it says."""
    return _CITATION.sub("", text).strip()


def exact_match(prediction: str, golds: tuple[str, ...] | list[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: tuple[str, ...] | list[str]) -> float:
    """Best token-overlap F1 against any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if not pred or not ref:
            score = float(pred == ref)
        elif common == 0:
            score = 0.0
        else:
            p, r = common / len(pred), common / len(ref)
            score = 2 * p * r / (p + r)
        best = max(best, score)
    return best


def contains(prediction: str, golds: tuple[str, ...] | list[str]) -> float:
    """1 when a normalised gold answer appears as whole words inside the normalised prediction."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(g) and f" {normalize_answer(g)} " in pred for g in golds))


# ------------------------------------------------------------------ retrieval metrics

def recall_at_k(ranked: list[str], gold: set[str], k: int, *, any_source: bool = True) -> float:
    """any_source: 1 if a gold document is in the top k (each one holds the whole answer);
    otherwise the share of gold documents found in the top k (BEIR's definition)."""
    if not gold:
        return 0.0
    found = len(gold & set(ranked[:k]))
    return float(found > 0) if any_source else found / len(gold)


def mrr_at_k(ranked: list[str], gold: set[str], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: list[str], gold: set[str], k: int = 10, *, any_source: bool = True) -> float:
    """Binary-relevance nDCG. With any_source the gold documents are alternatives: the ideal
    ranking has one of them first and only the first one found earns gain."""
    if not gold:
        return 0.0
    dcg, seen = 0.0, False
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in gold and not (any_source and seen):
            dcg += 1.0 / math.log2(rank + 1)
            seen = True
    n_ideal = 1 if any_source else min(len(gold), k)
    return dcg / sum(1.0 / math.log2(r + 1) for r in range(1, n_ideal + 1))


def abstention_scores(abstained: list[bool], answerable: list[bool]) -> dict[str, float]:
    """Abstaining is the positive class and unanswerable questions are its gold; 0 where undefined."""
    tp = sum(a and not ok for a, ok in zip(abstained, answerable))
    fp = sum(a and ok for a, ok in zip(abstained, answerable))
    n_unanswerable = sum(not ok for ok in answerable)
    n_answerable = len(answerable) - n_unanswerable
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_unanswerable if n_unanswerable else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "false_abstention_rate": fp / n_answerable if n_answerable else 0.0}


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


# ------------------------------------------------------------------ records

@dataclass
class QuestionResult:
    """One question under one template (template "" in a retrieval-only run)."""

    id: str
    question: str
    template: str
    answerable: bool
    gold_sources: list[str]
    gold_answers: list[str]
    retrieved_ids: list[str]  # chunk ids, best first
    retrieved_sources: list[str]  # distinct documents, best first: what the retrieval metrics rank
    retrieval_s: float
    answer: str = ""
    abstained: bool = False
    abstain_reason: str = ""
    abstain_code: str = ""
    chosen: str = ""  # the template that answered (what `auto` picked)
    draft: str = ""  # the model's answer before the checks
    draft_contains: float | None = None  # `contains` of the draft: what the checks started from
    support: float = 0.0  # how well the best passage supports the answer (Answer.support)
    relevance: float = 0.0  # cosine between question and answer (Answer.relevance)
    cited_sources: list[str] = field(default_factory=list)
    em: float | None = None
    f1: float | None = None
    contains: float | None = None
    retrieve_s: float = 0.0  # inside ask(), with the prompt's top_k
    ttft_s: float = 0.0
    total_s: float = 0.0
    generate_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class TemplateScores:
    """The metric groups of one template, in the shape `--json` prints."""

    retrieval: dict[str, float]
    answer: dict[str, float]
    abstention: dict[str, float]
    citations: dict[str, float]
    latency: dict[str, float]
    tokens: dict[str, float]


@dataclass
class EvalReport:
    dataset: str
    format: str
    n: int
    settings: dict
    retrieval: dict[str, float]
    retrieval_latency: dict[str, float]
    templates: dict[str, TemplateScores]
    results: list[QuestionResult]
    seconds: float

    def to_dict(self) -> dict:
        """Everything but the per-question results, rounded for reading."""
        def r(d):
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
        return {"dataset": self.dataset, "format": self.format, "n": self.n,
                "settings": self.settings, "retrieval": r(self.retrieval),
                "retrieval_latency": r(self.retrieval_latency),
                "templates": {name: {k: r(v) for k, v in asdict(t).items()}
                              for name, t in self.templates.items()},
                "seconds": round(self.seconds, 2)}


# ------------------------------------------------------------------ running

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
    from .pipeline import RAG

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


def _retrieval_scores(results: list[QuestionResult], any_source: bool) -> dict[str, float]:
    scored = [r for r in results if r.gold_sources]
    out = {f"recall@{k}": _mean(recall_at_k(r.retrieved_sources, set(r.gold_sources), k,
                                            any_source=any_source) for r in scored) for k in RECALL_AT}
    out["mrr@10"] = _mean(mrr_at_k(r.retrieved_sources, set(r.gold_sources), 10) for r in scored)
    out["ndcg@10"] = _mean(ndcg_at_k(r.retrieved_sources, set(r.gold_sources), 10,
                                     any_source=any_source) for r in scored)
    return out


def _template_scores(results: list[QuestionResult], retrieval: dict[str, float]) -> TemplateScores:
    answerable = [r for r in results if r.answerable]
    answered = [r for r in answerable if not r.abstained]
    cited = [s for r in answered for s in r.cited_sources]
    gold_cited = sum(s in r.gold_sources for r in answered for s in r.cited_sources)
    llm = [r for r in results if r.prompt_tokens]
    generate_s = sum(r.generate_s for r in llm)
    return TemplateScores(
        retrieval=dict(retrieval),
        answer={"em": _mean(r.em for r in answerable), "f1": _mean(r.f1 for r in answerable),
                "contains": _mean(r.contains for r in answerable),
                # answers the model had right that a check then cut or turned into "not found"
                "lost_to_checks": _mean(float(bool(r.draft_contains) and not r.contains)
                                        for r in answerable if r.contains is not None)},
        abstention=abstention_scores([r.abstained for r in results], [r.answerable for r in results]),
        citations={"precision": gold_cited / len(cited) if cited else 0.0,
                   "hit_rate": _mean(float(bool(set(r.cited_sources) & set(r.gold_sources)))
                                     for r in answered)},
        latency={f"{name}_p{q}_s": percentile([getattr(r, f"{name}_s") for r in results], q)
                 for name in ("retrieve", "ttft", "total") for q in (50, 95)},
        tokens={"prompt_mean": _mean(r.prompt_tokens for r in llm),
                "generated_mean": _mean(r.completion_tokens for r in llm),
                "per_s": sum(r.completion_tokens for r in llm) / generate_s if generate_s else 0.0,
                "llm_calls": float(len(llm))})


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
    from .prompts import get_template

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
    retrieval = _retrieval_scores(base, evalset.any_source)
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
            report.templates[name] = _template_scores(results, retrieval)
            report.results.extend(results)
            log.info("template %s done", name)
    report.seconds = time.perf_counter() - t_start
    return report
