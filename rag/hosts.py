"""Which Host names the web adapters answer, and which clients' proxy headers they believe.

DNS rebinding: a page on evil.example can make the browser resolve that name to 127.0.0.1 and
then read a loopback server's answers as same-origin. The Host header is the one thing that
still says evil.example, so a server answers only the names it is known by (`HostGuard`).
Proxy headers (X-Forwarded-For) are believed only from proxies the operator names: otherwise
any client could claim a new address on each request and escape per-client limits.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Iterable

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"


def host_name(header: str) -> str:
    """The name of a Host header without its port, lower-case ("[::1]:7860" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal
        return header[1:header.find("]")] if "]" in header else header
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a server bound to `bind_host` answers: the loopback names, the bound name, and
    `extra` (names the operator gives; "*" allows any). A server bound to every address
    (0.0.0.0, ::) also answers this machine's host name and its addresses."""
    names = {*LOOPBACK_NAMES, host_name(bind_host)}
    names.update(host_name(h) for h in extra if h.strip())
    if bind_host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname().lower()
        names.update({hostname, socket.getfqdn().lower()})
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(hostname, None))
        except OSError:
            pass
    return frozenset(n for n in names if n)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    if ANY_HOST in allowed:
        return True
    if not header:  # HTTP/1.0 clients send none; they cannot be steered by rebinding
        return True
    name = host_name(header)
    # rebinding needs a name the attacker controls; a bare address was typed or configured by
    # whoever reaches the server (the LAN address of a server bound to 0.0.0.0, say), and the
    # machine's own resolver does not list every interface's address
    return name in allowed or _is_address(name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# OpenAI's error shape (message, type, param, code), which `rag serve`'s clients parse; the chat
# and its browser only need a 400 that says why
HOST_REFUSED = (b'{"error": {"message": "unknown Host header: this server answers only the names it is '
                b'known by (see --allowed-hosts)", "type": "invalid_request_error", "param": null, '
                b'"code": "host_not_allowed"}}')


class HostGuard:
    """ASGI middleware: a request whose Host header names another site gets 400 and is not
    passed on. Websocket handshakes are checked the same way."""

    def __init__(self, app, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
            if not host_allowed(header, self.allowed):
                log.warning("refused a request for host %r (allowed: %s)", header, ", ".join(sorted(self.allowed)))
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = HOST_REFUSED
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def parse_proxies(values: Iterable[str]) -> tuple:
    """Trusted proxy addresses or networks ("10.0.0.0/8", "127.0.0.1"); ValueError on a bad one."""
    nets = []
    for v in values:
        for part in v.split(","):
            if part.strip():
                nets.append(ipaddress.ip_network(part.strip(), strict=False))
    return tuple(nets)


def is_trusted(addr: str | None, trusted: tuple) -> bool:
    """Whether `addr` is one of the `trusted` proxies (networks of `parse_proxies`); a name or
    anything else that is not an IP address never is."""
    try:
        ip = ipaddress.ip_address(addr or "")
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple) -> str:
    """The client's address: the connecting peer, unless the peer is a trusted proxy, in which
    case the nearest address in X-Forwarded-For that is not itself a trusted proxy."""
    peer = peer or ""
    if not trusted or not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
