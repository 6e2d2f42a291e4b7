"""Stage 3: text to normalised vectors with a sentence-transformers model, loaded on first use."""
from __future__ import annotations

import logging
import os
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
            return self._embed_one(m, texts[0])
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
