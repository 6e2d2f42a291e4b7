"""Stage 3: text to normalised vectors with a sentence-transformers model, loaded on first use."""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import ConfigError

log = logging.getLogger(__name__)

# OpenMP threads that spin while waiting make torch (and faiss) 10-30x slower for one short
# query when another process shares the cores, as on a busy 2-core laptop; sleeping waiters
# cost next to nothing when the cores are free (BENCHMARKS.md). OpenMP reads this once, when
# torch is first imported, which in this package happens later, lazily.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Texts per call into the model: the output array is filled slice by slice, so a large build
# never holds the library's per-batch tensors for every chunk at once.
EMBED_SLICE = 4096

QUERY_BACKENDS = ("auto", "torch")
# Exported query models live outside the index: one per embedder folder, shared by every index.
ONNX_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag-local" / "onnx"


class Embedder:
    """Wraps a SentenceTransformer folder. Construction is cheap; the model loads on first use."""

    def __init__(self, path: str, *, name: str = "", batch_size: int = 64, device: str = "cpu",
                 query_backend: str = "auto", cache_dir: str | Path | None = None) -> None:
        if query_backend not in QUERY_BACKENDS:
            raise ConfigError(f"unknown query_backend {query_backend!r}; choose one of "
                              f"{', '.join(QUERY_BACKENDS)}")
        self.path = path
        self._name = name
        self.batch_size = batch_size
        self.device = device
        self.query_backend = query_backend
        self.cache_dir = Path(cache_dir) if cache_dir is not None else ONNX_CACHE
        self._model = None
        self._query = None  # OnnxEncoder once loaded; False when the torch path is used instead
        self._fingerprint: str | None = None

    @property
    def name(self) -> str:
        """Identity recorded in the index manifest: given, else the model folder's name."""
        p = Path(self.path)
        return self._name or (p.parent.name if p.name in ("model", "models") else p.name)

    @property
    def fingerprint(self) -> str:
        """Identifies the weights and configuration, read from the files without loading them."""
        if self._fingerprint is None:
            self._fingerprint = folder_fingerprint(self.path)
        return self._fingerprint

    @property
    def max_tokens(self) -> int:
        return self.max_seq_length

    def warm_up(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a bar per model load is noise in a CLI
            # the chunker measures whole sections with this tokenizer on purpose; its
            # "longer than the maximum sequence length" warning does not apply
            hf_logging.set_verbosity_error()

            try:
                self._model = SentenceTransformer(self.path, device=self.device)
            except Exception as e:  # a wrong folder fails in many ways inside the library
                raise ConfigError(f"cannot load embedder from {self.path}: {e}") from e
            log.info("embedder %s loaded (dim %d, max %d tokens)", self.name, self.dim,
                     self.max_seq_length)
        return self._model

    @property
    def dim(self) -> int:
        m = self.warm_up()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_seq_length(self) -> int:
        return int(self.warm_up().max_seq_length)

    @property
    def tokenizer(self):
        return self.warm_up().tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens the model will see, special tokens included."""
        return len(self.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        m = self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1 and self.device == "cpu":
            query = self._query_model()
            return query.encode(texts) if query else self._embed_one(m, texts[0])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bar = None
        if progress and len(texts) > EMBED_SLICE:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="chunk")
        for start in range(0, len(texts), EMBED_SLICE):
            part = texts[start:start + EMBED_SLICE]
            out[start:start + len(part)] = m.encode(
                part, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=progress and bar is None)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        return out

    def _query_model(self) -> "OnnxEncoder | None":
        """The ONNX Runtime twin of the model for single texts (questions), loaded once.

        One short question through torch costs 13-14 ms on 2 cores, most of it Python and
        dispatch overhead around tiny matrices; the same weights in onnxruntime take 4 ms and give
        the same vector (cosine 0.9999999 on 300 SQuAD questions, BENCHMARKS.md). Batches (index
        builds) stay on torch, which is faster there. Any failure falls back to torch for good.
        """
        if self._query is None:
            self._query = False
            if self.query_backend == "auto":
                try:
                    self._query = OnnxEncoder.load(self.warm_up(), self.path, self.cache_dir / self.name)
                except Exception as e:  # missing onnxruntime, odd model layout, unwritable cache
                    log.warning("question embedding stays on torch (%s)", str(e).splitlines()[0][:200])
        return self._query or None

    @staticmethod
    def _embed_one(model, text: str) -> np.ndarray:
        # A question is embedded on every search; encode()'s batching, sorting and conversions
        # cost 1-3 ms of a 7-12 ms call. The model's own modules run here, so pooling and any
        # extra layers are the same and so are the vectors.
        import torch

        with torch.inference_mode():
            prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in 6.x
            vec = model(prepare([text]))["sentence_embedding"]
            vec = torch.nn.functional.normalize(vec.float(), dim=-1)
        return vec.numpy().astype(np.float32, copy=False)


class OnnxEncoder:
    """A Transformer + mean Pooling (+ Normalize) model's transformer, exported to ONNX and run
    by onnxruntime; pooled and normalised as sentence-transformers does."""

    def __init__(self, onnx_path: Path, tokenizer, *, max_length: int, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # sleeping rather than spinning workers, for the same reason as OMP_WAIT_POLICY above
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(cls, model, path: str, folder: Path) -> "OnnxEncoder":
        import torch

        kinds = [type(m).__name__ for m in model]
        pooling = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) or pooling != "mean":
            raise ValueError(f"model layout {kinds} with {pooling} pooling is not exported")
        target = folder / _weights_key(path) / "model.onnx"
        if not target.is_file():
            export_onnx(model, target)
        return cls(target, model.tokenizer, max_length=int(model.max_seq_length),
                   threads=torch.get_num_threads())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors of `texts`, run as one padded batch."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="np")
        feed = {k: v.astype(np.int64) for k, v in enc.items() if k in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = enc["attention_mask"][..., None].astype(np.float32)
        vec = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return (vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)).astype(np.float32)


_SAMPLE = 1 << 20


def folder_fingerprint(path: str | Path) -> str:
    """SHA-256 over a model folder's file names, sizes and contents (for files over 2 MiB, their
    first and last MiB): the same model copied anywhere gives the same value, and two models
    saved under one name give two, at a few milliseconds' cost instead of hashing every weight."""
    root = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in root.rglob("*") if f.is_file() and ".cache" not in f.relative_to(root).parts)
    if not files:
        raise ConfigError(f"embedder folder {root} holds no files")
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(root).as_posix()}:{size};".encode())
        with f.open("rb") as fh:
            if size <= 2 * _SAMPLE:
                h.update(fh.read())
            else:
                h.update(fh.read(_SAMPLE))
                fh.seek(-_SAMPLE, os.SEEK_END)
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()


def _weights_key(path: str) -> str:
    """Changes when the model folder's files do, so a replaced model is exported again."""
    h = hashlib.sha1()
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


def export_onnx(model, target: Path) -> Path:
    """Write the transformer of a SentenceTransformer to `target` as ONNX (fp32), atomically."""
    import torch

    # tracing leaves the live module changed (its vectors drift to cosine 0.92 of what they were),
    # so a copy is exported
    bert = copy.deepcopy(model[0].auto_model).eval()
    enc = model.tokenizer(["an example sentence"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    axes = {n: {0: "batch", 1: "seq"} for n in names + ["last_hidden_state"]}

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(names, args))).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
            torch.onnx.export(Hidden(bert), tuple(enc[n] for n in names), tmp, input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                              dynamo=False)
        os.replace(tmp, target)  # a crash mid-export never leaves a half-written model behind
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("exported %s for question embedding with onnxruntime", target)
    return target
