"""Index build against raw `SentenceTransformer.encode`, re-index of an unchanged corpus, memory.

Builds and encodes run in fresh subprocesses so each reports its own peak RSS and no run warms
caches for the next; the model load and library imports are excluded from both sides of the
ratio (cold start is measured on its own in generation.py).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .common import CORPUS, goal, run_json_subprocess, stats, write_sentence_corpus

_BUILD = """
import json, sys, time, numpy as np
from benchmarks.common import peak_rss_mb
from rag import index
from rag.stores import faiss as faiss_store
from rag.chunk import embed_text
from rag.config import DEFAULT_EMBEDDER_NAME, Settings
from rag.embed import Embedder
a = json.loads(sys.argv[1])
s = Settings.load()
emb = Embedder(s.embedder_path(), name=DEFAULT_EMBEDDER_NAME, batch_size=a["batch_size"])
# the same first forward pass as the raw side, through the SentenceTransformer that builds
# embed with (emb.embed of a few texts goes through the ONNX twin and would leave torch to
# load inside the timed build)
emb.model.encode(["warm up the model"] * 8)
# libraries are imported before the clock starts, as the raw side imports sentence_transformers
# first: langchain_text_splitters alone takes 0.3-0.45 s to import, a fifth of a corpus build
import faiss, langchain_text_splitters  # noqa: E401,F401
rss_model = peak_rss_mb()
t = time.perf_counter()
rep = index.build([a["corpus"]], index_dir=a["index"], embedder=emb, chunk_size=a["chunk_size"],
                  chunk_overlap=a["chunk_overlap"])
build_s = time.perf_counter() - t
rss_build = peak_rss_mb()
again = []
for _ in range(a["reindex_repeats"]):
    t = time.perf_counter()
    r2 = index.build([a["corpus"]], index_dir=a["index"], embedder=emb, chunk_size=a["chunk_size"],
                     chunk_overlap=a["chunk_overlap"])
    again.append(time.perf_counter() - t)
    assert r2.n_embedded == 0 and not r2.changed
texts = [embed_text(c) for c in faiss_store.open_index(a["index"]).chunks]
tokens = [len(emb.tokenizer(x)["input_ids"]) for x in texts]
with open(a["texts_out"], "w") as fh:
    json.dump(texts, fh)
print(json.dumps({"chunks": rep.n_chunks, "embedded": rep.n_embedded, "build_s": build_s,
                  "reindex_s": again, "rss_model_mb": rss_model, "rss_build_mb": rss_build,
                  "mean_tokens": float(np.mean(tokens))}))
"""

_RAW = """
import json, sys, time
from benchmarks.common import peak_rss_mb
from rag.config import Settings
from sentence_transformers import SentenceTransformer
a = json.loads(sys.argv[1])
texts = json.load(open(a["texts"]))
m = SentenceTransformer(Settings.load().embedder_path(), device="cpu")
m.encode(["warm up the model"] * 8)  # the same first forward pass as the build side
rss_model = peak_rss_mb()
t = time.perf_counter()
m.encode(texts, batch_size=a["batch_size"], normalize_embeddings=True, convert_to_numpy=True)
print(json.dumps({"encode_s": time.perf_counter() - t, "rss_mb": peak_rss_mb(),
                  "rss_model_mb": rss_model}))
