import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.testing import HashEmbedder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


class FakeEmbedder(HashEmbedder):
    """The shipped stand-in under the name the index tests record."""

    def __init__(self):
        super().__init__(name="fake-embedder")


def pytest_collection_modifyitems(items):
    for item in items:
        if "e2e" not in item.keywords and "unit" not in item.keywords:
            item.add_marker(pytest.mark.unit)


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
    yield from run_app(tmp_path_factory.mktemp("app"), real_rag)


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, *, name: str, timeout: float = 300) -> None:
    """Return once `url` answers 200; fail the test with the log's tail if `proc` exits first
    or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with _NO_PROXY.open(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not answer on {url}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def run_app(base: Path, real_rag, args: list[str] = (), env: dict[str, str] | None = None):
    """Start app.py over a copy of corpus/ and of real_rag's index in `base` with extra `args`
    and environment; yields its AppServer once the page answers, stops it afterwards."""
    corpus, index, log = base / "corpus", base / "index", base / "app.log"
    shutil.copytree(CORPUS, corpus)
    shutil.copytree(real_rag.settings.index, index, ignore=shutil.ignore_patterns(".lock"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_MAX_TOKENS": "128", **(env or {})}
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index),
           "--corpus", str(corpus), "--collections", str(base / "collections"), "--n-ctx", "2048", *args]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, proc, log, name="app.py")
        yield AppServer(url=url, corpus=corpus, index=index, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
