"""Answers from an LLM server: the real llama.cpp server (llama-cpp-python's) with the default
GGUF, and, for the failures a real server rarely shows on demand, a small scripted HTTP peer."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag import RAG
from rag.config import default_llm_path
from rag.prompts import ABSTAIN_TEXT, Message
from rag.generators.server import ServerError, ServerGenerator
from rag.text import normalise
from rag.types import DraftText

from conftest import _NO_PROXY, _free_port


# ---------------------------------------------------------------- a scripted peer, for failures

class _Peer(BaseHTTPRequestHandler):
    """Answers as `self.server.script` says: a status, a body, or a stream of SSE lines."""

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        script = self.server.script
        self.server.requests.append((self.path, None))
        if self.path.endswith("/v1/models"):
            if script.get("key") and self.headers.get("Authorization") != f"Bearer {script['key']}":
                return self._send(401, {"error": {"message": "invalid api key"}})
            if script.get("slow_models"):  # widens the window in which two first questions meet
                time.sleep(script["slow_models"])
            return self._send(200, {"data": [{"id": m} for m in script.get("models", ["tiny"])]})
        self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        script = self.server.script
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"detail": "Not Found"})
        if script.get("sleep"):
            time.sleep(script["sleep"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for line in script["stream"]:
            self.wfile.write(line.encode() + b"\n\n")
            self.wfile.flush()


def _delta(text, finish=None):
    return "data: " + json.dumps({"choices": [{"delta": {"content": text}, "finish_reason": finish}]})


@pytest.fixture
def peer():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    server.script, server.requests = {}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _gen(server, **kw):
    return ServerGenerator(f"http://127.0.0.1:{server.server_address[1]}/v1", **kw)


MESSAGES = [Message("user", "What is LoRA?")]


def test_a_stream_is_read_piece_by_piece_with_options_passed_through(peer):
    peer.script = {"stream": [_delta("LoRA "), _delta("trains adapters [1]."), _delta("", "stop"),
                              "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4,
                                                                              "prompt_tokens_details": {"cached_tokens": 5}}}),
                              "data: [DONE]"]}
    gen = _gen(peer, seed=7)
    items = list(gen.stream(MESSAGES, max_tokens=32, temperature=0.0, stop=("\nQuestion:",)))
    *pieces, result = items
    assert pieces == ["LoRA ", "trains adapters [1]."]
    assert (result.text, result.prompt_tokens, result.completion_tokens, result.cached_tokens) == \
        ("LoRA trains adapters [1].", 9, 4, 5)
    _, body = peer.requests[-1]
    assert body["model"] == "tiny" and body["max_tokens"] == 32 and body["seed"] == 7
    assert body["stop"] == ["\nQuestion:"] and body["stream"] and body["cache_prompt"]
    assert not gen.supports_grammar  # a plain OpenAI server
    with pytest.raises(Exception, match="takes no grammar"):
        list(gen.stream(MESSAGES, grammar='root ::= "x"'))


def test_stop_when_closes_the_stream_and_keeps_the_answer_it_cut(peer):
    from rag.stopping import EarlyStop

    peer.script = {"stream": [_delta("LoRA trains adapters [1]. "), _delta("It saves memory [1]. "),
                              _delta("It also "), _delta("loops forever"), _delta("", "length"), "data: [DONE]"]}
    items = list(_gen(peer).stream(MESSAGES, max_tokens=32, stop_when=EarlyStop({"sentences"}, max_sentences=2)))
    *pieces, result = items
    assert pieces[-1] == "It also "  # nothing read past the stop
    assert (result.text, result.finish_reason, result.stopped_by) == \
        ("LoRA trains adapters [1]. It saves memory [1].", "stop", "sentences")
    assert result.completion_tokens == 3  # pieces stand for tokens: no usage comes after a disconnect


@pytest.mark.parametrize("script, kw, message", [
    ({"key": "right"}, {"api_key": "wrong"}, "refused the API key \\(401\\)"),
    ({"models": ["a", "b"]}, {"model": "c"}, "does not serve model 'c'; it serves 'a', 'b'"),
    ({"stream": [_delta("LoRA is"), "data: {not json"]}, {}, "malformed event"),
    ({"stream": [_delta("LoRA is")]}, {}, "ended its stream without finishing"),
    ({"stream": ["data: " + json.dumps({"error": {"message": "out of memory"}})]}, {}, "failed mid-answer: out of memory"),
    ({"sleep": 2, "stream": [_delta("x", "stop")]}, {"timeout": 0.5}, "did not answer within 0.5s"),
])
def test_failures_are_one_line(peer, script, kw, message):
    peer.script = script
    with pytest.raises(ServerError, match=message) as e:
        list(_gen(peer, **kw).stream(MESSAGES))
    assert "\n" not in str(e.value)


def test_a_server_that_is_down_is_one_line(tmp_path):
    gen = ServerGenerator(f"http://127.0.0.1:{_free_port()}/v1")
    with pytest.raises(ServerError, match="cannot reach the LLM server .* connection refused"):
        gen.warm_up()


def test_first_questions_at_once_share_one_discovery(peer):
    peer.script = {"slow_models": 0.3, "stream": [_delta("ok", "stop"), "data: [DONE]"]}
    gen = _gen(peer)
    results, errors = [], []

    def one():
        try:
            results.append(list(gen.stream(MESSAGES))[-1].text)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and results == ["ok"] * 6
    # one discovery: a second one would have closed the client the first was answering through
    assert [path for path, _ in peer.requests].count("/v1/models") == 1


def test_token_counts_without_a_tokenizer_are_safe_estimates(peer):
    gen = _gen(peer)
    text = "word " * 300
    n = gen.count_tokens([Message("system", text), Message("user", "hi")])
    assert n > 1500 / 3  # one token per three characters at least, plus the margin


# ---------------------------------------------------------------- the real llama.cpp server

def _start_server(port, *extra):
    import tempfile

    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", default_llm_path(), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 2),
           # by default this server cuts a running answer off when any other request arrives
           # (a token count for the next question, say); several users need it not to
           "--interrupt_requests", "False", *extra]
    log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)  # a pipe would fill up
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {open(log.name).read()[-2000:]}")
        try:
            with _NO_PROXY.open(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("llama_cpp.server did not start")


@pytest.fixture(scope="module")
def over_http(llm_server, real_rag):
    """The session's index and embedder, answering through the server, checked as in-process."""
    rag = RAG(index=real_rag.settings.index, llm_url=llm_server, guards="small", n_ctx=2048)
    rag._embedder = real_rag.embedder
    return rag


