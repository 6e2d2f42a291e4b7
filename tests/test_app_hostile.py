"""The chat app against hostile files and clients (issue 34, findings 5-10 and 16): uploads whose
reading fails in any way, copies an upload left unindexed (a kill -9 while indexing), forged
proxy headers, foreign Host and Origin headers, raw uploads past the allowance, sign-in floods,
other users' collection names, and the operator's model and documents.

No model is loaded: the services run on the hashed-words embedder and a scripted generator, and
the app is served in this process (`launch_app`, the same guards `python app.py` puts in front
of Gradio) on a free port, so each test asks real HTTP routes in about a second.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag import RAG
from rag.accounts import Accounts, SignInThrottle
from rag.errors import ConfigError
from rag.uploads import UploadLimits
from rag.web.guards import _origin_allowed
from rag.web.launch import launch_app
from rag.web.ui import build_ui
from rag.workspace import ChatService
from rag.testing import HashEmbedder, ScriptedGenerator

ROOT = Path(__file__).resolve().parent.parent
OWLS = "# Owls\n\nOwls hunt small rodents at night and sleep by day.\n"


def _rag(tmp_path: Path, outputs=(), generator=None) -> RAG:
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "owls.md").write_text(OWLS)
    rag = RAG(index=str(tmp_path / "index"), corpus=str(corpus), collections=str(tmp_path / "collections"),
              embedder=HashEmbedder(), generator=generator or ScriptedGenerator(list(outputs)),
              guards="small", min_score=-1)
    rag.index()
    return rag


def _uploads(folder: Path, files: dict[str, bytes | str]) -> list[dict]:
    """Files as Gradio's upload folder holds them, and the entries /add_documents gets."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        entries.append({"path": str(path), "orig_name": name})
    return entries


def _docx_needing_zip_version(tmp_path: Path, version: int) -> bytes:
    """A .docx whose zip entries say they need zip version `version` / 10 to extract (Python's
    zipfile raises NotImplementedError from 6.4 on)."""
    path = tmp_path / "v.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    data = bytearray(path.read_bytes())
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:  # central directory: version needed at +6
        data[pos + 6:pos + 8] = version.to_bytes(2, "little")
        pos += 4
    pos = 0
    while (pos := data.find(b"PK\x03\x04", pos)) >= 0:  # local headers: at +4
        data[pos + 4:pos + 6] = version.to_bytes(2, "little")
        pos += 4
    return bytes(data)


# ---------------------------------------------------------------- finding 5: any reader failure is one file's

def test_a_reader_failure_of_any_kind_skips_that_file_and_keeps_the_batch(tmp_path):
    service = ChatService(rag=_rag(tmp_path))
    up = tmp_path / "gradio" / "h1"
    entries = _uploads(up, {"zipv.docx": _docx_needing_zip_version(tmp_path, 64),
                            "good.md": "# Lamps\n\nQuartz lamps need a warm-up of two minutes.\n"})
    report = service.add_uploads(entries, upload_dir=tmp_path / "gradio")
    assert report.added == ["good.md"]
    [(name, reason)] = report.rejected
    assert name == "zipv.docx" and "zip file version 6.4" in reason and "\n" not in reason
    assert not (service.corpus / "zipv.docx").exists()
    assert service.rag.search("quartz lamps warm-up")[0].chunk.source == "good.md"


def test_an_unexpected_exception_while_reading_is_that_files_reason(tmp_path, monkeypatch):
    """Whatever escapes the reader (a bug, a library's RecursionError) is caught by the upload
    path itself: that file is refused with a reason, the others are added."""
    from rag import ingest

    real = ingest.load

    def load(path, **kw):
        if path.name == "deep.md":
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, **kw)

    monkeypatch.setattr(ingest, "load", load)
    service = ChatService(rag=_rag(tmp_path))
    up = tmp_path / "up"
    up.mkdir()
    (up / "deep.md").write_text("# Deep\n\nNested.\n")
    (up / "fine.md").write_text("# Fine\n\nFerrets sleep eighteen hours a day.\n")
    report = service.add_files(sorted(up.iterdir()))
    assert report.added == ["fine.md"]
    # worded as `rag index` words it (rag.ingest.failure)
    assert report.rejected == [("deep.md", "nested too deeply to read (RecursionError)")]
    assert not (service.corpus / "deep.md").exists()


