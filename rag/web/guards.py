"""The ASGI middlewares in front of Gradio, and who is asking: each refuses what it must with
one line before Gradio reads anything (see `rag.web.launch.launch_app` for their order).

- `HostGuard` (rag.hosts): the Host allow-list (DNS rebinding).
- `OriginGuard`: no change request from another site's pages.
- `ClientAddress`: the client's address (the peer, or the client a trusted proxy names).
- `SignInGuard`: with sign-in on, nothing but the login form without a session.
- `UploadGuard`: no file entry that was not uploaded here; uploads within the allowance.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
from pathlib import Path
from typing import Callable

from ..accounts import Accounts, SignInThrottled
from ..hosts import ANY_HOST, LOOPBACK_NAMES, client_address, host_name, is_trusted
from ..uploads import Allowance, inside_folder, size_text

log = logging.getLogger("rag.app")  # (the chat's log lines keep the name they always had)


def client_key(username: str | None, client=None) -> str:
    """Who is asking, for per-user limits: the signed-in user, else the client's address
    (`client`: a request's client, with a `host`). The address is the connection's peer, or
    with --trusted-proxies the client a trusted proxy names (`ClientAddress`), never a header
    any client can write."""
    return f"user {username}" if username else f"address {getattr(client, 'host', None) or '?'}"


def scope_owner(scope) -> str:
    """`client_key` of a raw ASGI request (before Gradio makes a gr.Request of it)."""
    gradio = scope.get("app")
    user = None
    if getattr(gradio, "auth", None) is not None:
        user = getattr(gradio, "tokens", {}).get(_session_token(scope, gradio))
    client = scope.get("client")
    return f"user {user}" if user else f"address {(client[0] if client else None) or '?'}"


def request_key(request) -> str:
    return client_key(getattr(request, "username", None), getattr(request, "client", None))


def request_user(request) -> str | None:
    """The signed-in user of a request; None without sign-in (then every collection is everyone's)."""
    return getattr(request, "username", None) or None


def upload_folder() -> Path:
    """Where Gradio stores what browsers upload (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


_JSON_BODY_LIMIT = 4 << 20  # bytes; questions, histories and file entries are far smaller


class UploadGuard:
    """ASGI middleware in front of Gradio: a request whose JSON names a file entry that was not
    uploaded to this app (a server path, or a URL that Gradio would download) is refused with one
    line and logged, before Gradio reads, copies or fetches anything. An upload (the raw files,
    before any `/add_documents`) is refused by its declared length: over `max_request_bytes`, or
    over what is left of its sender's `allowance`, which it is charged as it is received."""

    def __init__(self, app, upload_dir: Callable[[], Path] | None = None,
                 max_request_bytes: int | None = None, allowance: Allowance | None = None) -> None:
        self.app = app
        self.upload_dir = upload_dir or upload_folder
        self.max_request_bytes = max_request_bytes
        self.allowance = allowance

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and \
                scope.get("path", "").rstrip("/").endswith("/gradio_api/upload"):
            return await self._upload(scope, receive, send)
        if scope["type"] != "http" or scope["method"] != "POST" or \
                b"json" not in dict(scope.get("headers") or []).get(b"content-type", b""):
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > _JSON_BODY_LIMIT:
                return await _refuse(send, 413, f"request body over {_JSON_BODY_LIMIT >> 20} MiB")
            if not message.get("more_body"):
                break
        foreign = _foreign_paths(body, self.upload_dir())
        if foreign:
            log.warning("refused a request naming files not uploaded to this app: %s", ", ".join(foreign[:5]))
            return await _refuse(send, 403, f"refused: {foreign[0][:200]} was not uploaded to this app")

        async def replay():
            return messages.pop(0) if messages else await receive()
        return await self.app(scope, replay, send)


    async def _upload(self, scope, receive, send):
        # refused by its declared size before any of it is stored
        size = dict(scope.get("headers") or []).get(b"content-length", b"")
        if not size.isdigit():
            return await _refuse(send, 411, "an upload must declare its length")
        if self.max_request_bytes and int(size) > self.max_request_bytes:
            return await _refuse(send, 413, f"upload over {size_text(self.max_request_bytes)} in one request")
        if self.allowance is None or not self.allowance.total:
            return await self.app(scope, receive, send)
        owner = scope_owner(scope)
        raw = self.allowance.reserve_raw(owner, int(size))
        if isinstance(raw, str):
            log.info("refused an upload of %s from %s: %s", size_text(int(size)), owner, raw)
            return await _refuse(send, 413, raw)
        status, body = 0, []

        async def watch(message):  # what Gradio stored: the list of paths it answers with
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            paths = []
            if status == 200:
                try:
                    paths = [p for p in json.loads(b"".join(body)) if isinstance(p, str)]
                except (ValueError, TypeError):
                    paths = []
            if paths:
                self.allowance.settle_raw(raw, paths)
            else:
                self.allowance.release_raw(raw)


async def _refuse(send, status: int, line: str) -> None:
    body = json.dumps({"error": line}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _foreign_paths(body: bytes, root: Path) -> list[str]:
    """Paths of file entries (dicts with a "path") in a JSON body that are not uploads under `root`."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return []  # not ours to judge: Gradio answers malformed JSON itself
    out: list[str] = []
    todo = [data]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str) and inside_folder(path, root) is None:
                out.append(path)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return out


# ---------------------------------------------------------------- sign-in


def gradio_login(accounts: Accounts):
    """Gradio's auth callback for `accounts` (async, so the check runs in a worker thread). The
    client's address comes from `ClientAddress`, which handles every request first; a throttled
    attempt is refused with 429 and how long to wait."""

    async def login(user: str, password: str) -> bool:
        try:
            return await accounts.sign_in(user, password, CLIENT_ADDRESS.get())
        except SignInThrottled as e:
            from fastapi import HTTPException

            raise HTTPException(status_code=429, headers={"Retry-After": str(e.seconds)}, detail=str(e)) from None

    return login


_OPEN_PATHS = re.compile(r"/(login|logout|favicon\.ico|theme\.css|robots\.txt|manifest\.json|pwa_icon.*"
                         r"|(assets|static|svelte)/.*|gradio_api/(login_check|theme\.css|startup-events))/?")


class SignInGuard:
    """ASGI middleware: with sign-in on, every request but the page itself and what the login
    form needs carries a valid session cookie, or gets 401 with one line. Gradio checks its API
    routes itself; this covers the ones it leaves open (cancel, reset, heartbeat, streams, run
    history, monitoring) and any it adds later. The page shown before signing in (the login
    form) also loses the description of the API that Gradio writes into it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        gradio = scope.get("app")
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or getattr(gradio, "auth", None) is None \
                or _signed_in(scope, gradio):
            return await self.app(scope, receive, send)
        if path == "/":
            return await self.app(scope, receive, _without_api_info(send))
        if _OPEN_PATHS.fullmatch(path):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        return await _refuse(send, 401, "sign in first")


def _signed_in(scope, gradio) -> bool:
    """Whether the request carries the cookie of a session Gradio's login handed out."""
    token = _session_token(scope, gradio)
    return bool(token) and token in gradio.tokens


def _session_token(scope, gradio) -> str:
    """The session token in the request's cookies ("" when none)."""
    cookies = {}
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                cookies[k] = v
    cid = gradio.cookie_id
    return cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}") or ""


_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)


def _without_api_info(send):
    """`send` for the login page: the body is held until complete, then sent without the API
    description (endpoint names, parameters, docstrings)."""
    start, chunks = None, []

    async def filtered(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return None
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return None
        body = _API_INFO.sub(b"window.gradio_api_info = {};</script>", b"".join(chunks))
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return filtered


# ---------------------------------------------------------------- who is asking, and from where

# the client address of the request being handled, for the sign-in throttle (Gradio calls the
# auth callback with a user name and a password only)
CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("rag_client_address", default="?")

_PROXY_HEADERS = frozenset({b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port",
                            b"x-forwarded-prefix", b"x-forwarded-server", b"x-real-ip", b"forwarded"})


class ClientAddress:
    """ASGI middleware: a request's client address is the connection's peer. With trusted proxies
    (--trusted-proxies), a request that comes through one of them is from the client its
    X-Forwarded-For names (`rag.hosts.client_address`); from anyone else, the proxy headers are
    taken out before Gradio sees them: they would make the address every per-client limit counts
    by (queue places, upload allowance, sign-in attempts), and the root URL Gradio writes into
    the page, whatever the client likes. uvicorn's own reading of X-Forwarded-For, which believes
    any client on this machine, is switched off by `launch_app`."""

    def __init__(self, app, trusted: tuple = ()) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        client = scope.get("client")
        peer = client[0] if client else ""
        headers = list(scope.get("headers") or [])
        if self.trusted and is_trusted(peer, self.trusted):
            forwarded = ", ".join(v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for")
            address = client_address(peer, forwarded or None, self.trusted)
        else:
            address = peer
            headers = [(k, v) for k, v in headers if k not in _PROXY_HEADERS]
        port = client[1] if client and address == peer else 0
        scope = {**scope, "client": (address, port) if address else client, "headers": headers}
        token = CLIENT_ADDRESS.set(address or "?")
        try:
            return await self.app(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(token)


def _origin_allowed(origin: str, host: str | None, allowed: frozenset[str], server_port: int | None) -> bool:
    """Whether a request that a page at `origin` sent to the server called `host` (its Host
    header) comes from this app's own pages: the same name (or another loopback name) and the
    same port; or, on any port and scheme, a name this server is known by that is not a
    loopback name (--allowed-hosts, the bound name): a reverse proxy that rewrites Host (nginx's
    default, "127.0.0.1:7860") serves the page at https://rag.example while Host says otherwise.
    Loopback names keep the port rule: a page of another program on this machine (localhost:8000)
    is another site. "*" in --allowed-hosts does not make every site's pages ours; "null" (a
    sandboxed page or a file) is never ours."""
    from urllib.parse import urlsplit

    try:
        o = urlsplit(origin.strip())
        o_port = o.port or {"http": 80, "https": 443}.get(o.scheme)
    except ValueError:
        return False
    if o.scheme not in ("http", "https") or not o.hostname:  # "null": a sandboxed page or a file
        return False
    o_name = o.hostname.lower()
    if o_name in allowed - {ANY_HOST, *LOOPBACK_NAMES}:
        return True
    if host:
        h_name = host_name(host)
        _, colon, tail = host.rpartition(":")
        h_port = int(tail) if colon and tail.isdigit() and not host.endswith("]") else o_port
    else:
        h_name, h_port = None, server_port
    if o_port != h_port:
        return False
    return o_name == h_name or o_name in (allowed - {ANY_HOST})


class OriginGuard:
    """ASGI middleware: a request that can change something (any method but GET, HEAD and
    OPTIONS, and websocket handshakes) which says it comes from a page of another site (its
    Origin header) is refused with 403 before it is read. Browsers send Origin with every such
    request, and a multipart upload or a form post from any page needs no CORS permission: a
    page on evil.example could otherwise make a visitor's browser upload files here or sign in.
    Clients that are not browsers send no Origin and are judged by everything else."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" or (scope["type"] == "http" and scope["method"] not in self.SAFE):
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin")
            host = headers.get(b"host")
            server = scope.get("server") or (None, None)
            if origin is not None and not _origin_allowed(origin.decode("latin-1"),
                                                          host.decode("latin-1") if host else None,
                                                          self.allowed, server[1]):
                shown = origin.decode("latin-1")[:100]
                log.warning("refused a %s to %s from a page of %s", scope.get("method", "websocket"),
                            scope.get("path"), shown)
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await _refuse(send, 403, f"refused: a request from a page of another site ({shown})")
        return await self.app(scope, receive, send)
