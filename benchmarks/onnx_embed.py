"""ONNX Runtime (fp32 and dynamic int8, per tensor and per channel) as an embedder backend,
against sentence-transformers: batch throughput (index builds) and one question at a time
(retrieval).

sentence-transformers' own `backend="onnx"` needs optimum-onnx, whose only release pins
transformers < 4.58 while sentence-transformers 6 needs transformers >= 5, so the two cannot be
installed together. This evaluates the same idea directly: the local model folder is exported
with torch.onnx (no network), run with onnxruntime, mean-pooled and normalised exactly as the
sentence-transformers pipeline does. Kept only if SQuAD recall@5 drops by at most 1 point.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from rag.embed import Embedder, OnnxEncoder, export_onnx, quantize_int8

from .common import goal, percentiles, squad_paragraphs


class OrtEmbedder:
    """The product's ONNX encoder over length-sorted batches (less padding, as sentence-transformers does)."""

    def __init__(self, onnx_path: Path, tokenizer, *, max_length: int, threads: int, dim: int) -> None:
        self.encoder = OnnxEncoder(onnx_path, tokenizer, max_length=max_length, threads=threads, dim=dim)

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), 0), np.float32)
        order = np.argsort([-len(t) for t in texts])
        for s in range(0, len(texts), batch_size):
            idx = order[s:s + batch_size]
            vecs = self.encoder.encode([texts[i] for i in idx])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vecs.shape[1]), np.float32)
            out[idx] = vecs
        return out