def test_an_unexpected_failure_while_indexing_removes_the_copies(tmp_path, monkeypatch):
    service = ChatService(rag=_rag(tmp_path))
    live = service.rag.store.version
    doc = tmp_path / "late.md"
    doc.write_text("# Late\n\nLate arrivals are welcome.\n")

    def broken(*a, **kw):
        raise MemoryError()

    monkeypatch.setattr(service.rag, "index", broken)
    report = service.add_files([doc])
    assert report.added == [] and report.rejected == [("late.md", "indexing failed: too large to read (out of memory)")]
    assert not (service.corpus / "late.md").exists() and service.rag.store.version == live
    monkeypatch.undo()
    assert service.add_files([doc]).added == ["late.md"]  # not "already in your documents"


def test_an_unindexed_copy_is_indexed_on_upload_not_already_in_your_documents(tmp_path):
    """A file the corpus folder holds but the index does not (left by a crash, or put there by
    hand) is indexed when the same file is uploaded; only an indexed one is 'already there'."""
    service = ChatService(rag=_rag(tmp_path))
    text = "# Kilns\n\nA kiln cools for a day before it is opened.\n"
    (service.corpus / "kilns.md").write_text(text)  # in the folder, not in the index
    entries = _uploads(tmp_path / "gradio" / "h1", {"kilns.md": text})
    report = service.add_uploads(entries, upload_dir=tmp_path / "gradio")
    assert report.added == ["kilns.md"] and report.rejected == []
    assert "kilns.md" in service.rag.vector_store.manifest()["documents"]
    entries = _uploads(tmp_path / "gradio" / "h2", {"kilns.md": text})
    report = service.add_uploads(entries, upload_dir=tmp_path / "gradio")
    assert report.rejected == [("kilns.md", "the same file is already in your documents")]
    assert sorted(p.name for p in service.corpus.iterdir()) == ["kilns.md", "owls.md"]


# ---------------------------------------------------------------- finding 6: kill -9 while an upload is indexed

_KILLED_UPLOAD = """
import os, signal, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from rag.workspace import ChatService
from rag import RAG
from rag.testing import HashEmbedder, ScriptedGenerator

tmp = Path({tmp!r})
rag = RAG(index=str(tmp / "index"), corpus=str(tmp / "corpus"), collections=str(tmp / "collections"),
          embedder=HashEmbedder(), generator=ScriptedGenerator([]), guards="small", min_score=-1)
service = ChatService(rag=rag)

def killed(*a, **kw):  # the copy is in the corpus folder; the build is cut off before it commits
    os.kill(os.getpid(), signal.SIGKILL)

rag.index = killed
service.add_files([Path({doc!r})])
"""


def test_a_copy_left_unindexed_by_a_killed_upload_is_moved_to_the_trash_at_the_next_start(tmp_path):
    rag = _rag(tmp_path)
    doc = tmp_path / "gears.md"
    doc.write_text("# Gears\n\nHelical gears run quieter than spur gears.\n")
    hand = rag.settings.corpus + "/by-hand.md"  # put in the folder by hand, never indexed
    Path(hand).write_text("# By hand\n\nNotes copied in with the file manager.\n")
    script = _KILLED_UPLOAD.format(root=str(ROOT), tmp=str(tmp_path), doc=str(doc))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    corpus = Path(rag.settings.corpus)
    assert (corpus / "gears.md").is_file()  # the crash left the copy, unindexed
    assert "gears.md" not in rag.vector_store.manifest()["documents"]
    assert list((tmp_path / "collections" / ".uploads").glob("*/*.json"))  # and its record

    service = ChatService(rag=rag)  # the next start
    assert not (corpus / "gears.md").exists()
    [trashed] = list((tmp_path / "collections" / ".trash" / "documents" / "default").glob("*/gears.md"))
    assert trashed.read_text() == doc.read_text()  # moved, not lost
    assert (corpus / "by-hand.md").is_file()  # a file nobody uploaded is left alone
    assert not (tmp_path / "collections" / ".uploads").exists() or \
        not list((tmp_path / "collections" / ".uploads").glob("*/*.json"))
    assert not [p for p in corpus.iterdir() if p.name.startswith(".")]  # no temporary copy left
    # uploading it again adds it: nothing says "already in your documents"
    assert service.add_files([doc]).added == ["gears.md"]


