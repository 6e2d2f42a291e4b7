import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
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


@dataclass
class AppServer:
    url: str
    corpus: Path
    index: Path
    log: Path


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost, never a proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chat_app(tmp_path_factory, real_rag):
    """`python app.py` really running: real models, over a temporary corpus copy and index.

    The index starts as a copy of real_rag's (same corpus files), so no second embedding pass.
    Answers are capped at 128 tokens to keep the suite quick on two cores.
    """
    base = tmp_path_factory.mktemp("app")
    corpus, index, log = base / "corpus", base / "index", base / "app.log"
    shutil.copytree(CORPUS, corpus)
    shutil.copytree(real_rag.settings.index, index, ignore=shutil.ignore_patterns(".lock"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_MAX_TOKENS": "128"}
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index),
           "--corpus", str(corpus), "--n-ctx", "2048"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with _NO_PROXY.open(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer on {url}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield AppServer(url=url, corpus=corpus, index=index, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
