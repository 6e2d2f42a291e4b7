"""Shared pieces of the benchmarks: timing statistics, machine description, test data."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SQUAD = ROOT / "data" / "squad2-dev-sample.json"

# Questions about the shipped corpus, used for the generation and end-to-end figures.
CORPUS_QUESTIONS = [
    "What is LoRA?",
    "What are autoencoders used for?",
    "What is transfer learning?",
    "What are GANs?",
    "What is a transformer network?",
    "What is retrieval-augmented generation?",
    "What is prompt engineering?",
    "How should you choose a deep learning model?",
    "What is backpropagation?",
    "What are convolutional neural networks good at?",
]


def stats(values: list[float]) -> dict:
    """Median, min, max and count of repeated measurements."""
    vals = [float(v) for v in values]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def percentiles(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)), "n": len(arr)}


def goal(name: str, *, target: str, measured: float, met: bool, unit: str = "", note: str = "") -> dict:
    """One goal of the issue, with the figure that decides it."""
    return {"goal": name, "target": target, "measured": round(float(measured), 4), "unit": unit,
            "met": bool(met), "note": note}


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_json_subprocess(code: str, *args: str, timeout: float = 900) -> dict:
    """Run a Python snippet in a fresh interpreter and return the JSON it prints last.

    Fresh processes give honest cold-start times and per-run peak RSS.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    cpu = "unknown"
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    simd = [f for f in flags if f.startswith(("avx", "amx", "fma", "f16c"))]
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "memory": mem, "simd": simd,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": list(os.getloadavg()), "gpu": _gpu(), "commit": _commit()}


def _gpu() -> dict:
    try:
        import llama_cpp
        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # noqa: BLE001 - a build without the symbol cannot offload either
        offload = False
    return {"nvidia_smi": shutil.which("nvidia-smi") is not None, "llama_gpu_offload": offload}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    out = {}
    for name in ("rag-local", "torch", "sentence-transformers", "transformers", "faiss-cpu",
                 "llama_cpp_python", "langchain-text-splitters", "numpy", "onnxruntime", "onnx",
                 "bm25s"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def squad_paragraphs() -> tuple[list[str], list[tuple[str, int]]]:
    """SQuAD sample paragraphs, and its answerable questions with their paragraph's row."""
    data = json.loads(SQUAD.read_text())
    paragraphs: list[str] = []
    questions: list[tuple[str, int]] = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            row = len(paragraphs)
            paragraphs.append(para["context"])
            questions.extend((qa["question"], row) for qa in para["qas"] if not qa.get("is_impossible"))
    return paragraphs, questions


def write_sentence_corpus(folder: Path, *, n_files: int) -> Path:
    """A corpus of short SQuAD-derived passages, one per line, spread over `n_files` files.

    With a small chunk size every line becomes about one chunk, so a corpus of a chosen chunk
    count is cheap to make from real English text.
    """
    paragraphs, questions = squad_paragraphs()
    sentences = [s.strip() + "." for p in paragraphs for s in p.split(". ") if len(s.split()) > 4]
    # at most 12 words, so that with chunk_size 32 a line is one chunk and two never merge
    lines = [" ".join(x.split()[:12]) for x in sentences + [q for q, _ in questions]]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for f in range(n_files):
        # the file number keeps files distinct, so none is collapsed as a duplicate
        body = "\n\n".join(f"{lines[(f * 37 + i) % len(lines)]} (part {f}.{i})" for i in range(40))
        (folder / f"doc{f:05d}.txt").write_text(body + "\n", encoding="utf-8")
    return folder


def synthetic_vectors(n: int, *, dim: int = 384, seed: int = 0) -> np.ndarray:
    """Unit vectors with topic clusters and shared low-rank structure, like text embeddings.

    Uniform random vectors would be the worst case for an approximate index (no structure to
    exploit); real embeddings cluster by topic. Generated in blocks to keep memory flat.
    """
    fixed = np.random.default_rng(1234)  # the same "topics" for corpus and queries
    topics, rank = 512, 32
    centers = fixed.standard_normal((topics, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    mix = (fixed.standard_normal((dim, rank)) / np.sqrt(rank)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(n, start + 100_000) - start
        x = (centers[rng.integers(0, topics, m)] * 0.8
             + rng.standard_normal((m, rank), dtype=np.float32) @ mix.T * 0.5
             + rng.standard_normal((m, dim), dtype=np.float32) * (0.5 / np.sqrt(dim)))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + m] = x
    return out
