"""Run every benchmark and write BENCHMARKS.md and benchmarks/results.json.

    .venv/bin/python benchmarks/run.py            # full run (about 90 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smoke run of every code path (a few minutes)
    .venv/bin/python benchmarks/run.py --render   # BENCHMARKS.md again from results.json, no measuring

Figures are ratios against the raw library doing the same work in the same run, so they stay
meaningful on a busy machine; absolute times are reported as medians with the min-max spread.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/run.py` from a clone

from benchmarks import (big_pdf, common, fuzz, generation, hostile, indexing, milvus, onnx_embed, readers,  # noqa: E402
                        report, retrieval, server, serve_api, speed, whole)
from rag import index as index_mod  # noqa: E402
from rag.stores import faiss as faiss_store  # noqa: E402
from rag.chunk import embed_text  # noqa: E402
from rag.config import DEFAULT_EMBEDDER_NAME, Settings  # noqa: E402
from rag.embed import Embedder  # noqa: E402

SECTIONS = ("indexing", "retrieval", "milvus", "generation", "server", "serve", "onnx", "readers", "hostile", "fuzz",
            "stop_early", "answer_evals", "prefill", "cold", "concurrency", "first_word", "mcp_start", "big_pdf", "whole")
SPEED = {"stop_early", "answer_evals", "prefill", "cold", "concurrency", "first_word", "mcp_start", "whole"}  # issue 20, on the corpus index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke run")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--out", default=str(common.ROOT), help="folder for BENCHMARKS.md (default: repo root)")
    p.add_argument("--json", default=str(common.ROOT / "benchmarks" / "results.json"))
    p.add_argument("--render", action="store_true",
                   help="measure nothing: write BENCHMARKS.md again from the results file")
    args = p.parse_args(argv)
    if args.render:
        md = Path(args.out) / "BENCHMARKS.md"
        md.write_text(report.render(json.loads(Path(args.json).read_text())))
        print(f"wrote {md} from {args.json}")
        return 0
    results = run(quick=args.quick, only=args.only)
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "") + \
        (f" --only {' '.join(args.only)}" if args.only else "")
    results["command"] = command
    old = Path(args.json)
    if args.only and old.exists():
        results = _merge(json.loads(old.read_text()), results)
    Path(args.json).write_text(json.dumps(results, indent=1))
    md = Path(args.out) / "BENCHMARKS.md"
    md.write_text(report.render(results))
    print(f"wrote {md} and {args.json}")
    for g in results["goals"]:
        print(f"{'MET    ' if g['met'] else 'NOT MET'} {g['goal']}: {g['measured']} {g['unit']} "
              f"(target {g['target']})")
    return 0


def _merge(old: dict, new: dict) -> dict:
    """The earlier full run with the sections just re-run replaced, so one slow section can be
    measured again on a quiet machine without repeating the rest; the report says which."""
    if old.get("quick") != new["quick"]:
        return new
    merged = dict(old)
    merged["sections"] = {**old["sections"], **new["sections"]}
    merged["reruns"] = old.get("reruns", []) + [
        f"{new['command']} at {new['started']} ({new['total_s'] / 60:.1f} min)"]
    merged["goals"] = [g for s in merged["sections"].values() for g in s.get("goals", [])]
    return merged


def run(*, quick: bool, only: list[str] | None = None) -> dict:
    """All sections; returns the results dictionary that the report renders."""
    sections = only or list(SECTIONS)
    settings = Settings.load()
    t_start = time.perf_counter()
    results: dict = {"quick": quick, "machine": common.machine(), "versions": common.versions(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "sections": {}}
    embedder = Embedder(settings.embedder_path(), name=DEFAULT_EMBEDDER_NAME,
                        batch_size=settings.embed_batch_size)

    def section(name, fn, **kw):
        t = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        out = fn(**kw)
        out["section_s"] = time.perf_counter() - t
        results["sections"][name] = out
        print(f"[bench] {name} done in {out['section_s']:.0f}s", flush=True)

    if "indexing" in sections:
        section("indexing", indexing.run, quick=quick, batch_size=settings.embed_batch_size,
                chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    if "retrieval" in sections:
        section("retrieval", retrieval.run, quick=quick, embedder=embedder, top_k=settings.top_k,
                ann_threshold=settings.ann_threshold)
    if "milvus" in sections:
        section("milvus", milvus.run, quick=quick)
    with tempfile.TemporaryDirectory(prefix="rag-bench-index-") as tmp:
        idx = str(Path(tmp) / "index")
        if ({"generation", "onnx", "server", "serve"} | SPEED) & set(sections):
            index_mod.build([settings.corpus], index_dir=idx, embedder=embedder,
                            chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        if "generation" in sections:
            section("generation", generation.run, quick=quick, index=idx)
        if "server" in sections:
            section("server", server.run, quick=quick, index=idx)
        if "serve" in sections:
            section("serve", serve_api.run, quick=quick, index=idx)
        if "stop_early" in sections:
            section("stop_early", speed.stop_early, index=idx,
                    questions=common.CORPUS_QUESTIONS[:3] if quick else common.CORPUS_QUESTIONS[:8])
        if "answer_evals" in sections:
            section("answer_evals", speed.answer_evals, index=idx, limit=6 if quick else None)
        if "prefill" in sections:
            section("prefill", speed.prefill, index=idx, questions=common.CORPUS_QUESTIONS[:2 if quick else 4],
                    repeats=1 if quick else 3)
        if "cold" in sections:
            section("cold", speed.cold, index=idx, question=common.CORPUS_QUESTIONS[0],
                    repeats=1 if quick else 2, big=10_000 if quick else int(os.environ.get("BENCH_BIG", 1_000_000)))
        if "concurrency" in sections:
            section("concurrency", speed.concurrency, index=idx, users=4 if quick else 20)
        if "first_word" in sections:
            section("first_word", speed.first_word, index=idx,
                    questions=common.CORPUS_QUESTIONS[:4] if quick else common.CORPUS_QUESTIONS)
        if "mcp_start" in sections:
            section("mcp_start", speed.mcp_start, index=idx, repeats=2 if quick else 5)
        if "whole" in sections:
            section("whole", whole.run, index=idx, quick=quick)
        if "onnx" in sections and importlib.util.find_spec("onnxruntime") is None:
            results["notes"] = ["onnx section skipped: onnx and onnxruntime are not installed "
                                "(pip install -e '.[test]')"]
        elif "onnx" in sections:
            texts = [embed_text(c) for c in faiss_store.open_index(idx).chunks]
            section("embed_batch_size", lambda: {"chunks_per_s": indexing.batch_sweep(
                embedder, texts, [16, 32, 64] if quick else [16, 32, 64, 128]), "chunks": len(texts)})
            section("onnx", onnx_embed.run, quick=quick, embedder=embedder,
                    batch_size=settings.embed_batch_size, corpus=settings.corpus,
                    chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    if "readers" in sections:
        section("readers", readers.run, quick=quick)
    if "big_pdf" in sections:
        section("big_pdf", big_pdf.run, quick=quick)
    if "hostile" in sections:  # RAG_BENCH_BEFORE=<older checkout> measures it too
        section("hostile", hostile.section, quick=quick)
    if "fuzz" in sections:
        section("fuzz", fuzz.section, quick=quick)
    results["total_s"] = time.perf_counter() - t_start
    results["goals"] = [g for s in results["sections"].values() for g in s.get("goals", [])]
    return results


if __name__ == "__main__":
    sys.exit(main())
