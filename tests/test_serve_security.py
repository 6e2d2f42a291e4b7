"""`rag serve` against hostile clients (issue 34, findings 7, 8, 13, 14): the real FastAPI app
under the real uvicorn server `rag serve` runs (`make_server`), driven over HTTP with httpx
and the official `openai` client, over stand-in components (rag.testing) so no model loads."""
import dataclasses
import json
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from rag import RAG
from rag.hosts import parse_proxies
from rag.serve import Limits, make_server
from rag.serve.errors import APIError
from rag.serve.requests import MAX_DEPTH, parse_chat
from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator

from conftest import _free_port

pytestmark = pytest.mark.unit

KEY = "k-0123456789"
ANSWER = "Owls hunt at night [1]."
SOURCES = "\n\nSources:\n[1] owls.md (Owls)"
QUESTION = {"model": "rag-local", "messages": [{"role": "user", "content": "When do owls hunt?"}]}
AUTH = {"Authorization": f"Bearer {KEY}"}


class HeldGenerator(ScriptedGenerator):
    """Answers ANSWER every time; while `hold` is set, each generation waits for `release`
    first (a long answer that keeps the model busy), and `started` tells a test it is waiting."""

    def __init__(self) -> None:
        super().__init__([])
        self.hold = False
        self.started = threading.Event()
        self.release = threading.Event()

    def stream(self, messages, **kw):
        self.outputs = [ANSWER]
        if self.hold:
            self.started.set()
            assert self.release.wait(30), "the test never released the held generation"
        yield from super().stream(messages, **kw)


class HeldEmbedder(HashEmbedder):
    """The hashed bag of words; a batch containing "HOLD" waits for `release` (a large batch)."""

    def __init__(self) -> None:
        super().__init__(dim=512)
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def embed(self, texts, *, progress=False):
        if "HOLD" in texts:
            self.threads.add(threading.current_thread().name)
            self.started.set()
            assert self.release.wait(30), "the test never released the held batch"
        return super().embed(texts, progress=progress)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("owls")
    (root / "owls.md").write_text("# Owls\n\nOwls hunt at night and sleep by day.\n")
    store = MemoryStore()
    RAG(embedder=HeldEmbedder(), generator=HeldGenerator(), store=store, corpus=str(root)).index()
    return store


@pytest.fixture
def rag(store):
    return RAG(embedder=HeldEmbedder(), generator=HeldGenerator(), store=store, guards="small",
               checks_off="relevance", min_score=0.05)


@contextmanager
def serving(rag, limits=None, *, host="127.0.0.1", toolbox=None):
    """`rag serve`'s own server (make_server) on a free port, in a thread; yields its URL."""
    server = make_server(rag, host=host, port=_free_port(), limits=limits or Limits(), toolbox=toolbox)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        rag.generator.release.set()
        rag.embedder.release.set()
        server.should_exit = True
        thread.join(10)


def http(**kw) -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30, **kw)


def error_of(r: httpx.Response) -> dict:
    """The body of an error in OpenAI's shape, checked to be exactly that shape."""
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"] and "\n" not in body["error"]["message"]
    return body["error"]


def in_thread(fn, *args, **kw):
    """Run fn in a thread; the returned list gets its result (or the exception it raised)."""
    out = []

    def run():
        try:
            out.append(fn(*args, **kw))
        except Exception as e:  # noqa: BLE001 - handed to the test, which asserts on it
            out.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


# ---------------------------------------------------------------- finding 8: Host (DNS rebinding)

def test_a_foreign_host_is_refused_before_anything_is_read(rag):
    with serving(rag) as url, http() as h:
        port = url.rsplit(":", 1)[1]
        r = h.get(url + "/v1/models", headers={"Host": "evil.example"})
        assert r.status_code == 400 and error_of(r)["code"] == "host_not_allowed"
        r = h.post(url + "/v1/chat/completions", json=QUESTION, headers={"Host": f"evil.example:{port}"})
        assert r.status_code == 400 and error_of(r)["code"] == "host_not_allowed"
        assert rag.generator.calls == []
        for name in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
            r = h.get(url + "/v1/models", headers={"Host": name})
            assert r.status_code == 200, name
        assert h.post(url + "/v1/chat/completions", json=QUESTION).status_code == 200


