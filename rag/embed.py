"""Stage 3: text to normalised vectors with a sentence-transformers model, loaded on first use."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .errors import ConfigError

log = logging.getLogger(__name__)


class Embedder:
    """Wraps a SentenceTransformer folder. Construction is cheap; the model loads on first use."""

    def __init__(self, path: str, *, name: str = "", batch_size: int = 64, device: str = "cpu") -> None:
        self.path = path
        self._name = name
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def name(self) -> str:
        """Identity recorded in the index manifest: given, else the model folder's name."""
        p = Path(self.path)
        return self._name or (p.parent.name if p.name in ("model", "models") else p.name)

    def warm_up(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a bar per model load is noise in a CLI

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
        vecs = m.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)
