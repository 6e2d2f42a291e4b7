"""Check an evaluation question set against the documents it was written from.

    .venv/bin/python scripts/check_eval_set.py [data/eval/git.jsonl] [data/eval/git-docs]

Each page is read the way the project reads it (`rag.ingest.load`). For every answerable
question, each answer string and each evidence string must occur in the extracted text of one
of its sources (whitespace collapsed, case folded); for list questions every item must have an
alternative that occurs. Also checks the file's shape (header line, ids, fields, splits) and
prints the counts per split and kind. Exit status 1 when anything fails.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.evaluation.data import DatasetError, load_jsonl  # noqa: E402
from rag.evaluation.metrics import is_echo, normalize_answer  # noqa: E402
from rag.ingest import load  # noqa: E402
from rag.text import content_words  # noqa: E402


def norm(s: str) -> str:
    return " ".join(s.split()).casefold()


def page_text(path: Path) -> tuple[str, list[str]]:
    """The page's whole extracted text and each section's, normalised."""
    doc = load(path)
    sections = [norm(s.text) for s in doc.sections]
    return norm("\n".join(s.text for s in doc.sections)), sections


def kind_of(q: dict) -> str:
    if not q.get("answerable", True):
        return "unanswerable"
    return q.get("kind", "factual")


def main(argv: list[str]) -> int:
    qfile = Path(argv[1]) if len(argv) > 1 else ROOT / "data/eval/git.jsonl"
    docs = Path(argv[2]) if len(argv) > 2 else ROOT / "data/eval/git-docs"
    lines = [ln for ln in qfile.read_text(encoding="utf-8").splitlines() if ln.strip()]
    header = json.loads(lines[0])
    failures: list[str] = []
    try:  # the project's own loader must accept the file as it is
        load_jsonl(qfile, cache_root=Path("/nonexistent-cache"))
    except DatasetError as e:
        failures.append(f"rag.evaluation.data.load_jsonl refuses the file: {e}")
    if "corpus" not in header:
        failures.append(f"first line is not a corpus header: {lines[0]}")
    pages = {p.name: page_text(p) for p in sorted(docs.iterdir()) if p.is_file()}
    texts = {name: whole for name, (whole, _) in pages.items()}
    warnings: list[str] = []
    seen: set[str] = set()
    counts: Counter = Counter()
    per_page: Counter = Counter()
    for n, line in enumerate(lines[1:], start=2):
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            failures.append(f"line {n}: bad JSON ({e})")
            continue
        qid = q.get("id", f"line {n}")
        if qid in seen:
            failures.append(f"{qid}: duplicate id")
        seen.add(qid)
        if not q.get("question"):
            failures.append(f"{qid}: no question")
        if q.get("split") not in ("dev", "test"):
            failures.append(f"{qid}: split is {q.get('split')!r}")
        kind = kind_of(q)
        counts[(q.get("split"), kind)] += 1
        sources = q.get("sources", [])
        for s in sources:
            per_page[s] += 1
            if s not in texts:
                failures.append(f"{qid}: source {s} is not in {docs}")
        if kind == "unanswerable":
            if q.get("answers") or q.get("items") or q.get("evidence"):
                failures.append(f"{qid}: unanswerable question has answers, items or evidence")
            continue
        hay = [texts[s] for s in sources if s in texts]
        if not hay:
            failures.append(f"{qid}: no readable source")
            continue

        def found(s: str) -> bool:
            t = norm(s)
            return bool(t) and any(t in h for h in hay)

        if not q.get("answers"):
            failures.append(f"{qid}: answerable question without answers")
        for a in q.get("answers", []):
            if not found(a):
                failures.append(f"{qid}: answer not in sources: {a!r}")
            if not normalize_answer(a):  # scoring strips punctuation: "!" would match nothing
                failures.append(f"{qid}: answer is empty once normalised for scoring: {a!r}")
        # short option names ("-x", "7") have no content words and are not echoes
        worded = [a for a in q.get("answers", []) if content_words(a)]
        if worded and all(is_echo(a, q["question"]) for a in worded):
            warnings.append(f"{qid}: every answer only repeats words of the question")
        ev = q.get("evidence")
        for e in ([ev] if isinstance(ev, str) else ev or []):
            if not found(e):
                failures.append(f"{qid}: evidence not in sources: {e!r}")
            elif not any(norm(e) in sec for s in sources if s in pages for sec in pages[s][1]):
                # a citation is one chunk: evidence split over two sections could never be cited whole
                failures.append(f"{qid}: evidence spans more than one section: {e!r}")
        if not ev:
            failures.append(f"{qid}: no evidence")
        if kind == "list":
            items = q.get("items") or []
            if len(items) < 2:
                failures.append(f"{qid}: list question with fewer than 2 items")
            for item in items:
                if not any(found(alt) for alt in item):
                    failures.append(f"{qid}: no alternative of list item in sources: {item!r}")
    for w in warnings:
        print("WARN", w)
    for f in failures:
        print("FAIL", f)
    print(f"{len(lines) - 1} questions, {len(failures)} failures")
    for split in ("dev", "test"):
        row = {k: counts[(split, k)] for k in ("factual", "list", "unanswerable")}
        print(f"  {split}: {sum(row.values())} ", " ".join(f"{k}={v}" for k, v in row.items()))
    print("  per source:", " ".join(f"{p}={c}" for p, c in sorted(per_page.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
