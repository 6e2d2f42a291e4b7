"""Milvus Lite against the FAISS folder, through the same `VectorStore` writer and search calls.

The same synthetic vectors (common.synthetic_vectors) and placeholder chunks go into both
stores; build throughput is chunks committed per second (writer.add + commit: FAISS writes its
files, Milvus inserts, flushes, loads and switches its alias); search latency is one query's
`IndexVersion.search` for the top 50, as retrieval asks for its dense candidates.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


from rag.config import DEFAULT_ANN_THRESHOLD
from rag.stores.faiss import FaissStore
from rag.stores.milvus import MilvusStore, close
from rag.types import Chunk

from .common import percentiles, synthetic_vectors


class _Embedder:
    name, dim, fingerprint = "synthetic", 384, "synthetic-384"


def _chunks(n: int) -> list[Chunk]:
    return [Chunk(id=f"doc{i // 20}.md#{i % 20}", source=f"doc{i // 20}.md", title="", headings=(),
                  text=f"placeholder chunk {i}") for i in range(n)]


def _build(store, chunks, vectors) -> float:
    t = time.perf_counter()
    with store.writer() as w:
        w.start(fresh=True)
        for start in range(0, len(chunks), 4096):
            w.add(chunks[start:start + 4096], vectors[start:start + 4096])
        w.commit({"format_version": 1, "embedder": {"name": "synthetic", "dim": vectors.shape[1],
                                                    "fingerprint": "synthetic-384"},
                  "chunker": {}, "documents": {}}, dim=vectors.shape[1])
    return time.perf_counter() - t


def run(*, quick: bool, sizes: tuple[int, ...] = (10_000, 100_000), n_queries: int = 50) -> dict:
    sizes = (2_000,) if quick else sizes
    vectors = synthetic_vectors(max(sizes), seed=0)
    queries = synthetic_vectors(n_queries, seed=7)
    out: dict = {"sizes": {}}
    for n in sizes:
        chunks, vecs = _chunks(n), vectors[:n]
        row: dict = {}
        with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp:
            stores = {"faiss": FaissStore(Path(tmp) / "faiss", ann_threshold=DEFAULT_ANN_THRESHOLD),
                      "milvus": MilvusStore(str(Path(tmp) / "milvus.db"))}
            for name, store in stores.items():
                seconds = _build(store, chunks, vecs)
                version = store.open(embedder=_Embedder())
                version.search(queries[:1], 50)  # first-call costs stay out of the figures
                lat = []
                for q in queries:
                    t = time.perf_counter()
                    version.search(q[None, :], 50)
                    lat.append(time.perf_counter() - t)
                p = percentiles(lat)
                row[name] = {"build_s": seconds, "chunks_per_s": n / seconds, "search_p50_ms": p["p50"] * 1000,
                             "search_p95_ms": p["p95"] * 1000}
            close(stores["milvus"].uri)
        row["build_ratio_milvus_vs_faiss"] = row["milvus"]["chunks_per_s"] / row["faiss"]["chunks_per_s"]
        row["search_p50_ratio_milvus_vs_faiss"] = row["milvus"]["search_p50_ms"] / row["faiss"]["search_p50_ms"]
        out["sizes"][str(n)] = row
    return out
