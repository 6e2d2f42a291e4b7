"""`rag serve` as its clients meet it: the real server process (real models, a copy of the
session's index) driven with the official `openai` client, LangChain's `ChatOpenAI`, simonw's
`llm` CLI, curl and raw HTTP."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from rag.serve.errors import APIError
from rag.serve.requests import parse_chat

from conftest import API_KEY as KEY

LORA_DOC = "deep-learning-and-choosing-a-model.txt"


# ---------------------------------------------------------------- requests, without a server

@pytest.mark.parametrize("body, message", [
    ({}, "messages must be a non-empty list"),
    ({"messages": [{"role": "user", "content": 5}]}, "content must be text"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "role of system, user or assistant"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, "last message"),
    ({"messages": [{"role": "user", "content": "q"}], "top_k": -5}, "top_k must be between 1 and 20"),
    ({"messages": [{"role": "user", "content": "q"}], "top_k": 10**9}, "top_k must be between 1 and 20"),
    ({"messages": [{"role": "user", "content": "q"}], "max_tokens": "many"}, "max_tokens must be an integer"),
    ({"messages": [{"role": "user", "content": "q"}], "temperature": 9}, "temperature must be between"),
    ({"messages": [{"role": "user", "content": "q"}], "n": 3}, "n must be 1: this server gives one"),
    ({"messages": [{"role": "user", "content": "q"}], "n": 0}, "n must be at least 1"),
    ({"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
     "tools and tool_choice are not supported"),
    ({"messages": [{"role": "user", "content": "q"}], "tool_choice": "required"}, "tools and tool_choice"),
    ({"messages": [{"role": "user", "content": "q"}], "functions": [{"name": "f"}]}, "functions and function_call"),
    ({"messages": [{"role": "user", "content": "q"}], "response_format": {"type": "json_schema"}},
     "response_format 'json_schema' is not supported"),
    ({"messages": [{"role": "user", "content": "q"}], "response_format": "json"}, "response_format 'json'"),
    ({"messages": [{"role": "user", "content": "q"}], "logprobs": True}, "logprobs is not supported"),
    ({"messages": [{"role": "user", "content": "q"}], "top_logprobs": 3}, "top_logprobs is not supported"),
    ({"messages": [{"role": "user", "content": "q"}], "sources": "yes"}, "sources must be a boolean"),
    ({"messages": [{"role": "user", "content": "q"}], "stream_options": {"include_usage": True}},
     "only allowed with stream: true"),
    ({"messages": [{"role": "user", "content": "q"}], "model": "gpt-4"}, "does not exist"),
    ({"messages": [{"role": "user", "content": "q"}], "document": ""}, "document must be a document's path"),
    ({"messages": [{"role": "user", "content": "q"}], "document": ["a.md"]}, "document must be"),
    ({"messages": [{"role": "user", "content": "q"}], "document": "x" * 1025}, "at most 1024 characters"),
])
def test_bad_requests_name_what_is_wrong(body, message):
    with pytest.raises(APIError, match=message) as e:
        parse_chat(body, n_ctx=2048)
    assert e.value.status in (400, 404) and "\n" not in e.value.message


def test_what_clients_send_by_default_is_accepted():
    # the openai SDK, LangChain and llm send these with their defaults: none asks for more
    req = parse_chat({"messages": [{"role": "user", "content": "q"}], "n": 1, "tool_choice": "none", "tools": [],
                      "logprobs": False, "response_format": {"type": "text"}, "stream": True,
                      "stream_options": {"include_usage": True}, "sources": False}, n_ctx=2048)
    assert req.stream and req.include_usage and req.sources is False
    assert parse_chat({"messages": [{"role": "user", "content": "q"}]}, n_ctx=2048).sources is None


def test_history_and_templates_come_from_the_messages():
    req = parse_chat({"model": "rag-local:extract", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "Adapters [1]."},
        {"role": "user", "content": [{"type": "text", "text": "Who made it?"}]}], "top_k": 3}, n_ctx=2048)
    assert req.question == "Who made it?" and req.template == "extract" and req.top_k == 3
    assert [(t.question, t.answer) for t in req.history] == [("What is LoRA?", "Adapters [1].")]
    # an earlier answer sent back with its Sources footer goes into the prompt without it
    req = parse_chat({"messages": [
        {"role": "user", "content": "What is LoRA?"},
        {"role": "assistant", "content": "Adapters [1].\n\nSources:\n[1] notes/lora.md (LoRA)"},
        {"role": "user", "content": "Who made it?"}]}, n_ctx=2048)
    assert req.history[0].answer == "Adapters [1]."


@pytest.mark.parametrize("coverage", [
    dict(scope="summary", document="notes/a b.md", chunks_read=12, chunks_total=12),
    dict(scope="documents", chunks_read=58, chunks_total=58, documents_read=5, documents_found=2),
    dict(scope="list", chunks_read=2000, chunks_total=4100, documents_read=1, documents_found=1, complete=False,
         stopped="the budget of 2,000 chunks"),
])
@pytest.mark.parametrize("sources", [True, False])
def test_an_answer_sent_back_as_history_loses_its_coverage_line_and_sources(coverage, sources):
    from rag.present import numbered
    from rag.serve.app import content
    from rag.serve.requests import ChatRequest
    from rag.types import Answer, Citation, Coverage

    answer = Answer("q", "Summary of x:\n- One [1]\n- Two [2]", scope=coverage["scope"], coverage=Coverage(**coverage),
                    citations=[Citation(1, "a.md", "a.md#0", 1.0, ""), Citation(2, "b.md", "b.md#3", 1.0, "")])
    text = content(numbered(answer), ChatRequest("q", sources=sources), answer)
    assert ("\n\nSources:\n[1] a.md\n[2] b.md" in text) is sources and "chunks" in text
    req = parse_chat({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": text},
                                   {"role": "user", "content": "and then?"}]}, n_ctx=2048)
    assert req.history[0].answer == answer.text


def test_an_answer_that_only_mentions_reading_keeps_its_words():
    text = "Read 3 of 4 chapters first.\n\nRead the rest later."
    req = parse_chat({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": text},
                                   {"role": "user", "content": "and?"}]}, n_ctx=2048)
    assert req.history[0].answer == text


# ---------------------------------------------------------------- the real server

@pytest.fixture(scope="module")
def server(api_server):
    return api_server


@pytest.fixture(scope="module")
def client(server):
    import httpx
    from openai import OpenAI

    return OpenAI(base_url=server + "/v1", api_key=KEY, http_client=httpx.Client(trust_env=False, timeout=600))


@pytest.mark.e2e
def test_answers_come_with_their_citations(client):
    r = client.chat.completions.create(model="rag-local", messages=[{"role": "user", "content": "What is LoRA?"}])
    content = r.choices[0].message.content
    rag = r.model_extra["rag"]
    assert content.strip() and content.startswith(rag["answer"]) and not rag["abstained"]
    assert LORA_DOC in {c["source"] for c in rag["citations"]}
    # numbered 1..n as the reader meets them, each named in the Sources footer of the text
    assert [c["n"] for c in rag["citations"]] == list(range(1, len(rag["citations"]) + 1))
    assert content[len(rag["answer"]):].startswith("\n\nSources:\n")
    for c in rag["citations"]:
        assert c["chunk_id"].startswith(c["source"] + "#") and c["snippet"] and c["score"] > 0 and c["block"] >= 1
        assert f"[{c['n']}]" in rag["answer"] or c["inferred"]
        assert f"\n[{c['n']}] {c['source']}" in content
    assert r.usage.prompt_tokens > 100 and r.usage.completion_tokens > 0
    assert rag["sentences"] and {"text", "support", "verified", "flags"} <= set(rag["sentences"][0])


@pytest.mark.e2e
def test_a_streamed_answer_ends_with_the_checked_one(client):
    stream = client.chat.completions.create(model="rag-local", stream=True,
                                            messages=[{"role": "user", "content": "What are autoencoders used for?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1].model_extra["rag"]
    assert len(chunks) >= 3 and text.strip()
    # only the checked answer is streamed: the client shows exactly it, once, then its sources
    assert text.startswith(final["answer"]) and text.count(final["answer"]) == 1
    assert "\nSources:\n[1] " in text and text.count("Sources:") == 1
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage.completion_tokens > 0


@pytest.mark.e2e
def test_sources_can_be_turned_off_per_request_and_usage_comes_once(client):
    stream = client.chat.completions.create(model="rag-local", stream=True, stream_options={"include_usage": True},
                                            extra_body={"sources": False},
                                            messages=[{"role": "user", "content": "What are autoencoders used for?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Sources:" not in text and text == chunks[-2].model_extra["rag"]["answer"]
    # OpenAI's shape for include_usage: the last chunk has no choices and the usage, no other has it
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.e2e
def test_a_which_files_question_reads_every_document_and_says_so(server, client):
    import httpx

    q = [{"role": "user", "content": "Which files talk about transfer learning?"}]
    r = client.chat.completions.create(model="rag-local", messages=q)
    content, rag = r.choices[0].message.content, r.model_extra["rag"]
    assert rag["scope"] == "documents" and rag["template"] == "survey" and not rag["abstained"]
    cov = rag["coverage"]
    assert cov["complete"] and cov["chunks_read"] == cov["chunks_total"] > 20 and cov["documents_found"] >= 2
    assert {i["source"] for i in rag["items"]} == {c["source"] for c in rag["citations"]}
    assert [i["n"] for i in rag["items"]] == list(range(1, len(rag["items"]) + 1))
    line = (f"Searched {cov['chunks_read']} chunks in {cov['documents_read']} documents; "
            f"the topic is in {cov['documents_found']}.")
    assert rag["coverage_line"] == line
    # the reader's text: the answer, what was read, then the sources
    assert content == rag["answer"] + "\n\n" + line + "\n\nSources:\n" + content.split("\n\nSources:\n")[1]
    streamed = list(client.chat.completions.create(model="rag-local", messages=q, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == content and streamed[-1].model_extra["rag"]["coverage_line"] == line
    # a document named outright: "summarise this" reads it; one not indexed is a 400 naming the param
    r = client.chat.completions.create(model="rag-local", messages=[{"role": "user", "content": "Summarise this"}],
                                       extra_body={"document": "deep-learning-overview.md"})
    assert r.model_extra["rag"]["coverage"]["document"] == "deep-learning-overview.md"
    assert "\n\nRead " in r.choices[0].message.content
    bad = httpx.post(server + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, trust_env=False,
                     json={"messages": q, "document": "deep-learning-overviw.md"}, timeout=60)
    err = bad.json()["error"]
    assert bad.status_code == 400 and err["param"] == "document" and err["type"] == "invalid_request_error"
    assert "did you mean deep-learning-overview.md" in err["message"] and err["code"] == "document_not_found"


@pytest.mark.e2e
def test_an_off_topic_question_abstains(client):
    r = client.chat.completions.create(model="rag-local",
                                       messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    rag = r.model_extra["rag"]
    assert rag["abstained"] and rag["abstain_code"] and rag["citations"] == []
    assert r.choices[0].message.content == "Not found in your documents."


@pytest.mark.e2e
def test_a_follow_up_uses_the_history(client):
    r = client.chat.completions.create(model="rag-local:zero_shot", messages=[
        {"role": "user", "content": "What are transformer networks?"},
        {"role": "assistant", "content": "Networks built on self-attention [1]."},
        {"role": "user", "content": "What are its disadvantages?"}])
    rag = r.model_extra["rag"]
    assert rag["template"] == "zero_shot"
    assert r.choices[0].message.content.strip()


@pytest.mark.e2e
def test_embeddings_and_models(client, real_rag):
    e = client.embeddings.create(model="rag-local", input=["What is LoRA?", "owls"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == real_rag.embedder.dim
    local = real_rag.embedder.embed(["What is LoRA?"])[0]
    assert sum(a * b for a, b in zip(e.data[0].embedding, local)) > 0.999
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "rag-local" and "rag-local:extract" in ids


@pytest.mark.e2e
def test_errors_have_openai_shape_and_status(server, client):
    import httpx
    import openai

    bad = openai.OpenAI(base_url=server + "/v1", api_key="wrong", http_client=httpx.Client(trust_env=False))
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.status_code == 401 and "API key" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="rag-local", messages=[])
    assert e.value.status_code == 400 and "messages" in e.value.body["message"]
    # an oversized body is refused from its Content-Length, before it is read
    import socket

    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {5 << 20}\r\n\r\n{{".encode())
        reply = b""
        while b'"code"' not in reply and (part := sock.recv(65536)):
            reply += part
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and '"code":"request_too_large"' in reply.replace(" ", "")
    # what the server cannot honour is refused by name, never answered as if honoured
    q = [{"role": "user", "content": "q"}]
    with pytest.raises(openai.BadRequestError, match="tools and tool_choice are not supported") as e:
        client.chat.completions.create(model="rag-local", messages=q, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}])
    assert e.value.body["param"] == "tools" and e.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="rag-local", messages=q, n=2)
    with pytest.raises(openai.BadRequestError, match="logprobs is not supported"):
        client.chat.completions.create(model="rag-local", messages=q, logprobs=True)
    assert client.models.retrieve("rag-local:extract").id == "rag-local:extract"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.models.retrieve("gpt-4")
    for method, path, status in (("GET", "/v1/nope", 404), ("DELETE", "/v1/models", 405)):
        r = httpx.request(method, server + path, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False)
        assert r.status_code == status and set(r.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError, match="top_k must be between 1 and 20"):
        client.chat.completions.create(model="rag-local", messages=[{"role": "user", "content": "q"}],
                                       extra_body={"top_k": 10**9})


@pytest.mark.e2e
def test_twenty_concurrent_clients_are_all_answered(client):
    questions = ["What is LoRA?", "What are GANs?", "What is transfer learning?", "What is the capital of Peru?"]
    answers, errors = [], []

    def one(i):
        try:
            r = client.chat.completions.create(model="rag-local", max_tokens=8,
                                               messages=[{"role": "user", "content": questions[i % 4]}])
            answers.append(r.choices[0].message.content)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert errors == [] and len(answers) == 20 and all(a.strip() for a in answers)


@pytest.mark.e2e
def test_a_client_that_disconnects_mid_stream_frees_the_model(server, client):
    import httpx

    body = {"model": "rag-local", "stream": True, "max_tokens": 64,
            "messages": [{"role": "user", "content": "What are autoencoders used for?"}]}
    with httpx.Client(trust_env=False, timeout=120) as h:
        with h.stream("POST", server + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i >= 4:
                    break  # leave mid-answer
    t0 = time.monotonic()
    r = client.chat.completions.create(model="rag-local", max_tokens=4,
                                       messages=[{"role": "user", "content": "What is LoRA?"}])
    assert r.choices[0].message.content.strip()
    assert time.monotonic() - t0 < 60  # not stuck behind the abandoned answer's lock


@pytest.mark.e2e
def test_the_documented_curl_call(server):
    out = subprocess.run(["curl", "-s", "--noproxy", "*", server + "/v1/chat/completions",
                          "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                          "-d", json.dumps({"model": "rag-local",
                                            "messages": [{"role": "user", "content": "What is LoRA?"}]})],
                         capture_output=True, text=True, timeout=300)
    d = json.loads(out.stdout)
    assert d["object"] == "chat.completion" and d["choices"][0]["message"]["content"].strip()
    assert "citations" in d["rag"] and "Sources:" in d["choices"][0]["message"]["content"]


# ---------------------------------------------------------------- clients nobody here wrote

@pytest.mark.e2e
def test_langchain_chat_openai_shows_the_sources_and_is_refused_what_it_cannot_get(server):
    import openai
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    llm = ChatOpenAI(model="rag-local", base_url=server + "/v1", api_key=KEY, timeout=600, max_retries=0)
    text = llm.invoke("What are autoencoders used for?").content
    assert "[1]" in text and "\n\nSources:\n[1] " in text
    streamed = "".join(c.content for c in llm.stream("What are autoencoders used for?"))
    assert streamed == text  # the same checked answer, once, sources included

    class Reply(BaseModel):
        answer: str

    with pytest.raises(openai.BadRequestError, match="response_format 'json_schema' is not supported"):
        llm.with_structured_output(Reply).invoke("What are autoencoders used for?")

    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    with pytest.raises(openai.BadRequestError, match="tools and tool_choice are not supported"):
        llm.bind_tools([double]).invoke("double 2")


@pytest.mark.e2e
def test_llm_cli_prints_the_sources(server, tmp_path):
    """simonw's `llm`, pointed at rag serve through its extra-openai-models.yaml as its docs say."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: rag-local\n  model_name: rag-local\n  api_base: \"{server}/v1\"\n  api_key_name: raglocal\n")
    (tmp_path / "keys.json").write_text(json.dumps({"raglocal": KEY}))
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path), "NO_PROXY": "*"}
    llm = [sys.executable, "-m", "llm"]
    out = subprocess.run([*llm, "-m", "rag-local", "What are autoencoders used for?"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "[1]" in out.stdout and "\nSources:\n[1] " in out.stdout and out.stdout.count("Sources:") == 1
    refused = subprocess.run([*llm, "-m", "rag-local", "-o", "json_object", "1", "Answer in JSON: what is LoRA?"],
                             env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "response_format 'json_object' is not supported" in refused.stderr