def test_a_running_apps_uploads_are_not_reconciled_by_another_start(tmp_path):
    rag = _rag(tmp_path)
    first = ChatService(rag=rag)
    doc = tmp_path / "cogs.md"
    doc.write_text("# Cogs\n\nCogs mesh.\n")
    # the first app is "indexing": its copy and record exist while its lock is held
    record = first.journal.record("default", Path(rag.settings.corpus) / "cogs.md", "0" * 64)
    (Path(rag.settings.corpus) / "cogs.md").write_text(doc.read_text())
    ChatService(rag=rag)  # a second start while the first runs
    assert record.is_file() and (Path(rag.settings.corpus) / "cogs.md").is_file()


# ---------------------------------------------------------------- served in this process: the real routes

class _Held(ScriptedGenerator):
    """Answers only once `go` is set: a question holds its place in the queue until then."""

    def __init__(self, outputs):
        super().__init__(outputs)
        self.go = threading.Event()

    def stream(self, *a, **kw):
        self.go.wait(60)
        yield from super().stream(*a, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, service, demo, port, accounts=None):
        self.service, self.demo, self.accounts = service, demo, accounts
        self.url = f"http://127.0.0.1:{port}/"
        self.port = port
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, path, data=None, headers=None, method=None, opener=None) -> tuple[int, str]:
        if isinstance(data, dict):
            data = json.dumps(data).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with (opener or self.opener).open(req, timeout=60) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def upload(self, name: str, data: bytes, headers=None, opener=None) -> tuple[int, str]:
        body = (b"--rag\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name.encode() +
                b"\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--rag--\r\n")
        return self.request("gradio_api/upload", body, {"Content-Type": "multipart/form-data; boundary=rag",
                                                        **(headers or {})}, opener=opener)

    def outcome(self, session: str, opener=None) -> dict:
        """The "process_completed" message of `session`'s event, from the queue's event stream."""
        req = urllib.request.Request(self.url + f"gradio_api/queue/data?session_hash={session}")
        with (opener or self.opener).open(req, timeout=60) as stream:
            for line in stream:
                if line.startswith(b"data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        return message
        raise AssertionError(f"no outcome for {session}")

    def fn_index(self, api_name: str, opener=None) -> int:
        config = json.loads(self.request("config", opener=opener)[1])
        return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)

    def join(self, fn: int, data: list, session: str, headers=None, opener=None) -> tuple[int, str]:
        return self.request("gradio_api/queue/join", {"data": data, "fn_index": fn, "session_hash": session},
                            headers, opener=opener)


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """serve(service, **launch options): the app of `service` on a free port, closed afterwards."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-uploads"))
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")  # launch_app must switch uvicorn's trust off
    started = []

    def start(service, **options) -> Served:
        demo = build_ui(service)
        port = _free_port()
        launch_app(demo, service, port=port, prevent_thread_lock=True, **options)
        started.append(demo)
        return Served(service, demo, port, options.get("accounts"))

    yield start
    for demo in started:
        demo.close()


def test_a_foreign_host_gets_400_everywhere(tmp_path, serve):
    app = serve(ChatService(rag=_rag(tmp_path)))
    evil = {"Host": "evil.example"}
    ask = app.fn_index("ask")
    for path, data, method in (("config", None, None), ("", None, None), ("gradio_api/info", None, None),
                               ("gradio_api/queue/join", {"data": ["q?"], "fn_index": ask, "session_hash": "s"}, None),
                               ("gradio_api/upload", b"x", None), ("config", None, "OPTIONS")):
        headers = {**evil, "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"} \
            if method == "OPTIONS" else evil
        status, body = app.request(path, data, headers, method)
        assert status == 400 and "unknown Host header" in body, (path, status, body[:200])
    for host in ("localhost", f"127.0.0.1:{app.port}", f"localhost:{app.port}", "[::1]"):
        assert app.request("config", headers={"Host": host})[0] == 200
    # one Host check, around the whole stack (Gradio's CORS layer included), not a second one inside
    from rag.hosts import HostGuard

    server = app.demo.server_app
    assert isinstance(server.middleware_stack, HostGuard)
    assert all(m.cls is not HostGuard for m in server.user_middleware)


def test_allowed_hosts_are_configurable(tmp_path, serve):
    from rag.hosts import allowed_hosts

    app = serve(ChatService(rag=_rag(tmp_path)), allowed=allowed_hosts("127.0.0.1", ["rag.example.org"]))
    assert app.request("config", headers={"Host": "rag.example.org"})[0] == 200
    assert app.request("config", headers={"Host": "evil.example"})[0] == 400


def test_a_page_of_another_site_cannot_upload_or_ask(tmp_path, serve):
    app = serve(ChatService(rag=_rag(tmp_path)))
    own = f"http://127.0.0.1:{app.port}"
    for origin in ("http://evil.example", "null", "http://localhost:1", "https://127.0.0.1"):
        status, body = app.upload("a.md", b"# A\n\nx\n", {"Origin": origin})
        assert status == 403 and body == json.dumps({"error": f"refused: a request from a page of another site ({origin})"})
        status, _ = app.join(app.fn_index("ask"), ["q?"], "s", {"Origin": origin})
        assert status == 403
    assert not list((tmp_path / "gradio-uploads").rglob("a.md"))
    assert app.upload("a.md", b"# A\n\nx\n", {"Origin": own})[0] == 200  # the app's own page
    assert app.upload("b.md", b"# B\n\nx\n", {"Origin": f"http://localhost:{app.port}"})[0] == 200
    assert app.upload("c.md", b"# C\n\nx\n")[0] == 200  # no Origin: not a browser
    assert app.request("config", headers={"Origin": "http://evil.example"})[0] == 200  # reading changes nothing


def test_origin_rules():
    allowed = frozenset({"localhost", "127.0.0.1", "::1", "rag.example.org"})
    assert _origin_allowed("http://127.0.0.1:7860", "127.0.0.1:7860", allowed, 7860)
    assert _origin_allowed("http://localhost:7860", "127.0.0.1:7860", allowed, 7860)
    assert _origin_allowed("https://rag.example.org", "rag.example.org", allowed, 7860)  # behind a proxy
    assert _origin_allowed("http://[::1]:7860", "[::1]:7860", allowed, 7860)
    assert not _origin_allowed("http://localhost:8000", "127.0.0.1:7860", allowed, 7860)
    assert not _origin_allowed("http://evil.example:7860", "127.0.0.1:7860", allowed | {"*"}, 7860)
    assert not _origin_allowed("null", "127.0.0.1:7860", allowed, 7860)
    assert not _origin_allowed("file:///tmp/x.html", "127.0.0.1:7860", allowed, 7860)
    assert _origin_allowed("http://127.0.0.1:7860", None, allowed, 7860)


def test_origin_rules_behind_a_proxy_that_rewrites_host():
    """nginx's default proxy_pass sends Host: 127.0.0.1:7860 while the browser is at
    https://rag.example (--allowed-hosts rag.example): its pages are the app's own, on any port
    and scheme; other sites, "null" and other programs on loopback ports stay refused."""
    from rag.hosts import allowed_hosts

    allowed = allowed_hosts("127.0.0.1", ["rag.example"])
    for origin in ("https://rag.example", "http://rag.example", "https://rag.example:8443", "https://RAG.example"):
        assert _origin_allowed(origin, "127.0.0.1:7860", allowed, 7860), origin
        assert _origin_allowed(origin, None, allowed, 7860), origin
    for origin in ("https://evil.example", "https://rag.example.evil.example", "https://evil.example:7860",
                   "null", "file:///tmp/x.html", "http://localhost:8000", "https://127.0.0.1"):
        assert not _origin_allowed(origin, "127.0.0.1:7860", allowed, 7860), origin
    assert not _origin_allowed("https://evil.example", "127.0.0.1:7860", allowed | {"*"}, 7860)


def test_a_page_behind_a_proxy_that_rewrites_host_may_upload(tmp_path, serve):
    from rag.hosts import allowed_hosts

    app = serve(ChatService(rag=_rag(tmp_path)), allowed=allowed_hosts("127.0.0.1", ["rag.example"]))
    # what nginx passes on: Host is the upstream's, Origin the browser's
    assert app.upload("a.md", b"# A\n\nx\n", {"Origin": "https://rag.example"})[0] == 200
    status, _ = app.upload("b.md", b"# B\n\nx\n", {"Origin": "https://evil.example"})
    assert status == 403
    assert app.upload("c.md", b"# C\n\nx\n", {"Origin": "null"})[0] == 403


def test_raw_uploads_count_against_the_allowance_when_they_are_sent(tmp_path, serve):
    """5 x 20 KB uploads with an allowance of 50 KB, never asked to be added: two are stored,
    the rest refused before they are read; adding them moves their bytes from the upload folder
    to the corpus, and the allowance counts them once."""
    service = ChatService(rag=_rag(tmp_path), limits=UploadLimits(file_bytes=30_000, files=5, total_bytes=50_000))
    app = serve(service)
    answers = [app.upload(f"junk-{i}.md", (f"# Junk {i}\n\n" + "filler words " * 1600).encode()[:20_000])
               for i in range(5)]
    assert [s for s, _ in answers] == [200, 200, 413, 413, 413]
    assert answers[2][1] == json.dumps({"error": "over your upload allowance of 48.8 KB (39.3 KB used)"})
    stored = list((tmp_path / "gradio-uploads").rglob("junk-*.md"))
    assert len(stored) == 2
    # asking to add them: added, their upload copies deleted, the allowance counts the corpus copies
    entries = [{"path": p, "orig_name": Path(p).name} for s, body in answers if s == 200 for p in json.loads(body)]
    report = service.add_uploads(entries, upload_dir=tmp_path / "gradio-uploads", owner="address 127.0.0.1")
    assert sorted(report.added) == ["junk-0.md", "junk-1.md"]
    assert not list((tmp_path / "gradio-uploads").rglob("junk-*.md"))
    with service.allowance.lock:
        assert service.allowance.used("address 127.0.0.1") == 40_000
    status, body = app.upload("more.md", b"# More\n\n" + b"x" * 12_000)
    assert status == 413 and "(39.1 KB used)" in body


def test_forged_forwarded_for_headers_are_one_client(tmp_path, serve):
    """Each request claims another address in X-Forwarded-For: the queue's per-client cap and
    the upload allowance still count the one real client."""
    generator = _Held(["Owls hunt small rodents [1].", "Owls hunt small rodents [1]."])
    service = ChatService(rag=_rag(tmp_path, generator=generator),
                          limits=UploadLimits(file_bytes=30_000, files=5, total_bytes=30_000))
    app = serve(service, queue_per_client=2)
    try:
        ask = app.fn_index("ask")
        for i in range(2):
            assert app.join(ask, ["What do owls hunt?", "few_shot", 4, None, None, None], f"s{i}",
                            {"X-Forwarded-For": f"203.0.113.{i}"})[0] == 200
        status, body = app.join(ask, ["What do owls hunt?", "few_shot", 4, None, None, None], "s3",
                                {"X-Forwarded-For": "198.51.100.7"})
        assert status == 503 and "you have 2 requests waiting" in body
        answers = [app.upload(f"f{i}.md", b"# F\n\n" + b"y" * 12_000, {"X-Forwarded-For": f"198.51.100.{i}"})
                   for i in range(3)]
        assert [s for s, _ in answers] == [200, 200, 413]
        assert {r.owner for r in service.allowance._raw} == {"address 127.0.0.1"}
    finally:
        generator.go.set()


def test_a_trusted_proxy_names_the_client(tmp_path, serve):
    """With --trusted-proxies, the client a trusted proxy names is the one counted."""
    from rag.hosts import parse_proxies

    generator = _Held(["Owls hunt small rodents [1]."] * 3)
    service = ChatService(rag=_rag(tmp_path, generator=generator))
    app = serve(service, queue_per_client=1, trusted=parse_proxies(["127.0.0.1"]))
    try:
        ask = app.fn_index("ask")
        for i in range(3):  # three clients behind the proxy: one request each is allowed
            status, _ = app.join(ask, ["What do owls hunt?", "few_shot", 4, None, None, None], f"p{i}",
                                 {"X-Forwarded-For": f"203.0.113.{i}"})
            assert status == 200
        status, body = app.join(ask, ["What do owls hunt?", "few_shot", 4, None, None, None], "p9",
                                {"X-Forwarded-For": "203.0.113.1"})
        assert status == 503 and "you have 1 requests waiting" in body
    finally:
        generator.go.set()


def _form(user: str, password: str) -> bytes:
    return urllib.parse.urlencode({"username": user, "password": password}).encode()


def test_fifty_parallel_wrong_passwords_are_one_check(tmp_path, serve):
    accounts = Accounts(throttle=SignInThrottle(first=5.0))
    accounts.add("alice", password="wonder")
    accounts.add("bob", password="bobs-secret")
    app = serve(ChatService(rag=_rag(tmp_path), operators=frozenset({"alice"})), accounts=accounts)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda i: app.request("login", _form("alice", f"guess-{i}"), form), range(50)))
    statuses = [s for s, _ in answers]
    assert accounts.checked == 1 and statuses.count(400) == 1 and statuses.count(429) == 49
    refused = next(body for s, body in answers if s == 429)
    assert json.loads(refused)["detail"].startswith("too many sign-in attempts; wait ")
    # the right password waits too: a throttled attempt is not checked at all
    status, body = app.request("login", _form("alice", "wonder"), form)
    assert status == 429 and accounts.checked == 1
    # another user from the same address is not held up by alice's record
    assert app.request("login", _form("bob", "bobs-secret"), form)[0] == 200
    # spraying many user names from one address: a few are checked, then the address waits
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda i: app.request("login", _form(f"user{i}", "x"), form), range(30)))
    assert 2 <= accounts.checked <= 2 + 10 and [s for s, _ in answers].count(429) >= 20


def test_the_page_config_names_no_private_collection_and_no_model_path(tmp_path, serve):
    service = ChatService(rag=RAG(index=str(tmp_path / "index"), corpus=str(_rag(tmp_path).settings.corpus),
                                  collections=str(tmp_path / "collections"), embedder=HashEmbedder(),
                                  guards="small", min_score=-1),  # the shipped model, never loaded
                          operators=frozenset({"alice"}))
    service.create_collection("alice-diary", user="alice")
    service.create_collection("team-plans", user="alice", shared=True)
    service.collections.create("manuals")  # made with the CLI: everyone's
    accounts = Accounts()
    accounts.add("alice", password="wonder")
    accounts.add("bob", password="bobs-secret")
    app = serve(service, accounts=accounts)
    jar = urllib.request.HTTPCookieProcessor()
    bob = urllib.request.build_opener(urllib.request.ProxyHandler({}), jar)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert app.request("login", _form("bob", "bobs-secret"), form, opener=bob)[0] == 200
    status, config = app.request("config", opener=bob)
    assert status == 200 and "alice-diary" not in config and "team-plans" not in config and "manuals" in config
    assert service.rag.model_path not in config and str(Path(service.rag.model_path).parent) not in config
    # a private name sent where the dropdown goes: Gradio's "not in the list of choices" lists
    # only what the page offered
    config = json.loads(config)
    dropdown = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "collection")
    pick = next(d["id"] for d in config["dependencies"] if [dropdown, "change"] in d["targets"])
    status, _ = app.join(pick, ["alice-diary"], "bob-1", opener=bob)
    assert status == 200
    error = app.outcome("bob-1", opener=bob)["output"]["error"]
    assert error == "Value: alice-diary is not in the list of choices: ['default', 'manuals']"
    # the picker is filled when a page opens: the operator's by file name, nobody else's
    picker = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "model-picker")
    fill = next(d["id"] for d in config["dependencies"] if d["outputs"][:1] == [picker] and not d["inputs"])
    alice = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor())
    assert app.request("login", _form("alice", "wonder"), form, opener=alice)[0] == 200
    for who, session in ((alice, "alice-open"), (bob, "bob-open")):
        assert app.join(fill, [], session, opener=who)[0] == 200
    [shown, note] = app.outcome("alice-open", opener=alice)["output"]["data"]
    assert shown["visible"] is True and shown["value"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert ["smollm2-135m: SmolLM2-135M-Instruct.Q4_1.gguf (shipped default) · 98 MB · about 6 s an answer (estimate) · quotes",
            "SmolLM2-135M-Instruct.Q4_1.gguf"] in shown["choices"]
    assert "/" not in json.dumps(shown["choices"]) and "Good for" in note
    [shown, note] = app.outcome("bob-open", opener=bob)["output"]["data"]
    assert shown["visible"] is False and shown["choices"] == [] and note == ""
    # bob creates alice's private name: refused without saying it exists
    with pytest.raises(ConfigError) as e:
        service.create_collection("alice-diary", user="bob")
    assert str(e.value) == "the name 'alice-diary' is not available; choose another"
    with pytest.raises(ConfigError) as e:
        service.create_collection("manuals", user="bob")
    assert str(e.value) == "the name 'manuals' is not available; choose another"


def test_admins_default_to_the_first_account_and_need_sign_in(tmp_path):
    from rag.web import launch as app

    accounts = app.load_accounts(["carol:c", "dave:d"], None)
    args = app.parse_args([])
    assert app._operators(args, accounts) == frozenset({"carol"}) and app._operators(args, None) is None
    assert app._operators(app.parse_args(["--admins", "dave,carol"]), accounts) == frozenset({"carol", "dave"})
    with pytest.raises(app.AuthError, match="no user named 'eve'"):
        app._operators(app.parse_args(["--admins", "eve"]), accounts)
    with pytest.raises(app.AuthError, match="give --auth or --auth-file"):
        app._operators(app.parse_args(["--admins", "eve"]), None)
    assert app.main(["--trusted-proxies", "10.0.0.0/33"]) == 1