"""

# A stand-in with the real tokenizer (so chunking is real) and cheap 384-d vectors: the
# memory of 100k chunks through the real build path, without 30+ minutes of embedding.
_STANDIN = """
import json, sys, time, zlib, numpy as np
from benchmarks.common import peak_rss_mb
from rag import index
from rag.config import Settings
from transformers import AutoTokenizer
a = json.loads(sys.argv[1])
class StandIn:
    name, dim, max_seq_length = "stand-in-384", 384, 256
    tokenizer = AutoTokenizer.from_pretrained(Settings.load().embedder_path())
    def embed(self, texts, *, progress=False):
        seeds = [zlib.crc32(t.encode()) for t in texts]
        v = np.stack([np.random.default_rng(s).standard_normal(384, dtype=np.float32) for s in seeds]) \\
            if texts else np.zeros((0, 384), np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
rss0 = peak_rss_mb()
t = time.perf_counter()
rep = index.build([a["corpus"]], index_dir=a["index"], embedder=StandIn(), chunk_size=a["chunk_size"],
                  chunk_overlap=0)
print(json.dumps({"chunks": rep.n_chunks, "build_s": time.perf_counter() - t,
                  "rss_start_mb": rss0, "rss_peak_mb": peak_rss_mb()}))
"""


def _build(corpus: Path, work: Path, *, tag: str, chunk_size: int, chunk_overlap: int,
           batch_size: int, reindex_repeats: int) -> tuple[dict, dict]:
    texts = work / f"{tag}-texts.json"
    b = run_json_subprocess(_BUILD, json.dumps({
        "corpus": str(corpus), "index": str(work / f"{tag}-index"), "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap, "batch_size": batch_size, "reindex_repeats": reindex_repeats,
        "texts_out": str(texts)}))
    r = run_json_subprocess(_RAW, json.dumps({"texts": str(texts), "batch_size": batch_size}))
    return b, r


def run(*, quick: bool, batch_size: int, chunk_size: int, chunk_overlap: int) -> dict:
    big_chunks = 1_000 if quick else 10_000
    mem_chunks = 10_000 if quick else 100_000
    repeats = 1 if quick else 3
    out: dict = {"batch_size": batch_size, "corpora": {}}
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        sentence_corpus = write_sentence_corpus(work / "sentences", n_files=big_chunks // 40)
        cases = [("corpus", CORPUS, chunk_size, chunk_overlap, repeats),
                 (f"{big_chunks // 1000}k", sentence_corpus, 32, 0, 1)]
        for tag, corpus, size, overlap, n in cases:
            builds, raws = [], []
            for i in range(n):
                b, r = _build(corpus, work, tag=f"{tag}-{i}", chunk_size=size, chunk_overlap=overlap,
                              batch_size=batch_size, reindex_repeats=3)
                builds.append(b)
                raws.append(r)
            rate = [b["chunks"] / b["build_s"] for b in builds]
            raw_rate = [b["chunks"] / r["encode_s"] for b, r in zip(builds, raws)]
            reidx = [x / b["build_s"] for b in builds for x in b["reindex_s"]]
            out["corpora"][tag] = {
                "chunks": builds[0]["chunks"], "chunk_size": size,
                "mean_tokens_per_chunk": round(builds[0]["mean_tokens"], 1),
                "rag_index_chunks_per_s": stats(rate), "raw_encode_chunks_per_s": stats(raw_rate),
                "ratio": stats([a / b for a, b in zip(rate, raw_rate)]),
                "full_build_s": stats([b["build_s"] for b in builds]),
                "unchanged_reindex_s": stats([x for b in builds for x in b["reindex_s"]]),
                "reindex_over_build": stats(reidx),
                "peak_rss_build_mb": max(b["rss_build_mb"] for b in builds),
                "rss_after_model_load_mb": builds[0]["rss_model_mb"],
                "peak_rss_raw_encode_mb": max(r["rss_mb"] for r in raws)}
        mem = {}
        for n_chunks in sorted({10_000, mem_chunks}):
            corpus = write_sentence_corpus(work / f"mem{n_chunks}", n_files=n_chunks // 40)
            mem[str(n_chunks)] = run_json_subprocess(_STANDIN, json.dumps(
                {"corpus": str(corpus), "index": str(work / f"mem{n_chunks}-index"), "chunk_size": 32}))
        out["memory_standin"] = mem
    goals = []
    for tag, c in out["corpora"].items():
        r = c["ratio"]["median"]
        goals.append(goal(f"index build throughput, {tag} ({c['chunks']} chunks)", target=">= 0.90 of raw encode",
                          measured=r, met=r >= 0.90))
    for tag, c in out["corpora"].items():
        r = c["reindex_over_build"]["median"]
        goals.append(goal(f"unchanged re-index vs full build, {tag}", target="<= 0.05", measured=r,
                          met=r <= 0.05))
    big = mem[str(mem_chunks)]
    small = mem["10000"]
    per_chunk_kb = (big["rss_peak_mb"] - small["rss_peak_mb"]) * 1024 / max(1, big["chunks"] - small["chunks"]) \
        if big is not small else big["rss_peak_mb"] * 1024 / big["chunks"]
    out["memory_kb_per_chunk"] = per_chunk_kb
    goals.append(goal(f"peak RSS indexing {big['chunks']} chunks (stand-in embedder)", target="bounded; reported",
                      measured=big["rss_peak_mb"], unit="MB", met=True,
                      note=f"{per_chunk_kb:.1f} KB per extra chunk between 10k and {mem_chunks // 1000}k"))
    out["goals"] = goals
    return out


def batch_sweep(embedder, texts: list[str], sizes: list[int]) -> dict:
    """Raw encode throughput of the same texts at several batch sizes (chunks per second)."""
    import time

    model = embedder.model  # the SentenceTransformer itself: raw encode at each batch size
    model.encode(texts[:8])
    out = {}
    for bs in sizes:
        t = time.perf_counter()
        model.encode(texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True)
        out[str(bs)] = len(texts) / (time.perf_counter() - t)
    return out
