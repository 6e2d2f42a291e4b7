"""The HTTP routes of `rag serve`: OpenAI's protocol over `RAG`, which does all the work.

An answer comes back as a chat completion whose `choices[0].message.content` is the checked
answer with its [n] markers; the extra field `rag` holds what standard clients ignore and ours
read: citations, per-sentence support, `abstained` and `abstain_code`. A streamed answer streams
the model's draft as it is generated; when the checks change it, a last content piece says so
and gives the checked answer, which the final chunk's `rag` field holds as well.

One generation runs at a time (the model is one); requests wait in a bounded queue (429 when it
is full) for at most `timeout` seconds. Each request runs in a worker thread of its own, which
stops at the next token when the client goes away, so a closed connection frees the model.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import RagError
from ..prompts import TEMPLATE_NAMES
from ..text import bare_words
from ..types import Answer, Turn
from .errors import APIError, from_rag_error

log = logging.getLogger(__name__)

MODEL = "rag-local"
MAX_BODY = 1 << 20  # bytes of a request
MAX_TOP_K = 20
MAX_MESSAGES = 64
MAX_EMBED_INPUTS = 256
MAX_EMBED_CHARS = 8192


@dataclass
class Limits:
    api_key: str = ""
    max_queue: int = 16  # requests waiting for the model; more get 429
    timeout: float = 300.0  # seconds a request may wait for and use the model
    max_body: int = MAX_BODY


@dataclass
class ChatRequest:
    question: str
    history: list[Turn] = field(default_factory=list)
    template: str = "auto"
    model: str = MODEL
    stream: bool = False
    top_k: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None


class Gate:
    """One request at a time on the model, at most `max_queue` waiting, each for `timeout` s."""

    def __init__(self, max_queue: int, timeout: float) -> None:
        self.max_queue, self.timeout = max_queue, timeout
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None

    async def enter(self) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(1)
        if self.waiting >= self.max_queue:
            raise APIError(429, f"busy: {self.waiting} requests are waiting for the model; try again shortly",
                           type="rate_limit_error", code="queue_full")
        self.waiting += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), self.timeout)
        except asyncio.TimeoutError:
            raise APIError(503, f"busy: waited {self.timeout:g}s for the model; try again", type="server_error",
                           code="queue_timeout") from None
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        self._sem.release()


def create_app(rag, limits: Limits | None = None):
    """The FastAPI app serving `rag`."""
    limits = limits or Limits()
    gate = Gate(limits.max_queue, limits.timeout)
    app = FastAPI(title="rag-local", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(Exception)
    async def _unexpected(request, e: Exception):  # a bug: the log has the traceback, the client a line
        log.exception("unexpected error serving %s", request.url.path)
        return JSONResponse(APIError(500, f"unexpected {type(e).__name__}; see the server log",
                                     type="server_error").body(), status_code=500)

    def check_key(request: Request) -> None:
        if not limits.api_key:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {limits.api_key}".encode()):
            raise APIError(401, "missing or wrong API key (send Authorization: Bearer <key>)",
                           type="invalid_request_error", code="invalid_api_key")

    async def read_json(request: Request) -> dict:
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > limits.max_body:
            raise APIError(413, f"request body over {limits.max_body} bytes", code="request_too_large")
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > limits.max_body:
                raise APIError(413, f"request body over {limits.max_body} bytes", code="request_too_large")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise APIError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise APIError(400, "the request body must be a JSON object")
        return data

    @app.get("/health")
    async def health():
        try:
            store = await asyncio.to_thread(lambda: rag.store)
        except RagError as e:
            raise from_rag_error(e) from None
        return {"status": "ok", "index": store.version, "chunks": len(store), "model": rag.generator.name}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        now = int(time.time())
        ids = [MODEL] + [f"{MODEL}:{t}" for t in TEMPLATE_NAMES]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": now, "owned_by": "rag-local"}
                                           for i in ids]}

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
        try:
            vecs = await asyncio.to_thread(rag.embedder.embed, texts)
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
        await gate.enter()
        run = _Run(rag, req, gate)
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


# ---------------------------------------------------------------- requests

def _text(content) -> str | None:
    """A message's text: a string, or OpenAI's list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        parts = [p.get("text") for p in content if p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts) and parts:
            return "\n".join(parts)
    return None