def test_allowed_hosts_adds_names_and_star_allows_any(rag):
    with serving(rag, Limits(allowed_hosts=("rag.lan",))) as url, http() as h:
        assert h.get(url + "/v1/models", headers={"Host": "rag.lan:8000"}).status_code == 200
        assert h.get(url + "/v1/models", headers={"Host": "evil.example"}).status_code == 400
    with serving(rag, Limits(allowed_hosts=("*",))) as url, http() as h:
        assert h.get(url + "/v1/models", headers={"Host": "evil.example"}).status_code == 200


# ---------------------------------------------------------------- finding 7: the client's address

def test_forwarded_for_from_a_client_is_not_believed(rag):
    """Two requests from loopback claiming other addresses are one client: the second is over
    that client's cap, however different its X-Forwarded-For."""
    server = make_server(rag, limits=Limits(per_client=1))
    assert server.config.proxy_headers is False  # uvicorn's default would believe 127.0.0.1
    rag.generator.hold = True
    with serving(rag, Limits(per_client=1)) as url, http() as h:
        first, out = in_thread(h.post, url + "/v1/chat/completions", json=QUESTION,
                               headers={"X-Forwarded-For": "10.0.0.1"})
        assert rag.generator.started.wait(10)
        r = h.post(url + "/v1/chat/completions", json=QUESTION, headers={"X-Forwarded-For": "10.0.0.2"})
        assert r.status_code == 429 and error_of(r)["code"] == "client_queue_full"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        rag.generator.release.set()
        first.join(10)
        assert out[0].status_code == 200


def test_forwarded_for_is_believed_from_a_named_proxy(rag):
    rag.generator.hold = True
    limits = Limits(per_client=1, trusted_proxies=parse_proxies(["127.0.0.0/8"]))
    with serving(rag, limits) as url, http() as h:
        first, out1 = in_thread(h.post, url + "/v1/chat/completions", json=QUESTION,
                                headers={"X-Forwarded-For": "10.0.0.1"})
        assert rag.generator.started.wait(10)
        second, out2 = in_thread(h.post, url + "/v1/chat/completions", json=QUESTION,
                                 headers={"X-Forwarded-For": "10.0.0.2"})  # another client: it may wait
        r = h.post(url + "/v1/chat/completions", json=QUESTION, headers={"X-Forwarded-For": "10.0.0.1"})
        assert r.status_code == 429 and error_of(r)["code"] == "client_queue_full"
        rag.generator.release.set()
        first.join(10)
        second.join(10)
        assert out1[0].status_code == 200 and out2[0].status_code == 200


# ---------------------------------------------------------------- finding 14: request bodies

def test_a_body_that_is_not_declared_json_is_refused(rag):
    """A cross-site page can POST text/plain without a preflight; such a body is never read."""
    with serving(rag) as url, http() as h:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"Content-Type": ctype} if ctype else {}
            r = h.post(url + "/v1/chat/completions", content=json.dumps(QUESTION), headers=headers)
            assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type", ctype
            r = h.post(url + "/v1/embeddings", content='{"input": "owls"}', headers=headers)
            assert r.status_code == 415, ctype
        assert rag.generator.calls == []
        r = h.post(url + "/v1/chat/completions", content=json.dumps(QUESTION),
                   headers={"Content-Type": "Application/JSON; charset=utf-8"})
        # the answer, then the Sources footer naming the cited document
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == ANSWER + SOURCES


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_are_refused(rag, number):
    body = json.dumps(QUESTION)[:-1] + f', "temperature": {number}}}'
    with serving(rag) as url, http() as h:
        r = h.post(url + "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and error_of(r)["code"] == "invalid_number"
        assert number.lstrip("-") in r.json()["error"]["message"]
    assert rag.generator.calls == []


@pytest.mark.parametrize("field", ["temperature", "max_tokens", "max_completion_tokens", "top_k", "n"])
def test_a_number_of_400_digits_is_a_400_not_a_500(rag, field):
    """float() of such an integer overflows: refused as out of range, in OpenAI's error shape."""
    body = json.dumps(QUESTION)[:-1] + f', "{field}": {"1" * 400}}}'
    with serving(rag) as url, http() as h:
        r = h.post(url + "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        error = error_of(r)
        assert error["param"] == field and error["type"] == "invalid_request_error"
        expected = "n must be 1" if field == "n" else f"{field} must be between"  # (n: any other is refused)
        assert expected in error["message"] and len(error["message"]) < 200
    assert rag.generator.calls == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_parse_chat_refuses_non_finite_numbers_given_directly(value):
    with pytest.raises(APIError, match="temperature must be between") as e:
        parse_chat({**QUESTION, "temperature": value}, n_ctx=2048)
    assert e.value.status == 400 and e.value.param == "temperature"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 10_000, 200_000])
