"""The MCP server as agents meet it: the `mcp` SDK's own client over stdio (`rag mcp`, a real
subprocess) and over streamable HTTP (`rag serve`'s /mcp), with the real models and index.
Collections: `team` is everyone's, `alice-notes` alice's own (conftest.served_collections)."""
import json
import os
import sys
import time

import anyio
import pytest

from conftest import ALICE_FACT, API_KEY, ROOT, TEAM_FACT

pytestmark = pytest.mark.e2e
TOOLS = {"search", "ask", "list_collections", "read_passage"}


def stdio(served, *extra: str):
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable, cwd=str(ROOT),
        args=["-m", "rag", "mcp", "--index", str(served.index), "--collections", str(served.collections),
              "--n-ctx", "2048", *extra],
        env={**os.environ, "RAG_MAX_TOKENS": "64"})


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def run(coro_fn):
    return anyio.run(coro_fn)


def test_stdio_tools_answer_with_citations_and_keep_to_the_collections(served_collections):
    from mcp import Client

    async def session():
        t0 = time.monotonic()
        async with Client(stdio(served_collections)) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            started = time.monotonic() - t0
            names = [x["name"] for x in (await c.call_tool("list_collections", {})).structured_content["collections"]]
            asked = await c.call_tool("ask", {"question": "What is the flight time of the Kestrel-9 drone?",
                                              "collection": "team"})
            found = await c.call_tool("search", {"query": "Kestrel-9 flight time", "collection": "team", "top_k": 2})
            chunk_id = found.structured_content["passages"][0]["chunk_id"]
            read = await c.call_tool("read_passage", {"chunk_id": chunk_id, "collection": "team"})
            bad = {
                "outside": await c.call_tool("read_passage", {"chunk_id": "../../../etc/passwd#0"}),
                "path": await c.call_tool("search", {"query": "passwd", "source": "/etc/passwd"}),
                "private": await c.call_tool("search", {"query": "boathouse key", "collection": "alice-notes"}),
                "top_k": await c.call_tool("search", {"query": "x", "top_k": 500}),
                "empty": await c.call_tool("ask", {"question": "   "}),
            }
            after = await c.call_tool("list_collections", {})  # still serving after the refusals
            return tools, started, names, asked, found, read, bad, after

    tools, started, names, asked, found, read, bad, after = run(session)
    assert tools == TOOLS and started < 60  # (the 5 s start is measured in docs/mcp.md, not asserted)
    assert names == ["default", "team"]  # alice's own collection is not anybody's to list
    answer = asked.structured_content
    assert not asked.is_error and not answer["abstained"] and "47 minutes" in answer["answer"]
    assert answer["citations"][0]["source"] == "drones/kestrel.md" and "[1]" in answer["answer"]
    assert "\n\nSources:\n[1] drones/kestrel.md" in text_of(asked)  # what the agent reads
    p = found.structured_content["passages"][0]
    assert p["source"] == "drones/kestrel.md" and p["score"] > 0 and "47 minutes" in p["text"]
    assert read.structured_content["source"] == "drones/kestrel.md" and TEAM_FACT in read.structured_content["passage"]
    for why, r in bad.items():
        assert r.is_error, why
        assert "\n" not in text_of(r).strip() or why == "top_k", (why, text_of(r))
    assert "has no passage" in text_of(bad["outside"]) and "/etc/passwd" in text_of(bad["path"])
    assert "no collection named 'alice-notes'" in text_of(bad["private"])
    assert "the question is empty" in text_of(bad["empty"]) and not after.is_error


def test_stdio_as_a_signed_in_user_sees_their_own_collection(served_collections):
    from mcp import Client

    async def session():
        async with Client(stdio(served_collections, "--user", "alice")) as c:
            names = [x["name"] for x in (await c.call_tool("list_collections", {})).structured_content["collections"]]
            found = await c.call_tool("search", {"query": "boathouse spare key", "collection": "alice-notes"})
            return names, found

    names, found = run(session)
    assert names == ["default", "alice-notes", "team"]
    assert ALICE_FACT in found.structured_content["passages"][0]["text"]


def test_http_tools_behind_the_api_key(api_server):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    url = api_server + "/mcp"

    async def session():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}, trust_env=False, timeout=600)
        async with Client(streamable_http_client(url, http_client=http)) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            asked = await c.call_tool("ask", {"question": "What is the flight time of the Kestrel-9 drone?",
                                              "collection": "team"})
            bad = await c.call_tool("read_passage", {"chunk_id": "/etc/passwd", "collection": "team"})
            private = await c.call_tool("list_collections", {})
            # a whole document, named: read in full, no model needed
            summary = await c.call_tool("ask", {"question": "Summarise this document",
                                                "document": "deep-learning-overview.md"})
            unknown = await c.call_tool("ask", {"question": "Summarise this", "document": "no-such-file.md"})
            return tools, asked, bad, private, summary, unknown

    tools, asked, bad, private, summary, unknown = run(session)
    assert not summary.is_error, text_of(summary)
    s = summary.structured_content
    assert s["scope"] == "summary" and s["coverage"]["document"] == "deep-learning-overview.md"
    assert s["coverage"]["complete"] and s["coverage"]["chunks_read"] == s["coverage"]["chunks_total"] > 1
    assert s["items"] and {i["source"] for i in s["items"]} == {"deep-learning-overview.md"}
    assert f"\n\n{s['coverage_line']}\n\nSources:\n[1] deep-learning-overview.md" in text_of(summary)
    assert s["coverage_line"].startswith("Read ") and s["coverage_line"].endswith(" chunks of deep-learning-overview.md.")
    assert unknown.is_error and "document: no document of collection 'default'" in text_of(unknown)
    assert tools == TOOLS
    assert "47 minutes" in asked.structured_content["answer"]
    assert "Sources:\n[1] drones/kestrel.md" in text_of(asked)
    assert bad.is_error and "has no passage" in text_of(bad)
    assert "alice-notes" not in json.dumps(private.structured_content)
    # without the key: refused before the MCP endpoint reads anything
    import httpx

    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, trust_env=False,
                   headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
