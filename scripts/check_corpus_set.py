#!/usr/bin/env python3
"""Check the shipped eval set data/eval/corpus.jsonl against the demo corpus in corpus/.

python scripts/check_corpus_set.py [SET.jsonl] [CORPUS_DIR]

For every answerable question: each answer, each evidence string and, for a list question,
some alternative of each item must occur in the text of one of its sources (whitespace
collapsed, case-folded); every named source must exist. Unanswerable questions are printed
for a person to confirm that the corpus really lacks their answer. Also checks ids, splits,
key order and JSON style, and prints the counts per split and kind. Exit status 1 on any failure.
"""
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_ORDER = ["id", "question", "answers", "sources", "answerable", "evidence", "kind", "items", "split"]


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def main(argv: list[str]) -> int:
    set_path = Path(argv[0]) if argv else ROOT / "data" / "eval" / "corpus.jsonl"
    corpus_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "corpus"
    texts = {p.name: norm(p.read_text(encoding="utf-8")) for p in sorted(corpus_dir.iterdir()) if p.is_file()}
    failures: list[str] = []
    warnings: list[str] = []
    unanswerable: list[tuple[str, str, str]] = []
    counts: Counter = Counter()
    seen_ids: set[str] = set()
    seen_questions: dict[str, str] = {}

    def fail(qid: str, msg: str) -> None:
        failures.append(f"{qid}: {msg}")

    for n, raw in enumerate(set_path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        obj = json.loads(raw)
        qid = obj.get("id", f"line{n}")
        if json.dumps(obj, ensure_ascii=False) != raw:
            fail(qid, "line is not in json.dumps(..., ensure_ascii=False) style")
        keys = list(obj)
        if keys != [k for k in KEY_ORDER if k in obj] or set(keys) - set(KEY_ORDER):
            fail(qid, f"keys {keys} not in the order {KEY_ORDER}")
        if qid in seen_ids:
            fail(qid, "duplicate id")
        seen_ids.add(qid)
        q = norm(obj.get("question", ""))
        if not q:
            fail(qid, "empty question")
        elif q in seen_questions:
            fail(qid, f"same question as {seen_questions[q]}")
        else:
            seen_questions[q] = qid
        split = obj.get("split", "")
        if split not in ("dev", "test"):
            fail(qid, f"split {split!r} is neither dev nor test")
        if split == "test" and not qid.startswith("t"):
            warnings.append(f"{qid}: test question without a t id")
        kind = obj.get("kind", "")
        answerable = obj.get("answerable", True)
        counts[(split, "unanswerable" if not answerable else (kind or "plain"))] += 1

        answers, sources = obj.get("answers", []), obj.get("sources", [])
        evidence, items = obj.get("evidence", []), obj.get("items", [])
        if not answerable:
            if answers or sources or evidence or items:
                fail(qid, "unanswerable question lists answers, sources, evidence or items")
            unanswerable.append((qid, split, obj.get("question", "")))
            continue

        if not answers:
            fail(qid, "no answers")
        if not sources:
            fail(qid, "no sources")
        missing = [s for s in sources if s not in texts]
        for s in missing:
            fail(qid, f"source {s!r} is not a file in {corpus_dir}")
        src_texts = [texts[s] for s in sources if s in texts]

        def found(s: str) -> bool:
            return any(norm(s) in t for t in src_texts)

        for ans in answers:
            if not found(ans):
                fail(qid, f"answer {ans!r} not in its sources")
        if not evidence:
            fail(qid, "no evidence")
        elif len(evidence) > 2:
            warnings.append(f"{qid}: {len(evidence)} evidence strings (1-2 expected)")
        for ev in evidence:
            if not found(ev):
                fail(qid, f"evidence {ev!r} not in its sources")
        if kind == "list":
            if not items:
                fail(qid, "list question without items")
            for alts in items:
                if not any(found(a) for a in alts):
                    fail(qid, f"no alternative of item {alts!r} in its sources")
            if answers != [alts[0] for alts in items if alts]:
                fail(qid, "answers are not the first alternative of each item")
        elif kind:
            fail(qid, f"unknown kind {kind!r}")
        # a named source should hold at least one answer, item or evidence string
        probes = list(answers) + list(evidence) + [a for alts in items for a in alts]
        for s in sources:
            if s in texts and not any(norm(p) in texts[s] for p in probes):
                warnings.append(f"{qid}: source {s} holds none of its answers or evidence")

    print("Unanswerable questions (confirm by hand that the corpus lacks the answer):")
    for qid, split, question in unanswerable:
        print(f"  [{split}] {qid}: {question}")
    print()
    print("Counts per split and kind:")
    for split in sorted({s for s, _ in counts}):
        row = {k: c for (s, k), c in sorted(counts.items()) if s == split}
        print(f"  {split}: {sum(row.values())} ({', '.join(f'{k} {c}' for k, c in row.items())})")
    for w in warnings:
        print(f"WARNING {w}")
    for f in failures:
        print(f"FAIL {f}")
    print(f"{len(failures)} failure(s), {len(warnings)} warning(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