def test_deep_nesting_is_refused(rag, depth):
    deep = "[" * depth + "]" * depth
    body = json.dumps(QUESTION)[:-1] + f', "metadata": {deep}}}'
    with serving(rag) as url, http() as h:
        t0 = time.monotonic()
        r = h.post(url + "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and error_of(r)["code"] == "too_deep"
        assert time.monotonic() - t0 < 5
        ok = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)  # the body object and "metadata" are two levels
        r = h.post(url + "/v1/chat/completions", content=json.dumps(QUESTION)[:-1] + f', "metadata": {ok}}}',
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 200


def test_a_body_over_the_cap_is_refused_even_without_a_length(rag):
    def chunks():  # chunked transfer: no Content-Length to refuse it by
        yield b'{"input": ["'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"]}'
    with serving(rag, Limits(max_body=1 << 20)) as url, http() as h:
        r = h.post(url + "/v1/embeddings", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"
        r = h.post(url + "/v1/embeddings", json={"input": "x" * (2 << 20)})
        assert r.status_code == 413


def test_unknown_routes_answer_in_openai_shape(rag):
    with serving(rag) as url, http() as h:
        r = h.get(url + "/v1/nothing")
        assert r.status_code == 404 and error_of(r)["type"] == "invalid_request_error"
        r = h.get(url + "/v1/chat/completions")
        assert r.status_code == 405 and error_of(r)


# ---------------------------------------------------------------- finding 14: the key and /health

@pytest.mark.parametrize("header", [f"bearer {KEY}", f"BEARER {KEY}", f"Bearer   {KEY}", f"bEaReR {KEY}"])
def test_the_bearer_scheme_in_any_case(rag, header):
    with serving(rag, Limits(api_key=KEY)) as url, http() as h:
        assert h.get(url + "/v1/models", headers={"Authorization": header}).status_code == 200


@pytest.mark.parametrize("header", [None, "", KEY, f"Basic {KEY}", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}",
                                    "Bearer", f"Bearer{KEY}"])
def test_a_wrong_key_or_scheme_is_refused(rag, header):
    with serving(rag, Limits(api_key=KEY)) as url, http() as h:
        r = h.post(url + "/v1/chat/completions", json=QUESTION,
                   headers={"Authorization": header} if header is not None else {})
        assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
        r = h.post(url + "/v1/embeddings", json={"input": "owls"},
                   headers={"Authorization": header} if header is not None else {})
        assert r.status_code == 401
    assert rag.generator.calls == []


def test_health_tells_only_key_holders_what_is_served(rag, store):
    with serving(rag, Limits(api_key=KEY)) as url, http() as h:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = h.get(url + "/health", headers=headers)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
        r = h.get(url + "/health", headers={"Authorization": f"bearer {KEY}"})
        assert r.json() == {"status": "ok", "index": store.live(), "chunks": 1, "model": "scripted"}
    with serving(rag) as url, http() as h:  # no key: anyone who can connect may read it all anyway
        assert h.get(url + "/health").json()["index"] == store.live()


# ---------------------------------------------------------------- finding 13: embeddings

def test_embeddings_wait_in_a_bounded_queue_of_their_own(rag):
    """One batch runs at a time (in one thread), `max_queue` more wait, the next gets 429 with
    Retry-After; a chat meanwhile is answered without waiting for them."""
    emb = rag.embedder
    with serving(rag, Limits(api_key=KEY, max_queue=1)) as url, http(headers=AUTH) as h:
        running, out1 = in_thread(h.post, url + "/v1/embeddings", json={"input": ["HOLD", "owls"]})
        assert emb.started.wait(10)
        # two more: whichever arrives first waits in the queue of one, the other is refused
        second = [in_thread(h.post, url + "/v1/embeddings", json={"input": text})
                  for text in ("owls at night", "owls by day")]
        deadline = time.monotonic() + 10
        while not any(out for _, out in second) and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = [out[0] for _, out in second if out]
        assert len(refused) == 1, refused
        r = refused[0]
        assert r.status_code == 429 and error_of(r)["code"] == "queue_full"
        assert error_of(r)["type"] == "rate_limit_error" and 1 <= int(r.headers["Retry-After"]) <= 60
        assert "embedder" in error_of(r)["message"]
        t0 = time.monotonic()
        chat = h.post(url + "/v1/chat/completions", json=QUESTION)
        assert chat.status_code == 200 and time.monotonic() - t0 < 5 and not out1
        emb.release.set()
        running.join(10)
        for t, _ in second:
            t.join(10)
        assert out1[0].status_code == 200 and len(out1[0].json()["data"]) == 2
        assert sorted(out[0].status_code for _, out in second) == [200, 429]
        assert all(name.startswith("embeddings") for name in emb.threads)
        r = h.post(url + "/v1/embeddings", json={"input": "owls"})
        assert r.status_code == 200  # the queue is empty again


def test_embeddings_need_the_key_and_bounded_input(rag):
    with serving(rag, Limits(api_key=KEY)) as url, http() as h:
        assert h.post(url + "/v1/embeddings", json={"input": "owls"}).status_code == 401
        r = h.post(url + "/v1/embeddings", json={"input": ["owls"] * 257}, headers=AUTH)
        assert r.status_code == 400 and error_of(r)["param"] == "input"
        r = h.post(url + "/v1/embeddings", json={"input": "o" * 8193}, headers=AUTH)
        assert r.status_code == 400 and error_of(r)["param"] == "input"
        r = h.post(url + "/v1/embeddings", json={"input": ["owls"] * 256}, headers=AUTH)
        assert r.status_code == 200 and len(r.json()["data"]) == 256


# ---------------------------------------------------------------- what the openai client shows

def test_the_openai_client_raises_these_errors_with_their_shape(rag):
    import openai

    with serving(rag, Limits(api_key=KEY)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0,
                               http_client=httpx.Client(trust_env=False, timeout=30))
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(**QUESTION, extra_headers={"Content-Type": "text/plain"})
        assert e.value.status_code == 415 and e.value.code == "unsupported_media_type"
        assert e.value.body == {"message": e.value.body["message"], "type": "invalid_request_error",
                                "param": None, "code": "unsupported_media_type"}
        assert "Content-Type: application/json" in str(e.value)
        deep = []
        for _ in range(MAX_DEPTH + 5):
            deep = [deep]
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(**QUESTION, extra_body={"metadata": deep})
        assert e.value.status_code == 400 and e.value.code == "too_deep" and e.value.param is None
        foreign = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0,
                                default_headers={"Host": "evil.example"},
                                http_client=httpx.Client(trust_env=False, timeout=30))
        with pytest.raises(openai.BadRequestError) as e:
            foreign.models.list()
        assert e.value.code == "host_not_allowed"
        lower = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0,
                              default_headers={"Authorization": f"bearer {KEY}"},
                              http_client=httpx.Client(trust_env=False, timeout=30))
        assert lower.chat.completions.create(**QUESTION).choices[0].message.content == ANSWER + SOURCES