QUESTIONS = ["What is LoRA?", "Who initially made PyTorch?", "What are autoencoders used for?",
             "What is the capital of Peru?"]


@pytest.mark.e2e
def test_answers_over_http_match_in_process_answers(over_http, real_rag):
    for q in QUESTIONS:
        # one template named for both: under auto a server's model, of unknown size, writes
        # (few_shot) where the in-process 135M quotes (extract)
        remote, local = over_http.ask(q, template="few_shot"), real_rag.ask(q, template="few_shot")
        # the same GGUF, chat template, prompt and greedy sampling: the same answer
        assert remote.text == local.text, q
        assert remote.abstained == local.abstained
        assert [c.chunk_id for c in remote.citations] == [c.chunk_id for c in local.citations]
        assert remote.guards == "small" and remote.usage.completion_tokens > 0 or remote.abstained


@pytest.mark.e2e
def test_answers_stream_over_http(over_http):
    stream = over_http.stream("What are transformer networks?", drafts=True)
    pieces = list(stream)
    drafts = [p for p in pieces if isinstance(p, DraftText)]
    # the draft arrives token by token as the server sends it; the checked answer after it
    assert len(drafts) > 3 and "".join(pieces[len(drafts):]) == stream.answer.text
    assert stream.answer.timings.prefill > 0


@pytest.mark.e2e
def test_extract_template_over_http_copies_a_span(over_http):
    rag = RAG(index=over_http.settings.index, llm_url=over_http.settings.llm_url, guards="off", n_ctx=2048)
    rag._embedder = over_http.embedder
    answer = rag.ask("Which company mostly made TensorFlow?", template="extract")
    assert rag.generator.supports_grammar
    if answer.text != ABSTAIN_TEXT:
        # the sentence the span was copied from, quoted whole, then its marker
        quoted, _, marker = answer.text.rpartition(" [")
        assert marker.rstrip(".").rstrip("]").isdigit()
        assert any(normalise(quoted) in normalise(h.chunk.text) for h in answer.hits)


@pytest.mark.e2e
def test_concurrent_questions_through_one_rag_are_all_answered(over_http):
    rag = RAG(index=over_http.settings.index, llm_url=over_http.settings.llm_url, guards="small",
              n_ctx=2048, max_tokens=24)
    rag._embedder = over_http.embedder
    results, errors = [], []

    def one(q):
        try:
            results.append(rag.ask(q))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(q,)) for q in QUESTIONS * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert errors == [] and len(results) == 8
    assert all(a.text.strip() for a in results)


@pytest.mark.e2e
def test_a_server_stopped_mid_answer_gives_one_line_and_the_next_question_works(over_http):
    port = _free_port()
    proc = _start_server(port)
    rag = RAG(index=over_http.settings.index, llm_url=f"http://127.0.0.1:{port}/v1", guards="small", n_ctx=2048)
    rag._embedder = over_http.embedder
    stream = rag.stream("What are autoencoders used for?", drafts=True)  # the pieces as they arrive
    with pytest.raises(ServerError) as e:
        for i, _ in enumerate(stream):
            if i == 2:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    assert "\n" not in str(e.value) and f"127.0.0.1:{port}" in str(e.value)
    proc = _start_server(port)
    try:
        answer = rag.ask("What is LoRA?")
        assert answer.text.strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
