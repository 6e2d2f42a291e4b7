"""Presenting an `EvalReport`: the side-by-side table, and a report folder with JSON, per-question
results and PNG charts."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from ..errors import ConfigError
from .results import EvalReport

log = logging.getLogger(__name__)

# (group, key, label) in table order; latency rows are seconds, token rows are counts
ROWS = [
    ("retrieval", "recall@1", "recall@1"), ("retrieval", "recall@3", "recall@3"),
    ("retrieval", "recall@5", "recall@5"), ("retrieval", "recall@10", "recall@10"),
    ("retrieval", "mrr@10", "MRR@10"), ("retrieval", "ndcg@10", "nDCG@10"),
    ("answer", "em", "exact match"), ("answer", "f1", "token F1"), ("answer", "contains", "contains"),
    ("answer", "lost_to_checks", "right before the checks, lost to them"),
    ("answer", "item_recall", "list items named"),
    ("answer", "fragment_rate", "fragment rate"), ("answer", "echo_rate", "echo rate"),
    ("answer", "sentence_rate", "complete sentence rate"),
    ("abstention", "precision", "abstain precision"), ("abstention", "recall", "abstain recall"),
    ("abstention", "f1", "abstain F1"), ("abstention", "false_abstention_rate", "false abstention rate"),
    ("citations", "precision", "citation precision"), ("citations", "hit_rate", "citation hit rate"),
    ("citations", "evidence_cited", "evidence cited (answered)"),
    ("citations", "evidence_cited_all", "evidence cited (all answerable)"),
    ("latency", "retrieve_p50_s", "retrieve p50 s"), ("latency", "retrieve_p95_s", "retrieve p95 s"),
    ("latency", "ttft_p50_s", "first token p50 s"), ("latency", "ttft_p95_s", "first token p95 s"),
    ("latency", "total_p50_s", "total p50 s"), ("latency", "total_p95_s", "total p95 s"),
    ("tokens", "prompt_mean", "prompt tokens/q"), ("tokens", "generated_mean", "generated tokens/q"),
    ("tokens", "per_s", "tokens/s"),
]
# questions about a whole document or collection (kind list, documents, summary): shown when a set has
# them, each row only where some template has its figure (a recall per kind only for kinds present)
SCOPE_ROWS = [
    ("questions", "scope questions (list, documents, summary)"),
    ("in_scope", "answered as a scope answer"),
    ("item_recall", "gold items found (item recall)"),
    ("item_recall_list", "item recall, list questions"),
    ("item_recall_documents", "item recall, documents questions"),
    ("item_recall_summary", "item recall, summary questions"),
    ("item_precision", "items read from the documents (precision)"),
    ("item_cited", "items whose cited chunk holds them"),
    ("complete", "questions with every gold item"),
    ("coverage_complete", "answers whose coverage says complete (count)"),
    ("items_mean", "items per answer"),
    ("chunks_read_mean", "chunks read per answer"),
    ("total_p50_s", "scope answer time p50 s"),
]


def _fmt(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a count
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def format_table(report: EvalReport) -> str:
    """A Markdown table: one row per metric, one column per template."""
    head = f"{report.dataset} ({report.format}), split={report.split}, n={report.n}, {report.seconds:.0f} s"
    if not report.templates:
        lines = [head, "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in report.retrieval.items()]
        lines += [f"| retrieve {k} | {_fmt(v)} |" for k, v in report.retrieval_latency.items()]
        return "\n".join(lines)
    names = list(report.templates)
    lines = [head, "", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for group, key, label in ROWS:
        values = [getattr(report.templates[n], group).get(key, 0.0) for n in names]
        lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |")
    for key, label in SCOPE_ROWS:
        if any(key in report.templates[n].scope for n in names):
            values = [report.templates[n].scope.get(key, 0.0) for n in names]
            lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |")
    return "\n".join(lines)


def write_report(report: EvalReport, folder: str | Path) -> list[Path]:
    """Write report.md, results.json, questions.jsonl and the charts into `folder`."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create report folder {out}: {e.strerror or e}") from None
    written = [out / "results.json", out / "questions.jsonl"]
    written[0].write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    with written[1].open("w", encoding="utf-8") as fh:
        for r in report.results:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    written += _charts(report, out)
    md = [f"# Evaluation: {report.dataset} ({report.split})", "", format_table(report), "",
          "Retrieval metrics rank distinct source documents; answer metrics cover answerable "
          "questions; abstention treats unanswerable questions as the positive class.", "",
          "Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()
                                   if k not in ("index", "corpus")), ""]
    md += _lost(report)
    md += _scope(report)
    md += [f"![{p.stem}]({p.name})" for p in written if p.suffix == ".png"]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    written.append(out / "report.md")
    return written


