import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


class FakeTokenizer:
    def tokenize(self, text):
        return re.findall(r"\w+|[^\w\s]", text)

    def __call__(self, text, add_special_tokens=True, truncation=False):
        return {"input_ids": [0] * (len(self.tokenize(text)) + 2 * add_special_tokens)}


class FakeEmbedder:
    """Hashed bag of words: fast, deterministic, and similar texts get similar vectors."""

    name = "fake-embedder"
    dim = 64
    max_seq_length = 128

    def __init__(self):
        self.tokenizer = FakeTokenizer()
        self.calls = 0
        self.embedded = 0

    def embed(self, texts, *, progress=False):
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out


@pytest.fixture
def fake_embedder():
    return FakeEmbedder()


@pytest.fixture
def corpus_copy(tmp_path):
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture(scope="session")
def real_rag(tmp_path_factory):
    """The real thing: shipped MiniLM, FAISS and SmolLM2 GGUF over a fresh index of corpus/."""
    from rag import RAG

    index = tmp_path_factory.mktemp("e2e") / "index"
    rag = RAG(index=str(index), n_ctx=2048)
    report = rag.index([str(CORPUS)])
    assert report.n_chunks > 20
    return rag
