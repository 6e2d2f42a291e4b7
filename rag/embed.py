"""Stage 3: text to normalised vectors with a sentence-transformers model, loaded on first use."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .cachedir import USER_CACHE
from .config import EMBED_BACKENDS, QUERY_BACKENDS
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

# up to this many texts go through the ONNX twin (questions, an answer's sentences); more are an
# index build, which torch runs faster
SMALL_BATCH = 256
ONNX_BATCH = 16  # texts per onnxruntime call, sorted by length
# Exported query models live outside the index: one per embedder folder, shared by every index.
ONNX_CACHE = USER_CACHE / "onnx"
FP32_FILE = "model.onnx"
# the fp32 export quantised to int8 weights, one scale per output channel: SQuAD recall@5 within
# 0.31 points of torch, an index of corpus/ built 2.9x as fast on 2 cores (BENCHMARKS.md, "ONNX")
INT8_FILE = "model.int8-pc.onnx"
# texts per call into the int8 model: one. Dynamic int8 scales each call's activations by their
# range over the whole batch, so a text's vector moved with its batch-mates and its padding
# (cosine 0.97 between alone and batched); one at a time every text gets one vector wherever it
# is embedded (a question, a resumed build), and it ran faster too: 35-38 against 25-28
# corpus chunks/s in batches of 16, no padding to compute
INT8_BATCH = 1


class Embedder:
    """Wraps a SentenceTransformer folder. Construction is cheap; the model loads on first use."""

    def __init__(self, path: str, *, name: str = "", batch_size: int = 64, device: str = "cpu",
                 query_backend: str = "auto", backend: str = "torch",
                 cache_dir: str | Path | None = None) -> None:
        if query_backend not in QUERY_BACKENDS:
            raise ConfigError(f"unknown query_backend {query_backend!r}; choose one of "
                              f"{', '.join(QUERY_BACKENDS)}")
        if backend not in EMBED_BACKENDS:
            raise ConfigError(f"unknown embed_backend {backend!r}; choose one of {', '.join(EMBED_BACKENDS)}")
        self.backend = backend
        self._encoder = None  # the OnnxEncoder every text goes through; False: torch does (resolved once)
        self._resolving = threading.Lock()  # a warm-up thread and a first question resolve it together
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
    def weights_fingerprint(self) -> str:
        """Identifies the weights and configuration, read from the files without loading them."""
        if self._fingerprint is None:
            self._fingerprint = folder_fingerprint(self.path)
        return self._fingerprint

    @property
    def fingerprint(self) -> str:
        """What the index records: the weights' fingerprint for torch and the fp32 export (the
        same vectors, cosine 0.9999999), another one for int8, whose vectors differ."""
        backend = self.backend_name
        if backend == "onnx-int8":
            return hashlib.sha256(f"{self.weights_fingerprint}+{backend}".encode()).hexdigest()
        return self.weights_fingerprint

    @property
    def backend_name(self) -> str:
        """The backend that embeds index chunks and questions: torch, onnx or onnx-int8 (`auto`
        resolved, which loads the ONNX model, exporting it on first use)."""
        if self._whole() is None:
            return "torch"
        return "onnx" if self.backend == "onnx" else "onnx-int8"

    def _whole(self) -> "OnnxEncoder | None":
        """The ONNX model that embeds everything under an `onnx*` or `auto` backend, loaded once;
        None when torch does. Under `auto` a failure falls back to torch for good (the index then
        records torch); a backend asked for by name fails instead."""
        if self._encoder is None:
            with self._resolving:  # never answered "torch" to one thread while another loads int8
                if self._encoder is None:
                    self._encoder = self._resolve()
        return self._encoder or None

    def _resolve(self) -> "OnnxEncoder | bool":
        if self.backend == "torch" or (self.backend == "auto" and self.device != "cpu"):
            return False
        file = FP32_FILE if self.backend == "onnx" else INT8_FILE
        folder = self.cache_dir / self.name
        try:
            try:
                return OnnxEncoder.from_files(self.path, folder, file=file)
            except FileNotFoundError:
                return OnnxEncoder.load(self.model, self.path, folder, file=file)
        except Exception as e:  # noqa: BLE001 - missing onnxruntime, odd layout, unwritable cache
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            if self.backend != "auto":
                raise ConfigError(f"embed_backend={self.backend} cannot be used: {why}") from e
            log.warning("embedding stays on torch (%s)", why)
            return False

    @property
    def max_tokens(self) -> int:
        return self.max_seq_length

    @property
    def model(self):
        """The SentenceTransformer, loaded on first use: index builds and the torch path need it;
        answering questions does not, once its ONNX twin is exported (see `warm_up`)."""
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

    def warm_up(self):
        """Load what embedding questions and passages while answering needs: the ONNX twin when
        it is exported (torch and sentence-transformers are then never imported, which took most
        of a cold `rag ask`), else the SentenceTransformer. Returns the embedder."""
        if not self._whole() and not self._small_batches():
            self.model  # noqa: B018 (loads it)
        return self

    @property
    def dim(self) -> int:
        for onnx in (self._encoder, self._query):
            if onnx:
                return onnx.dim
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens the model will see, special tokens included."""
        return len(self.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        whole = self._whole()
        if whole is not None:
            return self._embed_onnx(whole, texts, progress=progress)
        if len(texts) <= SMALL_BATCH and not progress:
            # batches of whole passages run faster through torch once it is loaded (a long-running
            # chat loads it at start); a question, or any small batch of a process that never
            # loaded torch (a cold `rag ask`), goes through the ONNX twin
            onnx = self._small_batches() if len(texts) == 1 or self._model is None else None
            if onnx:
                return onnx.encode(texts)
            if len(texts) == 1 and self.device == "cpu":
                return self._embed_one(self.model, texts[0])
        m = self.model
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

    def embed_exact(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Vectors of texts compared only with one another while answering (the answer checks,
        passage compression, sentence ranking), never with the index's: torch's vectors whatever
        backend built the index (through the fp32 ONNX twin where `query_backend` allows), so the
        checks' thresholds, set on them, hold. Under int8 the answer's cosine to the question moved
        by 0.02, enough to cross min_relevance; retrieval alone is what int8 was measured for."""
        if self._whole() is None or self.backend == "onnx":
            return self.embed(texts, progress=progress)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        twin = self._fp32_twin()
        if twin is not None:
            return self._embed_onnx(twin, texts, progress=progress)
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=progress).astype(np.float32, copy=False)

    def _fp32_twin(self) -> "OnnxEncoder | None":
        """The fp32 export beside the int8 model (the int8 one is made from it), loaded once."""
        return self._fp32("the answer checks' embedding")

    @staticmethod
    def _embed_onnx(onnx: "OnnxEncoder", texts: list[str], *, progress: bool) -> np.ndarray:
        out = np.empty((len(texts), onnx.dim), dtype=np.float32)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="chunk")
        for start in range(0, len(texts), EMBED_SLICE):
            part = texts[start:start + EMBED_SLICE]
            out[start:start + len(part)] = onnx.encode(part)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        return out

    def _small_batches(self) -> "OnnxEncoder | None":
        """The ONNX Runtime twin of the model for questions and the few dozen sentences an
        answer's checks embed, loaded once.

        One short question through torch costs 13-14 ms on 2 cores, most of it Python and
        dispatch overhead around tiny matrices; the same weights in onnxruntime take 4 ms and give
        the same vector (cosine 0.9999999 on 300 SQuAD questions, BENCHMARKS.md). Index builds
        stay on torch, which is faster for large batches. The twin is read from its files alone
        when it was exported before; the first time, the model loads to export it. Any failure
        falls back to torch for good.
        """
        if self._whole() is not None:
            return self._encoder
        return self._fp32("question embedding")

    def _fp32(self, what: str) -> "OnnxEncoder | None":
        """The fp32 ONNX export of the model (torch's vectors), loaded once under `query_backend`
        auto on a CPU: read from its files, or exported from the loaded model the first time.
        Any failure leaves `what` on torch for good."""
        if self._query is None:
            self._query = False
            if self.query_backend == "auto" and self.device == "cpu":
                folder = self.cache_dir / self.name
                try:
                    try:
                        self._query = OnnxEncoder.from_files(self.path, folder)
                    except FileNotFoundError:
                        self._query = OnnxEncoder.load(self.model, self.path, folder)
                except Exception as e:  # noqa: BLE001 - missing onnxruntime, odd layout, unwritable cache
                    log.warning("%s stays on torch (%s)", what, str(e).splitlines()[0][:200])
        return self._query or None

    _query_model = _small_batches  # its name before passages went through it too

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

    def __init__(self, onnx_path: Path, tokenizer, *, max_length: int, threads: int, dim: int,
                 lower_case: bool = False, batch: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # sleeping rather than spinning workers, for the same reason as OMP_WAIT_POLICY above
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = tokenizer  # a `tokenizers.Tokenizer`, or a transformers tokenizer
        self.max_length = max_length
        self.dim = dim
        self.lower_case = lower_case
        self.batch = batch or (INT8_BATCH if Path(onnx_path).name == INT8_FILE else ONNX_BATCH)

    @classmethod
    def load(cls, model, path: str, folder: Path, *, file: str = FP32_FILE) -> "OnnxEncoder":
        """From a loaded SentenceTransformer, exporting its transformer on first use (and
        quantising the export, for `file` INT8_FILE)."""
        import torch

        kinds = [type(m).__name__ for m in model]
        pooling = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) or pooling != "mean":
            raise ValueError(f"model layout {kinds} with {pooling} pooling is not exported")
        fp32 = folder / _weights_key(path) / FP32_FILE
        target = fp32.with_name(file)
        if not fp32.is_file():
            export_onnx(model, fp32)
        if not target.is_file():
            quantize_int8(fp32, target)
        try:  # the same tokenizer the files-only path reads, so both give the same vectors
            return cls.from_files(path, folder, file=file)
        except (FileNotFoundError, ValueError):
            get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            return cls(target, model.tokenizer, max_length=int(model.max_seq_length),
                       threads=torch.get_num_threads(), dim=int(get()))

    @classmethod
    def from_files(cls, path: str | Path, folder: Path, *, file: str = FP32_FILE) -> "OnnxEncoder":
        """From the model folder's configuration and an ONNX export made before, without
        importing torch or sentence-transformers. FileNotFoundError when something is missing
        (no export yet), ValueError for a layout other than Transformer + mean pooling."""
        root = Path(path)
        target = folder / _weights_key(str(root)) / file
        need = [target, root / "modules.json", root / "tokenizer.json", root / "sentence_bert_config.json"]
        for f in need:
            if not f.is_file():
                raise FileNotFoundError(f)
        modules = json.loads((root / "modules.json").read_text())
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            raise ValueError(f"model layout {kinds} is not exported")
        pool = json.loads((root / modules[1]["path"] / "config.json").read_text())
        modes = {k for k, v in pool.items() if k.startswith("pooling_mode") and v is True}
        if modes != {"pooling_mode_mean_tokens"}:
            raise ValueError(f"pooling {sorted(modes)} is not exported")
        config = json.loads((root / "sentence_bert_config.json").read_text())
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        max_length = int(config.get("max_seq_length") or 512)
        tok.enable_truncation(max_length=max_length)
        tok.no_padding()  # padded here, per sub-batch
        return cls(target, tok, max_length=max_length, threads=max(1, min(8, os.cpu_count() or 1)),
                   dim=int(pool["word_embedding_dimension"]), lower_case=bool(config.get("do_lower_case")))

    def _features(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.lower_case:
            texts = [t.lower() for t in texts]
        if not hasattr(self.tokenizer, "encode_batch"):  # a transformers tokenizer
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="np")
            return {k: np.asarray(v, np.int64) for k, v in enc.items()}
        encs = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        out = {k: np.zeros((len(encs), width), np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        for i, e in enumerate(encs):
            n = len(e.ids)
            out["input_ids"][i, :n] = e.ids
            out["attention_mask"][i, :n] = e.attention_mask
            out["token_type_ids"][i, :n] = e.type_ids
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors of `texts`, in padded batches of similar lengths."""
        out = np.empty((len(texts), self.dim), np.float32)
        # like sentence-transformers: sorted by length, so short sentences are not padded to a
        # passage's length
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch):
            rows = order[start:start + self.batch]
            enc = self._features([texts[i] for i in rows])
            feed = {k: v for k, v in enc.items() if k in self.inputs}
            hidden = self.session.run(None, feed)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            vec = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out[rows] = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return out


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


def quantize_int8(fp32: Path, target: Path) -> Path:
    """Write `fp32` (an ONNX model) with int8 weights, one scale per output channel, to `target`,
    atomically; dynamic quantisation needs no calibration data and no network. The per-tensor
    variant lost 1.25 SQuAD recall@5 points, this one 0.23 (BENCHMARKS.md, "ONNX")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".quantize-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    root = logging.getLogger()  # onnxruntime's advice to pre-process first, logged on the root logger
    quiet = logging.Filter("rag")  # passes only rag.* records: the root logger's own are dropped
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(fp32), tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, target)
    finally:
        root.removeFilter(quiet)
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("quantised %s to int8 (per channel) for embedding with onnxruntime", target)
    return target
