"""The HTTP routes of `rag serve`: OpenAI's protocol over `RAG`, which does all the work.

An answer comes back as a chat completion whose `choices[0].message.content` is the checked
answer with its [n] markers numbered 1..k in reading order and, unless the request or the server
turns it off (`"sources": false`, `api_sources`), a "Sources:" footer naming each source
(rag/present.py): clients that show only the text (`llm`, LangChain, chat front ends) still show
where the answer comes from. The extra field `rag` holds what those clients ignore and ours read:
citations under the same numbers, per-sentence support, `abstained` and `abstain_code`.

A question about a whole document or collection ("list all ...", "which files mention ...",
"summarise notes.md", or "summarise this" with the request's `"document"` naming one) is answered
by reading every chunk in scope (rag.survey): the content carries the coverage line ("Read 12
of 12 chunks of notes.md.", with a warning when a budget stopped the reading) between the
answer and its sources, and `rag` carries `scope`, `coverage` and `items`. A
streamed answer streams the checked answer only, once the checks are done (`RAG.stream` without
drafts): a client shows no sentence the checks would remove, and the text comes once, never a
draft and then a correction; the final chunk's `rag` field holds the rest.

What the server cannot honour (`tools`, `response_format` other than text, `logprobs`, `n` > 1)
is refused with a 400 naming the parameter (rag.serve.requests), never silently ignored.

One generation runs at a time (the model is one); requests wait in a bounded queue (429 when it
is full) for at most `timeout` seconds. Each request runs in a worker thread of its own, which
stops at the next token when the client goes away, so a closed connection frees the model.
Embeddings have a queue of their own of the same size and run one batch at a time in one
thread, so they neither wait behind answers nor pile up beside them.

Hostile clients: the app answers only the Host names it is known by (DNS rebinding), counts a
client by the connecting address (X-Forwarded-For only from proxies the operator names, which
uvicorn applies before the app sees the request), reads a body only when it says it is JSON
(a cross-site page cannot send that without a CORS preflight, which this server never grants),
of at most `max_body` bytes, with finite numbers and at most MAX_DEPTH levels of nesting.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

# what one request may ask for: `rag serve`'s numbers, kept beside the chat's in rag.bounds
from ..bounds import API_MAX_BODY as MAX_BODY
from ..bounds import API_MAX_EMBED_CHARS as MAX_EMBED_CHARS, API_MAX_EMBED_INPUTS as MAX_EMBED_INPUTS
from ..errors import Busy, RagError
from ..hosts import HostGuard, allowed_hosts
from ..errors import QueryError
from ..present import Numbered, coverage_line, footer, numbered
from ..prompts import TEMPLATE_NAMES
from ..toolbox import indexed_document, survey_fields
from ..types import Answer
from .errors import APIError, from_rag_error
from .requests import MODEL, ChatRequest, parse_body, parse_chat

log = logging.getLogger(__name__)


@dataclass
class Limits:
    api_key: str = ""
    max_queue: int = 16  # requests waiting for the model; more get 429 (embeddings: as many again)
    per_client: int = 0  # requests one client address may have waiting or running; 0: max_queue
    timeout: float = 300.0  # seconds a request may wait for and use the model
    max_body: int = MAX_BODY
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback and the bound one; "*": any
    trusted_proxies: tuple = ()  # ip networks whose X-Forwarded-For names the client


class Gate:
    """One request at a time on `what`, at most `max_queue` waiting, each for `timeout` s, and at
    most `per_client` (0: no cap of its own) waiting or running for any one client address."""

    def __init__(self, max_queue: int, timeout: float, *, per_client: int = 0, what: str = "the model") -> None:
        self.max_queue, self.timeout, self.what = max_queue, timeout, what
        self.per_client = per_client
        self.waiting = 0
        self.held: Counter[str] = Counter()  # requests waiting or running, per client address
        self.mean_s = 5.0  # a running mean of how long one request holds `what`, for Retry-After
        self._since = 0.0
        self._sem: asyncio.Semaphore | None = None

    def retry_after(self, ahead: int) -> int:
        """Seconds until `ahead` requests are likely done (1 to 60: the openai client waits at most 60)."""
        return max(1, min(60, math.ceil(self.mean_s * max(ahead, 1))))

    async def enter(self, client: str) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(1)
        if self.waiting >= self.max_queue:
            raise APIError(429, f"busy: the queue for {self.what} is full ({self.waiting} waiting); try again shortly",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(self.retry_after(self.waiting))})
        if self.per_client and self.held[client] >= self.per_client:
            raise APIError(429, f"busy: this client already has {self.per_client} of {self.per_client} requests "
                                f"waiting for or using {self.what}; try again when one is answered",
                           type="rate_limit_error", code="client_queue_full",
                           headers={"Retry-After": str(self.retry_after(self.held[client]))})
        self.waiting += 1
        self.held[client] += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), self.timeout)
        except asyncio.TimeoutError:
            self._drop(client)
            raise APIError(503, f"busy: waited {self.timeout:g}s for {self.what}; try again", type="server_error",
                           code="queue_timeout", headers={"Retry-After": str(self.retry_after(1))}) from None
        except BaseException:  # the client went away while waiting
            self._drop(client)
            raise
        finally:
            self.waiting -= 1
        self._since = time.monotonic()

    def leave(self, client: str) -> None:
        self.mean_s = 0.8 * self.mean_s + 0.2 * (time.monotonic() - self._since)
        self._sem.release()
        self._drop(client)

    def _drop(self, client: str) -> None:
        self.held[client] -= 1
        if self.held[client] <= 0:
            del self.held[client]


def _key_ok(headers, api_key: str, key_digest: bytes) -> bool:
    """Whether `headers` carry `Authorization: Bearer <api_key>` (anything passes without a key)."""
    if not api_key:
        return True
    # the scheme is case-insensitive (RFC 9110); digests make the comparison take the same
    # time whatever the given key's length
    scheme, _, given = headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and \
        hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), key_digest)


class MCPRoute:
    """Hands /mcp to the MCP endpoint (an ASGI app of its own, rag.mcp_server.http_app) once the
    API key is checked, and every other path to the OpenAI routes."""

    def __init__(self, app, *, mcp, key_ok) -> None:
        self.app, self.mcp, self.key_ok = app, mcp, key_ok

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != "/mcp":
            return await self.app(scope, receive, send)
        if not self.key_ok(Headers(scope=scope)):
            e = APIError(401, "missing or wrong API key (send Authorization: Bearer <key>)", code="invalid_api_key")
            return await JSONResponse(e.body(), status_code=401)(scope, receive, send)
        await self.mcp({**scope, "path": "/mcp"}, receive, send)


def _soon(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    """Run fn(*args) in `loop` from another thread, unless the server has stopped meanwhile."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nothing is left to release
        pass


