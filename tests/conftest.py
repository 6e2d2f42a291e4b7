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
    restart: "object" = None  # restart() stops the app and starts it again on the same port


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost, never a proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chat_app(tmp_path_factory, real_rag):
    """`python app.py` really running: real models, over a temporary corpus copy and index.

    The index starts as a copy of real_rag's (same corpus files), so no second embedding pass.
    Answers are capped at 128 tokens to keep the suite quick on two cores. Its models folder
    holds a second name for the shipped GGUF (a link: a second model for the picker that costs
    no download) and a file that is not a model.
    """
    base = tmp_path_factory.mktemp("app")
    models = base / "models"
    models.mkdir()
    (models / PICKER_COPY).symlink_to(real_rag.model_path)
    (models / PICKER_BROKEN).write_bytes(b"GGUF" + bytes(60))
    yield from run_app(base, real_rag, env={"RAG_MODELS_DIR": str(models)})


PICKER_COPY, PICKER_BROKEN = "SmolLM2-135M-copy.gguf", "broken.gguf"


SECURE_USERS = {"alice": "wonder", "bob": "s3cret-b0b"}  # alice by --auth, bob by a hashed line


@pytest.fixture(scope="session")
def secure_app(tmp_path_factory, real_rag):
    """app.py with sign-in and small limits (tests/test_app_security.py, test_workspace.py)."""
    from rag.accounts import hash_password

    base = tmp_path_factory.mktemp("secure-app")
    users = base / "users"
    users.write_text(f"# made with: python app.py --hash-password bob\nbob:{hash_password(SECURE_USERS['bob'])}\n")
    args = ["--auth", f"alice:{SECURE_USERS['alice']}", "--auth-file", str(users),
            "--max-file-mb", "0.02", "--max-files", "3", "--max-upload-mb", "0.05",
            "--queue-size", "2", "--queue-per-client", "2"]
    yield from run_app(base, real_rag, args, env={"RAG_MAX_TOKENS": "48"})


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
    and environment; yields its AppServer once the page answers, stops it afterwards. Its
    collections and saved conversations live in `base` too; `restart()` restarts it."""
    corpus, index, log = base / "corpus", base / "index", base / "app.log"
    shutil.copytree(CORPUS, corpus)
    shutil.copytree(real_rag.settings.index, index, ignore=shutil.ignore_patterns(".lock"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_MAX_TOKENS": "128", **(env or {})}
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index),
           "--corpus", str(corpus), "--collections", str(base / "collections"),
           "--history", str(base / "history.db"), "--n-ctx", "2048", *args]
    url = f"http://127.0.0.1:{port}/"
    procs = []

    def start():
        with log.open("a") as out:
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base))
        wait_until_up(url, procs[-1], log, name="app.py")

    def restart():
        _stop(procs[-1])
        start()

    try:
        start()
        yield AppServer(url=url, corpus=corpus, index=index, log=log, restart=restart)
    finally:
        if procs:
            _stop(procs[-1])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# made-up facts, so an answer that holds one can only have come from the collection
TEAM_FACT = "The Kestrel-9 survey drone has a flight time of 47 minutes on one battery."
ALICE_FACT = "Alice keeps the spare key of the boathouse under the blue teapot."
API_KEY = "test-key-123"


@dataclass
class ServedCollections:
    """real_rag's index copied to `index`, beside a collections root with `team` (everyone's)
    and `alice-notes` (alice's own), each holding one document of a made-up fact."""

    base: Path
    index: Path
    collections: Path


@pytest.fixture(scope="session")
def served_collections(tmp_path_factory, real_rag) -> ServedCollections:
    import dataclasses

    from rag.collections import Collections

    base = tmp_path_factory.mktemp("served")
    index, root = base / "index", base / "collections"
    shutil.copytree(real_rag.settings.index, index, ignore=shutil.ignore_patterns(".lock"))
    settings = dataclasses.replace(real_rag.settings, index=str(index), collections=str(root))
    collections = Collections.from_settings(settings)
    for name, owner, fact, doc in (("team", "", TEAM_FACT, "drones/kestrel.md"),
                                   ("alice-notes", "alice", ALICE_FACT, "boathouse.md")):
        c = collections.create(name, owner=owner)
        (c.corpus / doc).parent.mkdir(parents=True, exist_ok=True)
        (c.corpus / doc).write_text(f"# Notes\n\n{fact}\n", encoding="utf-8")
        real_rag.sibling(collections.settings_for(settings, name, user=owner or None)).index()
    return ServedCollections(base, index, root)


@pytest.fixture(scope="session")
def api_server(served_collections):
    """One `rag serve` (OpenAI API and MCP at /mcp, API key API_KEY) over served_collections for
    the whole run."""
    log = served_collections.base / "serve.log"
    port = _free_port()
    env = {**os.environ, "RAG_MAX_TOKENS": "64", "RAG_API_KEY": API_KEY}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port),
                                 "--index", str(served_collections.index),
                                 "--collections", str(served_collections.collections),
                                 "--n-ctx", "2048", "--max-queue", "32"], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", proc, log, name="rag serve")
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def llm_server():
    """One llama.cpp OpenAI-compatible server on the shipped model for the whole run: the
    server tests and the generator contract suite share it instead of each loading the model."""
    from test_server_llm import _free_port, _start_server

    port = _free_port()
    proc = _start_server(port)
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=30)