def test_an_mcp_ask_takes_its_turn_in_the_models_queue(rag, tmp_path):
    """An MCP `ask` waits in the same queue as the OpenAI routes: while the model is held by a
    chat completion, it waits at most --timeout seconds and then says it is busy (a tool error
    the agent may retry), instead of running beside it."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from rag.toolbox import Toolbox

    rag.settings = dataclasses.replace(rag.settings, collections=str(tmp_path / "collections"))
    rag.generator.hold = True
    with serving(rag, Limits(timeout=0.5), toolbox=Toolbox(rag)) as url:
        held = threading.Thread(target=lambda: httpx.post(url + "/v1/chat/completions", json=QUESTION,
                                                          timeout=60, trust_env=False), daemon=True)
        held.start()
        assert rag.generator.started.wait(10)

        async def ask():
            async with Client(streamable_http_client(url + "/mcp", http_client=httpx2.AsyncClient(
                    trust_env=False, timeout=30))) as c:
                return await c.call_tool("ask", {"question": "When do owls hunt?"})

        busy = anyio.run(ask)
        rag.generator.release.set()
        held.join(30)
        assert busy.is_error and "busy: waited 0.5s for the model" in busy.content[0].text
        rag.generator.hold = False
        done = anyio.run(ask)
    assert not done.is_error and done.structured_content["answer"] == ANSWER