def client_of(request: Request) -> str:
    """The address a per-client cap counts: the connecting peer, which uvicorn replaces with
    X-Forwarded-For's client only when the peer is a proxy the operator named."""
    return request.client.host if request.client else ""


def create_app(rag, limits: Limits | None = None, *, host: str = "127.0.0.1", toolbox=None):
    """The FastAPI app serving `rag`, bound to `host` (the Host names it answers follow from it);
    with `toolbox` (rag.toolbox.Toolbox), its MCP tools too, at /mcp behind the same API key."""
    limits = limits or Limits()
    gate = Gate(limits.max_queue, limits.timeout, per_client=limits.per_client)
    # its own queue and one thread: a batch never waits behind an answer, at most one batch runs
    # beside it, and the batches' tensors are allocated in one thread's memory arena, reused
    embed_gate = Gate(limits.max_queue, limits.timeout, per_client=limits.per_client, what="the embedder")
    embed_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embeddings")
    mcp_app = lifespan = None
    if toolbox is not None:
        from ..mcp_server import create_server, http_app

        @contextlib.asynccontextmanager
        async def admit():
            """An MCP `ask` takes its turn for the model in the same queue as the OpenAI routes."""
            try:
                await gate.enter("mcp")
            except APIError as e:  # full, or waited --timeout seconds
                raise Busy(e.message) from None
            try:
                yield
            finally:  # (the tool's thread is waited for, not abandoned: the model is free here)
                gate.leave("mcp")

        mcp_server = create_server(toolbox, admit=admit)
        mcp_app = http_app(mcp_server, max_body=limits.max_body)

        @contextlib.asynccontextmanager
        async def lifespan(_app):
            async with mcp_server.session_manager.run():  # the MCP endpoint's task group
                yield

    app = FastAPI(title="rag-local", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    key_digest = hashlib.sha256(limits.api_key.encode()).digest()
    if mcp_app is not None:
        app.add_middleware(MCPRoute, mcp=mcp_app, key_ok=lambda headers: _key_ok(headers, limits.api_key, key_digest))
    app.add_middleware(HostGuard, allowed=allowed_hosts(host, limits.allowed_hosts))  # outermost: every route

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):  # unknown route, wrong method
        where = f"{request.method} {request.url.path[:200]}"
        message = {404: f"Invalid URL ({where}): this server has /v1/chat/completions, /v1/embeddings, "
                        "/v1/models, /mcp and /health",
                   405: f"Method not allowed ({where})"}.get(e.status_code, str(e.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return JSONResponse(APIError(e.status_code, message, code=code).body(), status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request, e: Exception):  # a bug: the log has the traceback, the client a line
        log.exception("unexpected error serving %s", request.url.path)
        return JSONResponse(APIError(500, f"unexpected {type(e).__name__}; see the server log",
                                     type="server_error").body(), status_code=500)

    def key_ok(request: Request) -> bool:
        return _key_ok(request.headers, limits.api_key, key_digest)

    def check_key(request: Request) -> None:
        if not key_ok(request):
            raise APIError(401, "missing or wrong API key (send Authorization: Bearer <key>)",
                           type="invalid_request_error", code="invalid_api_key")

    async def read_json(request: Request) -> dict:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise APIError(415, f"send the body as JSON with Content-Type: application/json (got "
                                f"{media or 'none'!r})", code="unsupported_media_type")
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > limits.max_body:
            raise APIError(413, f"request body over {limits.max_body} bytes", code="request_too_large")
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > limits.max_body:
                raise APIError(413, f"request body over {limits.max_body} bytes", code="request_too_large")
        data = parse_body(body)
        if not isinstance(data, dict):
            raise APIError(400, "the request body must be a JSON object")
        return data

    @app.get("/health")
    async def health(request: Request):
        if not key_ok(request):  # up or not, for a monitor; what is served, only for key holders
            return {"status": "ok"}
        try:
            store = await asyncio.to_thread(lambda: rag.store)
        except RagError as e:
            raise from_rag_error(e) from None
        return {"status": "ok", "index": store.version, "chunks": len(store), "model": rag.generator.name}

    model_ids = [MODEL] + [f"{MODEL}:{t}" for t in TEMPLATE_NAMES]
    started = int(time.time())

    def model_card(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": started, "owned_by": "rag-local"}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        return {"object": "list", "data": [model_card(i) for i in model_ids]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request):
        check_key(request)
        if model_id not in model_ids:
            raise APIError(404, f"model {model_id[:80]!r} does not exist; this server answers as "
                                f"{', '.join(model_ids)}", param="model", code="model_not_found")
        return model_card(model_id)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        check_key(request)
        data = await read_json(request)
        texts = data.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise APIError(400, "input must be a non-empty string or list of non-empty strings", param="input")
        if len(texts) > MAX_EMBED_INPUTS or any(len(t) > MAX_EMBED_CHARS for t in texts):
            raise APIError(400, f"at most {MAX_EMBED_INPUTS} inputs of at most {MAX_EMBED_CHARS} characters",
                           param="input")
        client = client_of(request)
        await embed_gate.enter(client)
        loop = asyncio.get_running_loop()
        work = embed_pool.submit(rag.embedder.embed, texts)
        # a batch under way runs to its end even if its client leaves: the gate opens when the
        # thread is free again, not when the request stops waiting
        work.add_done_callback(lambda _: _soon(loop, embed_gate.leave, client))
        try:
            vecs = await asyncio.wrap_future(work)
        except RagError as e:
            raise from_rag_error(e) from None
        n_tokens = sum(len(t.split()) for t in texts)
        return {"object": "list", "model": rag.embedder.name,
                "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                         for i, v in enumerate(vecs)],
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        check_key(request)
        req = parse_chat(await read_json(request), n_ctx=rag.settings.n_ctx)
        if req.sources is None:
            req.sources = rag.settings.api_sources
        if req.document is not None:  # checked before it takes a place in the queue
            try:
                req.document = await asyncio.to_thread(indexed_document, rag, req.document)
            except QueryError as e:
                raise APIError(400, str(e), param="document", code="document_not_found") from None
            except RagError as e:
                raise from_rag_error(e) from None
        client = client_of(request)
        await gate.enter(client)
        run = _Run(rag, req, gate, client)
        if req.stream:
            return StreamingResponse(run.sse(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            answer = await asyncio.wait_for(run.answer(), limits.timeout)
        except asyncio.TimeoutError:
            run.cancel.set()
            raise APIError(504, f"no answer within {limits.timeout:g}s", type="server_error",
                           code="timeout") from None
        return completion(answer, req, run.id)

    return app


# ---------------------------------------------------------------- one answer

class _Run:
    """One request's answer, made in a worker thread of its own: the model's lock is taken and
    released by that thread alone, and it stops at the next token once `cancel` is set."""

    def __init__(self, rag, req: ChatRequest, gate: Gate, client: str) -> None:
        self.rag, self.req, self.gate, self.client = rag, req, gate, client
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.cancel = threading.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._work, daemon=True, name=self.id).start()

    def _put(self, kind: str, value) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))

    def _work(self) -> None:
        r = self.req
        try:
            stream = self.rag.stream(r.question, template=r.template, top_k=r.top_k, history=r.history,
                                     max_tokens=r.max_tokens, temperature=r.temperature, source=r.document)
            pieces = iter(stream)
            for piece in pieces:
                if self.cancel.is_set():
                    pieces.close()  # leaves the model's lock in this thread
                    log.info("%s: client gone, generation stopped", self.id)
                    return
                self._put("piece", piece)
            self._put("answer", stream.answer)
        except Exception as e:  # noqa: BLE001 - handed to the request, which answers with it
            self._put("error", e)
        finally:
            self._loop.call_soon_threadsafe(self.gate.leave, self.client)

    async def _next(self):
        kind, value = await self._queue.get()
        if kind == "error":
            if isinstance(value, RagError):
                raise from_rag_error(value)
            raise value
        return kind, value

    async def answer(self) -> Answer:
        try:
            while True:
                kind, value = await self._next()
                if kind == "answer":
                    return value
        finally:
            self.cancel.set()

    async def sse(self):
        created = int(time.time())

        def chunk(delta: dict, finish=None, **extra) -> str:
            body = {"id": self.id, "object": "chat.completion.chunk", "created": created,
                    "model": self.req.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        try:
            while True:
                try:
                    kind, value = await self._next()
                except APIError as e:  # an SSE stream that has begun carries its error as an event
                    yield f"data: {json.dumps(e.body())}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                except Exception as e:  # noqa: BLE001 - a bug: the log has it, the client one line
                    log.exception("%s: unexpected error while streaming", self.id)
                    body = APIError(500, f"unexpected {type(e).__name__} while answering; see the server log",
                                    type="server_error").body()
                    yield f"data: {json.dumps(body)}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                if kind == "piece":  # the checked text: sent below, renumbered, with its sources
                    continue
                answer: Answer = value
                shown = numbered(answer)
                yield chunk({"content": content(shown, self.req, answer)})
                if self.req.include_usage:  # OpenAI's shape: usage once, in a chunk of its own
                    yield chunk({}, "stop", rag=extension(answer, shown))
                    body = {"id": self.id, "object": "chat.completion.chunk", "created": created,
                            "model": self.req.model, "choices": [], "usage": _usage(answer)}
                    yield f"data: {json.dumps(body)}\n\n"
                else:
                    yield chunk({}, "stop", usage=_usage(answer), rag=extension(answer, shown))
                yield "data: [DONE]\n\n"
                return
        finally:
            self.cancel.set()  # the client went away, or the answer is out: either way, stop


def _usage(answer: Answer) -> dict:
    u = answer.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def content(shown: Numbered, req: ChatRequest, answer: Answer | None = None) -> str:
    """The message text a client shows: the answer with reader numbers, a whole-document
    answer's coverage line (always: a partial list must not pass for a whole one), and its
    sources unless the request or the server turned the footer off. `present.without_footer`
    takes the last two off again when a client sends the text back as history."""
    covered = coverage_line(answer.coverage) if answer is not None else ""
    return shown.text + (f"\n\n{covered}" if covered else "") + (footer(shown.citations) if req.sources else "")


def extension(answer: Answer, shown: Numbered) -> dict:
    """The `rag` field: what makes an answer checkable, under the numbers the content uses
    (`block`: the context block a citation or sentence stood for in the prompt)."""
    citations = [{**c.to_dict(), "block": shown.block_of[c.n]} for c in shown.citations]
    sentences = [{**asdict(s), "flags": list(s.flags), "block": s.passage,
                  "passage": shown.number_of(s.passage) or 0} for s in answer.sentences]
    return {"answer": shown.text, "abstained": answer.abstained, "abstain_code": answer.abstain_code,
            "abstain_reason": answer.abstain_reason, "template": answer.template, "guards": answer.guards,
            "citations": citations, "sentences": sentences,
            "timings": {k: round(v, 4) for k, v in asdict(answer.timings).items()},
            **survey_fields(answer, shown)}


def completion(answer: Answer, req: ChatRequest, id_: str) -> dict:
    shown = numbered(answer)
    return {"id": id_, "object": "chat.completion", "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content(shown, req, answer)},
                         "finish_reason": "stop"}],
            "usage": _usage(answer), "rag": extension(answer, shown)}