def _lost(report: EvalReport) -> list[str]:
    """The answers a check took away although the model's draft held a gold answer, one row
    each, so that every such rejection can be read and judged."""
    if not report.templates:
        return []
    lost = [r for r in report.results if r.draft_contains and not r.contains]
    if not lost:
        return ["No draft that held a gold answer was cut or rejected by the checks.", ""]
    cell = _cell
    md = ["## Right before the checks, lost to them", "",
          "| template | question | gold | draft | shown | why |", "|---|---|---|---|---|---|"]
    md += [f"| {r.template}{'→' + r.chosen if r.chosen != r.template else ''} | {cell(r.question)} "
           f"| {cell(' / '.join(r.gold_answers[:2]))} | {cell(r.draft)} | {cell(r.answer)} "
           f"| {cell(r.abstain_code + ': ' + r.abstain_reason if r.abstained else 'cut from the answer')} |"
           for r in lost]
    return md + [""]


def _cell(text: str, limit: int = 200) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:limit]


def _scope(report: EvalReport) -> list[str]:
    """One row per list, documents or summary question and template: what was found, what is
    missing, and how many items were read from the documents and cited right."""
    rows = [r for r in report.results if r.item_recall is not None]
    if not rows:
        return []
    def share(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"
    md = ["## Questions about a whole document or collection", "",
          "| template | id | kind | scope | recall | precision | cited | items | complete | missing |",
          "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    md += [f"| {r.template} | {r.id} | {r.kind} | {r.scope or '-'} | {r.item_recall:.2f} "
           f"| {share(r.item_precision)} | {share(r.item_cited)} | {r.n_items} "
           f"| {'-' if r.coverage_complete is None else 'yes' if r.coverage_complete else 'no'} "
           f"| {_cell(', '.join(r.missing_items))} |" for r in rows]
    return md + [""]


def _charts(report: EvalReport, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    paths = []
    if report.templates:
        keys = [("retrieval", "recall@1"), ("retrieval", "recall@5"), ("retrieval", "mrr@10"),
                ("answer", "f1"), ("answer", "contains"), ("abstention", "f1"),
                ("abstention", "false_abstention_rate"), ("citations", "precision"),
                ("citations", "hit_rate"), ("answer", "sentence_rate"), ("citations", "evidence_cited")]
        series = {n: [getattr(t, g).get(k, 0.0) for g, k in keys] for n, t in report.templates.items()}
        names = {(g, k): label for g, k, label in ROWS}
        labels = [names[key] for key in keys]
    else:
        series = {"retrieval": list(report.retrieval.values())}
        labels = list(report.retrieval)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width - 0.4 + width / 2 for x in range(len(labels))], values, width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(f"{report.dataset}: metrics per template (n={report.n})")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "metrics.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    if report.templates:
        data = {n: [r.total_s for r in report.results if r.template == n] for n in report.templates}
        ax.set_title("Total latency per question (seconds)")
    else:
        data = {"retrieval": [r.retrieval_s * 1000 for r in report.results]}
        ax.set_title("Retrieval latency per question (milliseconds)")
    ax.boxplot(list(data.values()), tick_labels=list(data))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths.append(out / "latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
