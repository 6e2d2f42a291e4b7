"""Side-by-side answer tables from `rag eval --report` folders: one row per model and template.

    python benchmarks/eval_tables.py reports/corpus-135m reports/corpus-qwen:auto,cot

Several folders of one dataset (two models, or one model's templates split over two runs) make
one table; a folder's templates keep the order they were run in, and `FOLDER:t1,t2` takes only
those templates from it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = [  # (group, key, heading)
    ("answer", "contains", "contains"), ("answer", "f1", "token F1"),
    ("answer", "lost_to_checks", "lost to checks"),
    ("abstention", "recall", "abstain recall"), ("abstention", "false_abstention_rate", "false abstention"),
    ("citations", "precision", "citation precision"), ("citations", "hit_rate", "citation hit rate"),
    ("latency", "total_p50_s", "total p50 s"), ("tokens", "generated_mean", "generated tokens/q"),
]


def table(folders: list[Path | str]) -> str:
    """A Markdown table of the answer metrics of every template in `folders` (see above)."""
    picks = [str(f).partition(":") for f in folders]
    folders = [Path(f) for f, _, _ in picks]
    runs = [_results(f) for f in folders]
    for r, (_, _, only) in zip(runs, picks):
        if only:
            r["templates"] = {t: r["templates"][t] for t in only.split(",") if t in r["templates"]}
    names = {r["dataset"] for r in runs}
    if len(names) != 1:
        raise SystemExit(f"the folders hold different datasets: {', '.join(sorted(names))}")
    head = (f"{runs[0]['dataset']}: " + "; ".join(
        f"{Path(f).name} n={r['n']}, guards={r['settings'].get('guards')}, threads={r['settings'].get('n_threads')}"
        for f, r in zip(folders, runs)))
    lines = [head, "", "| model | template | " + " | ".join(c[2] for c in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for r in runs:
        model = Path(r["settings"]["model"]).name.removesuffix(".gguf")
        for name, scores in r["templates"].items():
            cells = [scores.get(g, {}).get(k) for g, k, _ in COLUMNS]
            lines.append(f"| {model} | {name} | " + " | ".join(
                "" if v is None else f"{v:.1f}" if k == "generated_mean" else f"{v:.3f}"
                for v, (_, k, _) in zip(cells, COLUMNS)) + " |")
    return "\n".join(lines)


def _results(folder: Path) -> dict:
    try:
        run = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except OSError as e:
        raise SystemExit(f"{folder}: no results.json to read ({e.strerror}); pass a `rag eval --report` folder")
    except ValueError as e:
        raise SystemExit(f"{folder}/results.json is not JSON: {e}")
    if not isinstance(run, dict) or not isinstance(run.get("templates"), dict) or "settings" not in run:
        raise SystemExit(f"{folder}/results.json is not a rag eval report (no templates or settings)")
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="report folders, each optionally FOLDER:t1,t2")
    print(table(p.parse_args().folders))


if __name__ == "__main__":
    main()
