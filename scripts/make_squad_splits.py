#!/usr/bin/env python3
"""Write data/eval/squad-dev.json and data/eval/squad-test.json from the public SQuAD v2 dev file.

    python scripts/make_squad_splits.py [--source ../shared/bench/squad2-dev-public.json]

The split is by article, so no paragraph of a test article was ever seen while tuning on dev.
Each file keeps every paragraph of its articles (the ones without a sampled question stay as
distractors for retrieval) and a seeded sample of QUESTIONS questions stratified by article and
answerability: two thirds answerable, one third unanswerable, each article contributing in
proportion to its questions of that kind. The test file leaves out every question that
`rag eval data/squad2-dev-sample.json --limit 80` evaluates (the project's stratified sample with
seed 0, which the templates and checks were tuned on; the documented `--limit 40` runs are a
subset of it). Same source, same seed: the same two files, byte for byte.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.evaluation.data import load_squad, sample  # noqa: E402  (needs the path set above)

SPLITS = {
    "dev": ("Normans", "Computational_complexity_theory", "Steam_engine", "European_Union_law"),
    "test": ("Huguenot", "1973_oil_crisis", "Packet_switching", "Harvard_University"),
}
QUESTIONS = 200
ANSWERABLE_SHARE = 2 / 3
SEED = 0
TUNED_ON = ROOT / "data" / "squad2-dev-sample.json"
TUNED_SAMPLE = 80  # the --limit the tuning runs used


def tuned_ids(cache: Path) -> set[str]:
    """The ids `rag eval data/squad2-dev-sample.json --limit 80` evaluates (seed 0)."""
    items = load_squad(TUNED_ON, cache_root=cache).items
    return {i.id for i in sample(items, TUNED_SAMPLE, seed=0)}


def quotas(sizes: dict[str, int], total: int) -> dict[str, int]:
    """`total` shared in proportion to `sizes`, largest remainders first (ties by name)."""
    whole = sum(sizes.values())
    exact = {k: total * v / whole for k, v in sizes.items()}
    out = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def pick(articles: list[dict], exclude: set[str], rng: random.Random) -> set[str]:
    """Ids of the sampled questions, stratified by (article, answerable)."""
    pools: dict[tuple[str, bool], list[str]] = {}
    for a in articles:
        for p in a["paragraphs"]:
            for qa in p["qas"]:
                if qa["id"] not in exclude:
                    pools.setdefault((a["title"], not qa.get("is_impossible", False)), []).append(qa["id"])
    n_answerable = round(QUESTIONS * ANSWERABLE_SHARE)
    chosen: set[str] = set()
    for answerable, n in ((True, n_answerable), (False, QUESTIONS - n_answerable)):
        sizes = {t: len(ids) for (t, ok), ids in pools.items() if ok == answerable}
        for title, k in sorted(quotas(sizes, n).items()):
            ids = sorted(pools[(title, answerable)])
            chosen.update(rng.sample(ids, k))
    return chosen


def build(source: dict, split: str, exclude: set[str]) -> dict:
    articles = [a for a in source["data"] if a["title"] in SPLITS[split]]
    missing = set(SPLITS[split]) - {a["title"] for a in articles}
    if missing:
        raise SystemExit(f"error: articles not in the source file: {', '.join(sorted(missing))}")
    chosen = pick(articles, exclude, random.Random(f"{SEED}-{split}"))
    data = [{"title": a["title"],
             "paragraphs": [{"context": p["context"], "qas": [qa for qa in p["qas"] if qa["id"] in chosen]}
                            for p in a["paragraphs"]]}
            for a in articles]
    return {"version": source.get("version", "v2.0"), "split": split,
            "note": f"made by scripts/make_squad_splits.py from the SQuAD v2.0 dev set (CC BY-SA 4.0): "
                    f"articles {', '.join(SPLITS[split])}, every paragraph, {QUESTIONS} sampled questions",
            "data": data}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(ROOT.parent / "shared" / "bench" / "squad2-dev-public.json"))
    ap.add_argument("--out", default=str(ROOT / "data" / "eval"))
    args = ap.parse_args(argv)
    source = json.loads(Path(args.source).read_text(encoding="utf-8"))
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        tuned = tuned_ids(Path(cache))
    for split in SPLITS:
        out = build(source, split, tuned if split == "test" else set())
        qas = [qa for a in out["data"] for p in a["paragraphs"] for qa in p["qas"]]
        assert len(qas) == QUESTIONS and not (split == "test" and tuned & {q["id"] for q in qas})
        path = Path(args.out) / f"squad-{split}.json"
        path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        n_no = sum(qa.get("is_impossible", False) for qa in qas)
        print(f"{path}: {len(out['data'])} articles, {sum(len(a['paragraphs']) for a in out['data'])} "
              f"paragraphs, {len(qas)} questions ({len(qas) - n_no} answerable, {n_no} unanswerable)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
