"""`python app.py`: the command line of the chat, and serving its page with every guard in
front of Gradio."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import socket
import sqlite3
import sys

from ..accounts import Accounts, AuthError, hash_password, load_accounts
from ..bounds import CHAT_MAX_TOP_K
from ..config import Settings
from ..errors import RagError
from ..flags import MODEL_SETTINGS, add_flag, add_model_flags, overrides
from ..history import History, default_path
from ..hosts import HostGuard, allowed_hosts, parse_proxies
from ..serve import is_loopback
from ..uploads import MB, UploadLimits
from ..watch import CorpusWatcher
from ..workspace import ChatService
from .guards import ClientAddress, OriginGuard, SignInGuard, UploadGuard, gradio_login
from .queue import limit_queue
from .ui import CSS, SCRIPT, build_ui


def _print_hash_line(user: str | None) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("error: the password is empty", file=sys.stderr)
        return 1
    if user is not None and (not user or any(c.isspace() or c == ":" for c in user)):
        print(f"error: the user name {user!r} is empty or has spaces or colons", file=sys.stderr)
        return 1
    hashed = hash_password(password)
    print(f"{user}:{hashed}" if user is not None else hashed)
    return 0


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="Chat with your documents in the browser.")
    p.add_argument("--host", default=os.environ.get("RAG_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("RAG_PORT", "7860")))
    add_flag(p, "corpus", help="documents folder; uploads are saved here (default: corpus/)")
    p.add_argument("--history", default=str(default_path()),
                   help="SQLite file of the saved conversations and the feedback on answers (default: "
                        "history.db; also RAG_HISTORY)")
    add_model_flags(p)
    add_flag(p, "top_k", help=f"passages retrieved per question, 1 to {CHAT_MAX_TOP_K} (default 4)")
    p.add_argument("--watch", action="store_true",
                   help="index changes to the corpus folders (every collection's) as they happen")
    g = p.add_argument_group("sign-in (off unless one of these is given)")
    g.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                   help="a user who may sign in (repeatable; the password shows in the process list, "
                        "so prefer --auth-file)")
    g.add_argument("--auth-file", metavar="PATH",
                   help="a file of USER:HASH lines (make one with --hash-password USER)")
    g.add_argument("--hash-password", nargs="?", const="", metavar="USER",
                   help="read a password from stdin, print its USER:HASH line for --auth-file and exit")
    g.add_argument("--admins", metavar="NAME[,NAME]", default=os.environ.get("RAG_ADMINS"),
                   help="the users who operate the app: they alone switch the model and take documents "
                        "out of (or delete) the collections nobody owns, such as default; the others ask, "
                        "upload and keep collections of their own (default: the first user given, by "
                        "--auth, else the auth file's first line; without sign-in the one local user; "
                        "also RAG_ADMINS)")
    g = p.add_argument_group("network (who may reach the app, and through what)")
    g.add_argument("--allowed-hosts", metavar="NAME[,NAME]", action="append",
                   default=[h for h in (os.environ.get("RAG_ALLOWED_HOSTS") or "").split(",") if h.strip()],
                   help="names the app answers to besides localhost, 127.0.0.1, ::1 and the --host address "
                        "(with --host 0.0.0.0 also this machine's names and addresses); a request for any "
                        "other Host gets 400 (DNS rebinding), and a browser's change request from a page "
                        "of another site 403. Give the name people type when a proxy or DNS name fronts "
                        "the app; '*' answers any name (also RAG_ALLOWED_HOSTS)")
    g.add_argument("--trusted-proxies", metavar="ADDR[,ADDR]", action="append",
                   default=[h for h in (os.environ.get("RAG_TRUSTED_PROXIES") or "").split(",") if h.strip()],
                   help="addresses or networks (10.0.0.0/8) of reverse proxies whose X-Forwarded-For "
                        "names the client; from anyone else it is ignored, so per-client limits count "
                        "the real connection (default: none; also RAG_TRUSTED_PROXIES)")
    g = p.add_argument_group("limits (0: none; also RAG_MAX_FILE_MB, RAG_MAX_FILES, RAG_MAX_UPLOAD_MB)")
    g.add_argument("--max-file-mb", type=float, default=os.environ.get("RAG_MAX_FILE_MB") or "50",
                   help="largest file one may upload (default 50)")
    g.add_argument("--max-files", type=int, default=os.environ.get("RAG_MAX_FILES") or "20",
                   help="files per upload (default 20)")
    g.add_argument("--max-upload-mb", type=float, default=os.environ.get("RAG_MAX_UPLOAD_MB") or "500",
                   help="MB one user (or address, without sign-in) may add in all while the app runs (default 500)")
    g.add_argument("--queue-size", type=int, default=64, help="requests waiting at most, from all clients (default 64)")
    g.add_argument("--concurrency", type=int, default=int(os.environ.get("RAG_CONCURRENCY", "1")),
                   help="questions worked on at once (retrieval and checks overlap another's generation; "
                        "the model still writes one answer at a time); 1 shows each waiting question its "
                        "place in the queue (default 1; also RAG_CONCURRENCY)")
    g.add_argument("--queue-per-client", type=int, default=4,
                   help="requests one user or address may have waiting or running (default 4)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p.parse_args(argv)


def _can_listen(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            # as the server will: a restart's connections in TIME_WAIT do not make the port busy
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        return True
    except OSError:
        return False


def _check_args(args: argparse.Namespace) -> str:
    """The first thing wrong with the limits, as one line ("" when they are fine)."""
    if args.top_k is not None and not 1 <= args.top_k <= CHAT_MAX_TOP_K:
        return f"--top-k must be from 1 to {CHAT_MAX_TOP_K}"
    if args.concurrency < 1:
        return "--concurrency must be at least 1"
    for flag in ("max_file_mb", "max_files", "max_upload_mb", "queue_size", "queue_per_client"):
        if getattr(args, flag) < 0:
            return f"--{flag.replace('_', '-')} must be 0 (no limit) or more"
    try:
        parse_proxies(args.trusted_proxies or [])
    except ValueError as e:
        return f"--trusted-proxies: {e}"
    return ""


def _operators(args: argparse.Namespace, accounts: "Accounts | None") -> frozenset[str] | None:
    """The users named by --admins (default: the first account); None without sign-in, where
    the one local user operates the app. AuthError for a name that is no account."""
    names = [n.strip() for n in (args.admins or "").split(",") if n.strip()]
    if accounts is None:
        if names:
            raise AuthError("--admins names users who sign in: give --auth or --auth-file too")
        return None
    known = accounts.names()
    for name in names:
        if name not in known:
            raise AuthError(f"--admins: there is no user named {name!r}")
    return frozenset(names or known[:1])


def launch_app(demo, service: ChatService, *, host: str = "127.0.0.1", port: int | None = None,
               accounts: "Accounts | None" = None, allowed: frozenset[str] | None = None,
               trusted: tuple = (), queue_size: int | None = 64, queue_per_client: int = 4,
               theme=None, prevent_thread_lock: bool = False):
    """Serve `demo` (of `build_ui(service)`) with every guard in front of Gradio; what
    `demo.launch` returns. From the outside in: the Host allow-list (`allowed`, by default the
    loopback names and `host`), refusal of a browser's change requests from another site's pages,
    the client's address (the peer, or the client a `trusted` proxy names), sign-in, upload checks
    and the per-client queue. `main` and the tests that serve the app in-process go through here."""
    from starlette.middleware import Middleware

    limits = service.limits
    allowed = allowed if allowed is not None else allowed_hosts(host)
    # uvicorn believes X-Forwarded-For from any peer in FORWARDED_ALLOW_IPS (this machine, by
    # default) and rewrites the client address before any middleware runs; nothing here may
    # trust it: `ClientAddress` reads it, from the proxies the operator names alone
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    # one request body may hold a full upload; a single file may be as large as the whole
    # allowance (files over the per-file limit are refused one by one, the rest of the batch added)
    per_request = limits.files * (limits.file_bytes + 1024) + 64 * 1024 \
        if limits.files and limits.file_bytes else None  # room for the multipart headers
    transport = limits.total_bytes or limits.file_bytes or None
    # the REST routes that skip the queue are closed (api_open=False): every request queues
    demo.queue(default_concurrency_limit=1, max_size=queue_size or None, api_open=False)
    limit_queue(demo, queue_per_client)
    result = demo.launch(
        server_name=host, server_port=port, ssr_mode=False, show_error=False,
        max_file_size=transport, theme=theme, css=CSS, js=SCRIPT, footer_links=["api"],
        auth=gradio_login(accounts) if accounts else None,
        auth_message="Sign in to ask your documents." if accounts else None,
        share=False, mcp_server=False, run_history=False, enable_monitoring=False,
        prevent_thread_lock=True, quiet=prevent_thread_lock,
        app_kwargs={"middleware": [Middleware(OriginGuard, allowed=allowed),
                                   Middleware(ClientAddress, trusted=trusted),
                                   Middleware(SignInGuard),
                                   Middleware(UploadGuard, max_request_bytes=per_request,
                                              allowance=service.allowance)]})
    # the Host check is installed here alone, not in the middleware list above: Gradio puts its
    # CORS and compression layers outside the app's middleware, and its CORS layer answers
    # preflight requests itself, so only a wrap of the whole stack makes sure no request for
    # another name gets any answer but 400
    app = demo.server_app
    app.middleware_stack = HostGuard(app.middleware_stack or app.build_middleware_stack(), allowed)
    if not prevent_thread_lock:
        demo.block_thread()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.hash_password is not None:
        return _print_hash_line(args.hash_password or None)
    try:
        accounts = load_accounts(args.auth, args.auth_file)
        operators = _operators(args, accounts)
    except AuthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if problem := _check_args(args):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        settings = Settings.load(**overrides(args, (*MODEL_SETTINGS, "corpus", "top_k")))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not _can_listen(args.host, args.port):  # say so now, not after loading the models
        print(f"error: cannot listen on {args.host}:{args.port} (in use or not this machine's "
              f"address); choose another with --port or --host", file=sys.stderr)
        return 1
    if accounts is None and not is_loopback(args.host):
        print(f"warning: listening on {args.host}:{args.port} without sign-in: anyone who can reach "
              f"it can read your documents through the chat and add files; use --auth-file "
              f"(see README, Security)", file=sys.stderr, flush=True)
    limits = UploadLimits(file_bytes=int(args.max_file_mb * MB), files=args.max_files,
                          total_bytes=int(args.max_upload_mb * MB))
    history = None
    try:
        history = History(args.history)
    except (OSError, RagError, sqlite3.Error) as e:
        print(f"warning: conversations will not be saved: cannot open {args.history} ({e})", file=sys.stderr)
    if history is not None and history.notice:
        print(f"warning: {history.notice}", file=sys.stderr, flush=True)
    service = ChatService(settings, limits=limits, history=history, operators=operators)
    print("loading the models and the index ...", flush=True)
    problem = service.error or service.warm_up()
    if problem:  # the page still opens and shows it, so it can be read and fixed
        print(f"warning: {problem}", file=sys.stderr, flush=True)
    if args.watch and service.rags is not None:
        CorpusWatcher(service.rags).start()  # a daemon thread: it ends with the app
    demo = build_ui(service, concurrency=args.concurrency)
    import gradio as gr

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: works offline
    allowed = allowed_hosts(args.host, [h for v in args.allowed_hosts or [] for h in v.split(",")])
    try:
        launch_app(demo, service, host=args.host, port=args.port, accounts=accounts, allowed=allowed,
                   trusted=parse_proxies(args.trusted_proxies or []), queue_size=args.queue_size,
                   queue_per_client=args.queue_per_client, theme=theme)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port} ({str(e).split('. ')[0]})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
