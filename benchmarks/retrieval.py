"""Retrieval latency at 10k / 100k / 1M chunks: raw FAISS search, and the product's `Retriever`
(query embedding + search + whatever ranking it does) over the same vectors.

The vectors are synthetic (dimension 384, see common.synthetic_vectors); the query embedding is
real, so the end-to-end figure carries the true cost of embedding a question.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rag.stores.faiss import FaissVersion as Store, build_faiss, ivf_params
from rag.retrieve import Retriever
from rag.types import Chunk

from .common import goal, percentiles, squad_paragraphs, synthetic_vectors


def _raw_latency(index, queries: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    times, rows = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], k)
        times.append(time.perf_counter() - t)
        rows.append(ids[0])
    return times, np.stack(rows)


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)]))


def _store(vectors: np.ndarray, faiss_index, texts: list[str], embedder_name: str) -> Store:
    chunks = [Chunk(id=f"synthetic-{i // 40}.txt#{i % 40}", source=f"synthetic-{i // 40}.txt",
                    title="", headings=(), text=f"{texts[i % len(texts)]} ({i})")
              for i in range(len(vectors))]
    manifest = {"embedder": {"name": embedder_name, "dim": vectors.shape[1]}, "documents": {}}
    return Store(Path("synthetic"), manifest, chunks, vectors, faiss_index)


def _e2e_latency(store: Store, embedder, questions: list[str], top_k: int, bm25=None) -> tuple[list[float], object, float]:
    retriever = Retriever(store, embedder)
    if bm25 is not None:  # same chunk texts: building BM25 over 1M chunks twice costs minutes
        retriever._bm25 = bm25
    t = time.perf_counter()
    retriever.search(questions[0], k=top_k)  # any lazy set-up of the retriever is not a query
    setup = time.perf_counter() - t
    times = []
    for q in questions:
        t = time.perf_counter()
        retriever.search(q, k=top_k)
        times.append(time.perf_counter() - t)
    return times, retriever.bm25, setup


def run(*, quick: bool, embedder, top_k: int, ann_threshold: int, sizes: list[int] | None = None) -> dict:
    sizes = sizes or ([10_000, 100_000] if quick else [10_000, 100_000, 1_000_000])
    paragraphs, qa = squad_paragraphs()
    texts = paragraphs
    out: dict = {"ann_threshold": ann_threshold, "sizes": {}}
    t = time.perf_counter()
    vectors = synthetic_vectors(max(sizes), seed=0)
    out["generate_vectors_s"] = time.perf_counter() - t
    embedder.embed(["warm up"])
    for n in sizes:
        n_q = 20 if n >= 1_000_000 else (30 if quick else 100)
        queries = synthetic_vectors(n_q, seed=7)
        questions = [q for q, _ in qa[:n_q]]
        v = vectors[:n]
        t = time.perf_counter()
        flat = build_faiss(v, ann_threshold=0)
        flat_build = time.perf_counter() - t
        t = time.perf_counter()
        ann = build_faiss(v, ann_threshold=1)
        ann_build = time.perf_counter() - t
        flat_t, flat_rows = _raw_latency(flat, queries, 10)
        ann_t, ann_rows = _raw_latency(ann, queries, 10)
        auto_is_ann = bool(ann_threshold) and n >= ann_threshold
        row = {
            "queries": n_q, "ivf_lists_probed": list(ivf_params(n)),
            "flat_build_s": flat_build, "ann_build_s": ann_build,
            "raw_flat_ms": _ms(percentiles(flat_t)), "raw_ann_ms": _ms(percentiles(ann_t)),
            "ann_recall_at_10_vs_flat": _recall(ann_rows, flat_rows),
            "default_index": "ivf" if auto_is_ann else "flat",
        }
        bm25 = None
        for kind, index in (("flat", flat), ("ann", ann)):
            store = _store(v, index, texts, embedder.name)
            times, bm25, setup = _e2e_latency(store, embedder, questions, top_k, bm25)
            row[f"e2e_{kind}_ms"] = _ms(percentiles(times))
            if kind == "flat":
                row["bm25_build_s"] = setup  # the first query of a freshly loaded index pays it
            del store
        del bm25
        row["e2e_default_ms"] = row["e2e_ann_ms" if auto_is_ann else "e2e_flat_ms"]
        out["sizes"][str(n)] = row
        del flat, ann
    goals = []
    if "100000" in out["sizes"]:
        r100 = out["sizes"]["100000"]
        p50 = r100["e2e_default_ms"]["p50"]
        goals.append(goal("retrieval p50 end to end at 100k chunks (default index)", target="<= 20 ms",
                          measured=p50, unit="ms", met=p50 <= 20,
                          note=f"index chosen automatically: {r100['default_index']}"))
    big = str(max(sizes))
    rec = out["sizes"][big]["ann_recall_at_10_vs_flat"]
    goals.append(goal(f"IVF recall@10 vs flat at {int(big) // 1000}k vectors", target=">= 0.95",
                      measured=rec, met=rec >= 0.95,
                      note="" if big == "1000000" else "quick mode: 1M not run"))
    out["goals"] = goals
    return out


def _ms(p: dict) -> dict:
    return {"p50": round(p["p50"] * 1000, 3), "p95": round(p["p95"] * 1000, 3), "n": p["n"]}
