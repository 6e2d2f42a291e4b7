"""A Hugging Face Hub on loopback, answering downloads the way huggingface.co does for a Git LFS
file, so that `rag models pull` runs its real code path (huggingface_hub's HEAD, redirect,
streamed GET, Range requests) with HF_ENDPOINT pointing here.

What the Hub does and this mimics (huggingface_hub 2.4's file_download.py reads each of these):
- HEAD or GET `/{repo}/resolve/{revision}/{file}` answers 302 with `X-Repo-Commit` (40 hex),
  `X-Linked-Etag` and `ETag` (the quoted SHA-256 of the file), `X-Linked-Size`, and `Location`
  on another origin (the CDN; a second port here), which huggingface_hub does not follow on HEAD.
- An unknown repo is 401 with `X-Error-Code: RepoNotFound`; an unknown file in a known repo is
  404 with `X-Error-Code: EntryNotFound`; an unknown revision 404 with `RevisionNotFound`.
- The CDN serves the bytes with `Content-Length`, `Accept-Ranges: bytes`, and answers
  `Range: bytes=N-` with 206 and `Content-Range: bytes N-END/TOTAL`.

Faults a test can ask for: `cut_after` bytes (the next full or partial GET sends that many body
bytes, then the connection drops), then `fail_status` for every later GET (a CDN outage), and
`corrupt` (one byte of every body flipped, so the SHA-256 no longer matches).
"""
from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Served:
    data: bytes
    sha256: str


@dataclass
class Request:
    origin: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None


@dataclass
class LoopbackHub:
    files: dict[tuple[str, str], Path]  # (repo id, file name) -> the file to serve
    cut_after: int | None = None
    fail_status: int | None = None
    corrupt: bool = False
    requests: list[Request] = field(default_factory=list)
    body_bytes: int = 0  # body bytes the CDN sent, over all requests

    def __post_init__(self):
        self._served = {}
        for key, path in self.files.items():
            data = Path(path).read_bytes()
            self._served[key] = Served(data, hashlib.sha256(data).hexdigest())
        self._by_sha = {s.sha256: s for s in self._served.values()}
        self._servers = []

    def sha256(self, repo: str, file: str) -> str:
        return self._served[(repo, file)].sha256

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def ranges(self) -> list[str]:
        return [r.range for r in self.requests if r.origin == "cdn" and r.method == "GET" and r.range]

    def __enter__(self) -> "LoopbackHub":
        for origin in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, origin))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>[^?]+)")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _handler(hub: LoopbackHub, origin: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the test reads hub.requests
            pass

        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

        def _answer(self, *, body: bool):
            hub.requests.append(Request(origin, self.command, self.path, self.headers.get("Range")))
            if origin == "hub":
                return self._resolve()
            return self._blob(body)

        def _send(self, status: int, headers: dict[str, str], payload: bytes = b""):
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(payload))}.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _resolve(self):
            m = _RESOLVE.fullmatch(self.path)
            repos = {repo for repo, _ in hub._served}
            if m is None or m["repo"] not in repos:
                return self._send(401, {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"},
                                  b'{"error":"Repository not found"}')
            if m["rev"] not in ("main", COMMIT):
                return self._send(404, {"X-Error-Code": "RevisionNotFound"}, b'{"error":"Invalid rev id"}')
            served = hub._served.get((m["repo"], m["file"]))
            if served is None:
                return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
                                  b'{"error":"Entry not found"}')
            self._send(302, {
                "Location": f"{hub.cdn}/repos/{served.sha256[:2]}/{served.sha256}?download=true",
                "X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{served.sha256}"',
                "X-Linked-Size": str(len(served.data)), "ETag": f'"{served.sha256}"',
                "Accept-Ranges": "bytes"})

        def _blob(self, body: bool):
            sha = self.path.split("?")[0].rsplit("/", 1)[-1]
            served = hub._by_sha.get(sha)
            if served is None:
                return self._send(404, {}, b"no such blob")
            if body and hub.fail_status is not None and hub.cut_after is None:  # after the cut, if any
                return self._send(hub.fail_status, {}, b"the CDN is down")
            data, total = served.data, len(served.data)
            if hub.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start, status, headers = 0, 200, {}
            m = _RANGE.fullmatch(self.headers.get("Range") or "")
            if m:
                start = int(m[1])
                end = int(m[2]) if m[2] else total - 1
                if start >= total:
                    return self._send(416, {"Content-Range": f"bytes */{total}"})
                status, headers = 206, {"Content-Range": f"bytes {start}-{end}/{total}"}
                data = data[start:end + 1]
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(data)), "Accept-Ranges": "bytes",
                         "ETag": f'"{sha}"', "Content-Type": "application/octet-stream",
                         "Content-Disposition": f'attachment; filename="{sha[:8]}.gguf";'}.items():
                self.send_header(k, v)
            self.end_headers()
            if not body:
                return
            limit = len(data)
            cut = hub.cut_after
            if cut is not None:
                hub.cut_after = None  # one cut; what follows is fail_status or a normal answer
                limit = min(limit, cut)
            for i in range(0, limit, 1 << 20):
                piece = data[i:min(i + (1 << 20), limit)]
                self.wfile.write(piece)
                hub.body_bytes += len(piece)
            if limit < len(data):  # the connection drops mid-body, as a flaky network does
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
