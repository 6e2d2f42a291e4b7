"""`rag serve`: an OpenAI-compatible API over your documents (see `app` for the routes).

    rag serve --port 8000 --api-key KEY
    curl -s http://127.0.0.1:8000/v1/chat/completions -H "Authorization: Bearer KEY" \\
         -H "Content-Type: application/json" -d '{"model": "rag-local", "messages": [...]}'
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import sys

from ..hosts import ANY_HOST, allowed_hosts
from .app import MODEL, Limits, create_app

__all__ = ["MODEL", "Limits", "create_app", "is_loopback", "make_server", "serve"]
log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is this machine's loopback (the chat uses it too)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def make_server(rag, *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None, toolbox=None):
    """The uvicorn server `serve` runs (tests run the same one in a thread); with `toolbox`, the
    MCP tools at /mcp too."""
    import uvicorn

    limits = limits or Limits()
    proxies = ",".join(str(net) for net in limits.trusted_proxies)
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: a local client could
    # then claim any address per request. It is read only from the proxies the operator names.
    config = uvicorn.Config(create_app(rag, limits, host=host, toolbox=toolbox), host=host, port=port,
                            log_level="warning", access_log=False, proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
    return uvicorn.Server(config)


def serve(rag, *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None, toolbox=None) -> int:
    """Load the models and the index once, then answer on host:port until interrupted."""
    limits = limits or Limits()
    if not is_loopback(host) and not limits.api_key:
        print(f"warning: serving on {host} without an API key: anyone who can reach this address can "
              "read your documents through the API; set --api-key or RAG_API_KEY", file=sys.stderr)
    if not is_loopback(host) and ANY_HOST not in limits.allowed_hosts:
        names = ", ".join(sorted(allowed_hosts(host, limits.allowed_hosts)))
        print(f"answering requests for the host names {names}; clients that reach this server by another "
              "name get 400 (add it with --allowed-hosts)", file=sys.stderr)
    print("loading the models and the index ...", file=sys.stderr, flush=True)
    rag.warm_up()
    server = make_server(rag, host=host, port=port, limits=limits, toolbox=toolbox)
    also = f" and MCP on http://{host}:{port}/mcp" if toolbox else ""
    print(f"serving {MODEL} on http://{host}:{port}/v1{also}", file=sys.stderr, flush=True)
    server.run()
    return 0 if server.started else 1  # it did not start (the port taken): uvicorn logged why