def parse_chat(data: dict, *, n_ctx: int) -> ChatRequest:
    """A chat-completions body checked field by field; APIError(400) names what is wrong."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise APIError(400, f"at most {MAX_MESSAGES} messages", param="messages")
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise APIError(400, f"messages[{i}] must be an object with a role of system, user or assistant",
                           param=f"messages[{i}]")
        text = _text(m.get("content"))
        if text is None and m["role"] in ("user", "assistant"):
            raise APIError(400, f"messages[{i}].content must be text", param=f"messages[{i}].content")
        if m["role"] in ("user", "assistant"):
            turns.append((m["role"], text))
    if not turns or turns[-1][0] != "user":
        raise APIError(400, "the last message must be the user's question", param="messages")
    history = [Turn(q, a) for (rq, q), (ra, a) in zip(turns, turns[1:]) if rq == "user" and ra == "assistant"]
    model = data.get("model") or MODEL
    if not isinstance(model, str) or not (model == MODEL or model.startswith(MODEL + ":")):
        raise APIError(404, f"model {model!r} does not exist; this server answers as {MODEL!r} or "
                            f"{MODEL}:<template>", param="model", code="model_not_found")
    template = model.partition(":")[2] or "auto"
    if template not in TEMPLATE_NAMES:
        raise APIError(404, f"model {model!r} does not exist: templates are {', '.join(TEMPLATE_NAMES)}",
                       param="model", code="model_not_found")
    req = ChatRequest(question=turns[-1][1], history=history, template=template, model=model)
    req.stream = _field(data, "stream", bool, default=False)
    req.top_k = _field(data, "top_k", int, low=1, high=MAX_TOP_K)
    req.max_tokens = _field(data, "max_completion_tokens", int, low=1, high=n_ctx // 2) or \
        _field(data, "max_tokens", int, low=1, high=n_ctx // 2)
    req.temperature = _field(data, "temperature", float, low=0.0, high=2.0)
    if _field(data, "n", int, low=1, high=1, default=1) != 1:
        raise APIError(400, "n must be 1", param="n")
    return req


def _field(data: dict, name: str, kind, *, low=None, high=None, default=None):
    value = data.get(name)
    if value is None:
        return default
    ok = isinstance(value, bool) if kind is bool else \
        isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
    if not ok:
        raise APIError(400, f"{name} must be {'a boolean' if kind is bool else 'an integer' if kind is int else 'a number'}",
                       param=name)
    value = kind(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise APIError(400, f"{name} must be between {low} and {high}, got {value}", param=name)
    return value


# ---------------------------------------------------------------- one answer

class _Run:
    """One request's answer, made in a worker thread of its own: the model's lock is taken and
    released by that thread alone, and it stops at the next token once `cancel` is set."""

    def __init__(self, rag, req: ChatRequest, gate: Gate) -> None:
        self.rag, self.req, self.gate = rag, req, gate
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
                                     max_tokens=r.max_tokens, temperature=r.temperature)
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
            self._loop.call_soon_threadsafe(self.gate.leave)

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
        draft: list[str] = []
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
                if kind == "piece":
                    draft.append(value)
                    yield chunk({"content": value})
                    continue
                answer: Answer = value
                if bare_words("".join(draft)) != bare_words(answer.text):
                    note = (f"\n\n({answer.abstain_reason}) {answer.text}" if answer.abstained else
                            f"\n\nChecked against your documents: {answer.text}")
                    yield chunk({"content": note})
                yield chunk({}, "stop", usage=_usage(answer), rag=extension(answer))
                yield "data: [DONE]\n\n"
                return
        finally:
            self.cancel.set()  # the client went away, or the answer is out: either way, stop


def _usage(answer: Answer) -> dict:
    u = answer.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def extension(answer: Answer) -> dict:
    """The `rag` field: what makes an answer checkable."""
    citations = [c.to_dict() for c in answer.citations]
    return {"answer": answer.text, "abstained": answer.abstained, "abstain_code": answer.abstain_code,
            "abstain_reason": answer.abstain_reason, "template": answer.template, "guards": answer.guards,
            "citations": citations,
            "sentences": [{**asdict(s), "flags": list(s.flags)} for s in answer.sentences],
            "timings": {k: round(v, 4) for k, v in asdict(answer.timings).items()}}


def completion(answer: Answer, req: ChatRequest, id_: str) -> dict:
    return {"id": id_, "object": "chat.completion", "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": "stop"}],
            "usage": _usage(answer), "rag": extension(answer)}
