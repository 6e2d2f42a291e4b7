"""The records of a run (one `QuestionResult` per question and template, an `EvalReport` for the
run) and how a template's results add up to its scores (`template_scores`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .metrics import (SCOPE_KINDS, abstention_scores, is_echo, is_fragment, is_sentence, mrr_at_k, ndcg_at_k,
                      percentile, recall_at_k, strip_citations)

RECALL_AT = (1, 3, 5, 10)


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
    cited_texts: list[str] = field(default_factory=list)  # the cited chunks' texts, for evidence_cited
    kind: str = ""  # "list", "documents" or "summary" for a question about a whole document or collection
    gold_evidence: list[str] = field(default_factory=list)
    evidence_cited: float | None = None  # answerable and answered: a cited passage holds the evidence
    em: float | None = None
    f1: float | None = None
    contains: float | None = None
    retrieve_s: float = 0.0  # inside ask(), with the prompt's top_k
    ttft_s: float = 0.0
    total_s: float = 0.0
    generate_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # list, documents and summary questions (metrics.score_scope); None / empty for the others
    scope: str = ""  # the scope the answer was given in (Answer.scope): "" for an ordinary answer
    gold_items: list[str] = field(default_factory=list)  # each entry's spellings joined by " | "
    found_items: list[str] = field(default_factory=list)  # the items' texts (documents: files), or the lines
    missing_items: list[str] = field(default_factory=list)  # the first spelling of each entry not found
    item_recall: float | None = None
    item_precision: float | None = None  # None: the answer had no items
    item_cited: float | None = None
    n_items: int = 0
    n_grounded: int = 0
    n_cited: int = 0
    coverage_complete: bool | None = None  # Answer.coverage.complete; None without a coverage
    chunks_read: int = 0
    chunks_total: int = 0


@dataclass
class TemplateScores:
    """The metric groups of one template, in the shape `--json` prints."""

    retrieval: dict[str, float]
    answer: dict[str, float]
    abstention: dict[str, float]
    citations: dict[str, float]
    latency: dict[str, float]
    tokens: dict[str, float]
    scope: dict[str, float] = field(default_factory=dict)  # empty when no list/documents/summary question


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
    split: str = "all"  # which questions of the file: dev, test or all

    def to_dict(self) -> dict:
        """Everything but the per-question results, rounded for reading."""
        def r(d):
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
        return {"dataset": self.dataset, "format": self.format, "split": self.split, "n": self.n,
                "settings": self.settings, "retrieval": r(self.retrieval),
                "retrieval_latency": r(self.retrieval_latency),
                "templates": {name: {k: r(v) for k, v in asdict(t).items()}
                              for name, t in self.templates.items()},
                "seconds": round(self.seconds, 2)}


# ------------------------------------------------------------------ scores

def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def retrieval_scores(results: list[QuestionResult], any_source: bool) -> dict[str, float]:
    """Recall@k, MRR@10 and nDCG@10 of the ranked documents, over the questions with gold sources."""
    scored = [r for r in results if r.gold_sources]
    out = {f"recall@{k}": _mean(recall_at_k(r.retrieved_sources, set(r.gold_sources), k,
                                            any_source=any_source) for r in scored) for k in RECALL_AT}
    out["mrr@10"] = _mean(mrr_at_k(r.retrieved_sources, set(r.gold_sources), 10) for r in scored)
    out["ndcg@10"] = _mean(ndcg_at_k(r.retrieved_sources, set(r.gold_sources), 10,
                                     any_source=any_source) for r in scored)
    return out


def scope_scores(results: list[QuestionResult]) -> dict[str, float]:
    """The list, documents and summary questions' figures; {} when there are none. Recall is the
    mean over questions, precision and citations are pooled over the answers' items (an answer
    without items adds none), `complete` is the share of questions with every gold entry found,
    `coverage_complete` a count of answers whose Coverage says they read all they meant to."""
    scored = [r for r in results if r.kind in SCOPE_KINDS and r.item_recall is not None]
    if not scored:
        return {}
    items = sum(r.n_items for r in scored)
    out: dict[str, float] = {
        "questions": len(scored),
        "in_scope": _mean(float(r.scope == r.kind) for r in scored),
        "item_recall": _mean(r.item_recall for r in scored),
    }
    for kind in SCOPE_KINDS:
        of_kind = [r.item_recall for r in scored if r.kind == kind]
        if of_kind:
            out[f"item_recall_{kind}"] = _mean(of_kind)
    out.update({
        "item_precision": sum(r.n_grounded for r in scored) / items if items else 0.0,
        "item_cited": sum(r.n_cited for r in scored) / items if items else 0.0,
        "complete": _mean(float(r.item_recall >= 1.0) for r in scored),
        "coverage_complete": sum(r.coverage_complete is True for r in scored),
        "items_mean": items / len(scored),
        "chunks_read_mean": _mean(r.chunks_read for r in scored),
        "total_p50_s": percentile([r.total_s for r in scored], 50),
    })
    return out


def template_scores(results: list[QuestionResult], retrieval: dict[str, float]) -> TemplateScores:
    """One template's scores from its results; `retrieval` is the run's (retrieval is done once)."""
    answerable = [r for r in results if r.answerable]
    answered = [r for r in answerable if not r.abstained]
    # citations are judged where the question says where its answer lives ("sources": [] does not)
    sourced = [r for r in answered if r.gold_sources]
    cited = [s for r in sourced for s in r.cited_sources]
    gold_cited = sum(s in r.gold_sources for r in sourced for s in r.cited_sources)
    llm = [r for r in results if r.prompt_tokens]
    shown = [strip_citations(r.answer) for r in answered]  # what the form metrics judge
    lists = [r for r in answerable if r.kind == "list" and r.contains is not None]
    generate_s = sum(r.generate_s for r in llm)
    return TemplateScores(
        retrieval=dict(retrieval),
        answer={"em": _mean(r.em for r in answerable), "f1": _mean(r.f1 for r in answerable),
                "contains": _mean(r.contains for r in answerable),
                # answers the model had right that a check then cut or turned into "not found"
                "lost_to_checks": _mean(float(bool(r.draft_contains) and not r.contains)
                                        for r in answerable if r.contains is not None),
                # list questions: the share of their entries named (equal to their `contains`)
                "item_recall": _mean(r.contains for r in lists),
                # the form of the answers given to answerable questions (refusals left out)
                "fragment_rate": _mean(float(is_fragment(t)) for t in shown),
                "echo_rate": _mean(float(is_echo(t, r.question)) for t, r in zip(shown, answered)),
                "sentence_rate": _mean(float(is_sentence(t)) for t in shown)},
        abstention=abstention_scores([r.abstained for r in results], [r.answerable for r in results]),
        citations={"precision": gold_cited / len(cited) if cited else 0.0,
                   "hit_rate": _mean(float(bool(set(r.cited_sources) & set(r.gold_sources)))
                                     for r in sourced),
                   "evidence_cited": _mean(r.evidence_cited or 0.0 for r in answered),
                   # the same over every answerable question: a refusal has cited nothing
                   "evidence_cited_all": sum(r.evidence_cited or 0.0 for r in answered) / len(answerable)
                   if answerable else 0.0},
        latency={f"{name}_p{q}_s": percentile([getattr(r, f"{name}_s") for r in results], q)
                 for name in ("retrieve", "ttft", "total") for q in (50, 95)},
        tokens={"prompt_mean": _mean(r.prompt_tokens for r in llm),
                "generated_mean": _mean(r.completion_tokens for r in llm),
                "per_s": sum(r.completion_tokens for r in llm) / generate_s if generate_s else 0.0,
                "llm_calls": float(len(llm))},
        scope=scope_scores(results))