def export(model, folder: Path) -> tuple[Path, Path, Path]:
    """fp32 ONNX of the transformer inside a SentenceTransformer (the product's exporter), and its
    int8 twins: one scale per weight tensor, and one per output channel (issue 33: the per-tensor
    one lost 1.25 recall points; a scale per channel follows each row's own range)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = export_onnx(model, folder / "model.onnx")
    int8, per_channel = folder / "model.int8.onnx", folder / "model.int8-pc.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    quantize_int8(fp32, per_channel)  # the product's (embed_backend auto)
    return fp32, int8, per_channel


def _question_ms(embed, questions: list[str]) -> dict:
    """Latency of one question at a time, as retrieval embeds them."""
    embed(questions[:3])
    times = []
    for q in questions:
        t = time.perf_counter()
        embed([q])
        times.append(time.perf_counter() - t)
    p = percentiles(times)
    return {"p50": p["p50"] * 1000, "p95": p["p95"] * 1000, "n": p["n"]}


def recall_at_5(doc_vecs: np.ndarray, q_vecs: np.ndarray, gold: np.ndarray) -> float:
    top = np.argsort(-(q_vecs @ doc_vecs.T), axis=1)[:, :5]
    return float(np.mean([g in row for g, row in zip(gold, top)]))


def build_times(*, embedder, corpus: str, chunk_size: int, chunk_overlap: int, repeats: int = 2) -> dict:
    """An index build of `corpus` with torch against the default backend (`auto`: int8 ONNX), in
    this run, each embedder loaded before the clock starts; best of `repeats` fresh builds."""
    from rag import index as index_mod

    out = {}
    for backend in ("torch", "auto"):
        emb = Embedder(embedder.path, name=embedder.name, batch_size=embedder.batch_size, backend=backend)
        emb.warm_up()
        emb.model  # noqa: B018 - the chunker's tokenizer, loaded by both
        best, report = float("inf"), None
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="rag-onnx-build-") as tmp:
                t = time.perf_counter()
                report = index_mod.build([corpus], index_dir=Path(tmp) / "index", embedder=emb,
                                         chunk_size=chunk_size, chunk_overlap=chunk_overlap)
                best = min(best, time.perf_counter() - t)
        out[emb.backend_name if backend == "auto" else backend] = {"seconds": best, "chunks": report.n_chunks}
    return out


def run(*, quick: bool, embedder, batch_size: int, corpus: str | None = None, chunk_size: int = 0,
        chunk_overlap: int = 0) -> dict:
    paragraphs, qa = squad_paragraphs()
    if quick:
        paragraphs, qa = paragraphs[:60], [(q, r) for q, r in qa if r < 60][:200]
    questions = [q for q, _ in qa]
    gold = np.array([r for _, r in qa])
    model = embedder.model  # the SentenceTransformer, which export and the torch side need
    threads = __import__("torch").get_num_threads()
    results: dict = {}
    torch_only = Embedder(embedder.path, name=embedder.name, batch_size=embedder.batch_size,
                          query_backend="torch")
    torch_only._model = model  # the same loaded model, with the question path forced to torch
    with tempfile.TemporaryDirectory(prefix="rag-onnx-") as tmp:
        t = time.perf_counter()
        fp32, int8, per_channel = export(model, Path(tmp))
        results["export_s"] = time.perf_counter() - t
        backends = {"torch": torch_only.embed,
                    "onnx": OrtEmbedder(fp32, model.tokenizer, max_length=embedder.max_seq_length,
                                        threads=threads, dim=embedder.dim).embed,
                    "onnx-int8": OrtEmbedder(int8, model.tokenizer, max_length=embedder.max_seq_length,
                                             threads=threads, dim=embedder.dim).embed,
                    "onnx-int8-per-channel": OrtEmbedder(per_channel, model.tokenizer,
                                                         max_length=embedder.max_seq_length,
                                                         threads=threads, dim=embedder.dim).embed}
        for name, embed in backends.items():
            kw = {} if name == "torch" else {"batch_size": batch_size}
            embed(paragraphs[:8], **kw)  # first-call set-up is not throughput
            t = time.perf_counter()
            docs = embed(paragraphs, **kw)
            secs = time.perf_counter() - t
            qv = embed(questions, **kw)
            # as the product asks them: one at a time (int8 in batches moves a vector with its batch-mates;
            # the per-channel model runs one text per call, rag.embed.INT8_BATCH, so its columns agree)
            qv1 = np.vstack([embed([q], **kw) for q in questions])
            results[name] = {"paragraphs_per_s": len(paragraphs) / secs,
                             "recall_at_5": recall_at_5(docs, qv, gold),
                             "recall_at_5_one_question": recall_at_5(docs, qv1, gold),
                             "question_ms": _question_ms(embed, questions[:200])}
    base = results["torch"]
    goals = []
    for name in ("onnx", "onnx-int8", "onnx-int8-per-channel"):
        r = results[name]
        r["speed_ratio_vs_torch"] = r["paragraphs_per_s"] / base["paragraphs_per_s"]
        r["question_speed_ratio_vs_torch"] = base["question_ms"]["p50"] / r["question_ms"]["p50"]
        r["recall_drop_points"] = (base["recall_at_5"] - r["recall_at_5"]) * 100
        r["recall_drop_points_one_question"] = (base["recall_at_5_one_question"]
                                                - r["recall_at_5_one_question"]) * 100
        # kept per use: batches (index builds) and single questions (retrieval) are decided apart
        r["keep_batches"] = r["recall_drop_points"] <= 1.0 and r["speed_ratio_vs_torch"] > 1.0
        r["keep_questions"] = (max(r["recall_drop_points"], r["recall_drop_points_one_question"]) <= 1.0
                               and r["question_speed_ratio_vs_torch"] > 1.0)
        goals.append(goal(f"{name} embedder: SQuAD recall@5 drop (speed x{r['speed_ratio_vs_torch']:.2f} "
                          f"batches, x{r['question_speed_ratio_vs_torch']:.2f} questions)",
                          target="<= 1 point", measured=r["recall_drop_points"], unit="points",
                          met=r["recall_drop_points"] <= 1.0))
    if corpus:
        results["build"] = build_times(embedder=embedder, corpus=corpus, chunk_size=chunk_size,
                                       chunk_overlap=chunk_overlap, repeats=1 if quick else 2)
    results["questions"], results["paragraphs"] = len(questions), len(paragraphs)
    results["goals"] = goals
    return results
