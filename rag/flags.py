"""The command-line flags that set a `Settings` field, written once for both argument parsers:
`rag` (rag.cli) and the chat's `python app.py` (rag.web.launch). A parser declares the flags of
the settings it takes from this table, and reads them back into `Settings.load` overrides with
`overrides`, so a flag's name, type and help cannot drift between the two."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Flag:
    """One setting's flag: `--flag VALUE` sets `Settings.<setting>` (argparse's dest)."""

    setting: str
    flag: str
    help: str | None = None
    type: Callable | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    def add(self, parser, **changes) -> None:
        """Declare the flag on `parser` (or an argument group); `changes`: another help, ..."""
        options = {"dest": self.setting, "help": self.help, "type": self.type,
                   "choices": list(self.choices) if self.choices else None, "metavar": self.metavar}
        options.update(changes)
        parser.add_argument(self.flag, **{k: v for k, v in options.items() if v is not None})


FLAGS: dict[str, Flag] = {f.setting: f for f in (
    Flag("index", "--index", "index folder (default: indexes/default)"),
    Flag("model", "--model", "a GGUF path, a file in the models folder or a name `rag models` lists "
                             "(default: shipped SmolLM2-135M)"),
    Flag("models_dir", "--models-dir", "folder of downloaded GGUFs (default ~/.cache/rag-local/models; "
                                       "also RAG_MODELS_DIR)"),
    Flag("llm_url", "--llm-url", "an OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1) "
                                 "instead of a GGUF in-process; also RAG_LLM_URL, RAG_LLM_API_KEY"),
    Flag("llm_model", "--llm-model", "the model to ask the server for (default: the first it lists)"),
    Flag("embedder", "--embedder", "sentence-transformers model folder (default: shipped MiniLM)"),
    Flag("n_gpu_layers", "--n-gpu-layers", "layers to offload to the GPU (-1: all)", type=int),
    Flag("n_threads", "--threads", "CPU threads for llama.cpp", type=int),
    Flag("n_ctx", "--n-ctx", "model context window in tokens", type=int),
    Flag("store", "--store", "where vectors live (default faiss; also RAG_STORE)", choices=("faiss", "milvus")),
    Flag("milvus_uri", "--milvus-uri", "Milvus Lite .db file or http://host:19530 (also RAG_MILVUS_URI)"),
    Flag("collections", "--collections", "root folder of the named collections "
                                         "(default: collections/; also RAG_COLLECTIONS)", metavar="DIR"),
    Flag("corpus", "--corpus", "documents folder (default: corpus/)"),
    Flag("top_k", "--top-k", type=int),
    Flag("chunk_size", "--chunk-size", "chunk size in embedder tokens", type=int),
    Flag("chunk_overlap", "--chunk-overlap", "overlap in embedder tokens", type=int),
)}

# the models and the index: declared together, in this order, by every command that loads them
MODEL_SETTINGS = ("index", "model", "models_dir", "llm_url", "llm_model", "embedder", "n_gpu_layers",
                  "n_threads", "n_ctx", "store", "milvus_uri", "collections")
MODEL_GROUP = "models (also RAG_MODEL, RAG_EMBEDDER, RAG_N_GPU_LAYERS, ... )"


def add_flag(parser, setting: str, **changes) -> None:
    """Declare `setting`'s flag on `parser`, with `changes` (e.g. a help of the command's own)."""
    FLAGS[setting].add(parser, **changes)


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model and index flags, as one argument group."""
    group = parser.add_argument_group(MODEL_GROUP)
    for setting in MODEL_SETTINGS:
        FLAGS[setting].add(group)


def overrides(args: argparse.Namespace, settings: Iterable[str]) -> dict:
    """`Settings.load` overrides of `settings` from parsed `args` (None: not given, or not a
    flag of this command)."""
    return {name: getattr(args, name, None) for name in settings}
