"""The Model Context Protocol server: the documents as tools for agents and editors (Claude
Desktop, VS Code, Cursor, Open WebUI's tools), on the official `mcp` SDK.

    rag mcp                    # over stdio, for a desktop agent to start
    rag serve                  # the same tools over streamable HTTP at /mcp, behind --api-key

Four tools, each a translation of one `Toolbox` call (rag.toolbox decides what may be seen and
bounds every argument): `search`, `ask`, `list_collections` and `read_passage`. A library error
becomes a tool error (`isError`, its one-line message for the agent to read), never a crash of
the server. `ask` answers with the text a person reads (the checked answer with [n] markers and
its "Sources:" footer) and the same as structured content. A question about a whole document
or collection ("list all ...", "which files mention ...", "summarise notes.md", or "summarise
this" with `document`) is answered by reading every passage in scope: its text carries the
coverage line (what was read, and a warning when a budget stopped the reading), its structured
content `scope`, `coverage` and `items`.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from .errors import RagError

log = logging.getLogger(__name__)

NAME = "rag-local"
INSTRUCTIONS = ("Private question answering over the user's own documents. Use `ask` for a checked answer "
                "with citations (it says 'Not found in your documents.' when they do not hold the answer); it "
                "also answers questions about a whole document or collection ('list all ...', 'which files "
                "mention ...', 'summarise notes.md', or 'summarise this' with `document` naming one) by "
                "reading every passage, and says what it read. Use `search` for the passages themselves, `read_passage` to read a cited passage in context "
                "and `list_collections` to see which document sets exist.")

Collection = Annotated[str | None, Field(description="the collection to use (list_collections names them); "
                                                     "default: the server's", max_length=64)]
Source = Annotated[str | None, Field(description="only documents whose path starts with this", max_length=1024)]
Document = Annotated[str | None, Field(description="the document the question is about: its indexed path as search "
                                                   "returns it (or a folder: the documents under it); 'summarise "
                                                   "this' or 'list all ...' then reads all of it", max_length=1024)]


def create_server(toolbox, *, admit=None):
    """An `MCPServer` whose tools call `toolbox` (a rag.toolbox.Toolbox) in a worker thread.
    `admit`, when given, is an async context manager factory that `ask` enters before it uses
    the model (rag serve's queue; it raises errors.Busy when full)."""
    server = MCPServer(NAME, instructions=INSTRUCTIONS)

    async def call(fn, *args, **kwargs):
        try:  # the model and the index are blocking work: off the event loop
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        except RagError as e:  # a bad argument, a missing index: the agent reads why
            raise ToolError(str(e)) from None

    @server.tool(structured_output=True,
                 description="Search the documents: the passages closest to the query, each with its "
                             "source file, location (page, slide, sheet), heading, score and chunk_id.")
    async def search(query: Annotated[str, Field(description="what to look for", max_length=2000)],
                     collection: Collection = None,
                     top_k: Annotated[int, Field(description="how many passages", ge=1, le=20)] = 5,
                     source: Source = None) -> dict[str, Any]:
        return await call(toolbox.search, query, collection=collection, top_k=top_k, source=source)

    @server.tool(description="Ask a question: a checked answer from the documents with numbered citations and a "
                             "Sources list, or 'Not found in your documents.' with the reason. A question about a "
                             "whole document or collection ('list all ...', 'which files mention ...', 'summarise "
                             "this' with document) reads every passage in scope and says what it read "
                             "(coverage).")
    async def ask(question: Annotated[str, Field(description="the question", max_length=2000)],
                  collection: Collection = None,
                  top_k: Annotated[int | None, Field(description="passages to read", ge=1, le=20)] = None,
                  source: Source = None, document: Document = None) -> CallToolResult:
        if admit is None:
            result = await call(toolbox.ask, question, collection=collection, top_k=top_k, source=source,
                                document=document)
        else:
            try:
                async with admit():  # the model's queue, shared with the OpenAI routes
                    result = await call(toolbox.ask, question, collection=collection, top_k=top_k,
                                        source=source, document=document)
            except RagError as e:  # Busy: the agent reads that it may retry
                raise ToolError(str(e)) from None
        return CallToolResult(content=[TextContent(type="text", text=result["text"])], structured_content=result)

    @server.tool(structured_output=True,
                 description="List the document collections this server can answer from, with their "
                             "numbers of documents and chunks.")
    async def list_collections() -> dict[str, Any]:
        return {"collections": await call(toolbox.list_collections)}

    @server.tool(structured_output=True,
                 description="Read a passage (a chunk_id from search or a citation of ask) with the text "
                             "around it in its document.")
    async def read_passage(chunk_id: Annotated[str, Field(description="e.g. notes/report.pdf#12",
                                                          max_length=1024)],
                           collection: Collection = None) -> dict[str, Any]:
        return await call(toolbox.read_passage, chunk_id, collection=collection)

    return server


def run_stdio(toolbox) -> int:
    """Serve the tools over stdin/stdout until the client closes them. Nothing but the protocol
    may reach stdout: logging goes to stderr."""
    server = create_server(toolbox)
    server.run("stdio")
    return 0


def http_app(server, *, max_body: int):
    """The streamable HTTP endpoint of `server` as an ASGI app answering at /mcp, stateless and
    in JSON (one request, one reply: nothing held open between calls). Its own DNS-rebinding
    check is off because rag serve's HostGuard checks the Host of every route, /mcp included."""
    from mcp.server.transport_security import TransportSecuritySettings

    return server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True,
                                      max_request_body_size=max_body,
                                      transport_security=TransportSecuritySettings(
                                          enable_dns_rebinding_protection=False))

