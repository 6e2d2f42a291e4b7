"""The `rag` command: index documents, ask questions. Errors become one line on stderr."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time

from .config import Settings
from .errors import ConfigError, RagError
from .flags import MODEL_SETTINGS, add_flag, add_model_flags, overrides
from .present import coverage_line, numbered
from .prompts import TEMPLATE_NAMES


def add_collection_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", metavar="NAME",
                   help="a named collection (see `rag collections`) instead of --index")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Private question answering over your documents.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index documents (incremental: only changed files are embedded)")
    p.add_argument("paths", nargs="*", help="files or folders (default: corpus/)")
    p.add_argument("--rebuild", action="store_true", help="rebuild from scratch")
    p.add_argument("--rollback", action="store_true",
                   help="make the newest intact older version live again (after damage)")
    add_flag(p, "chunk_size")
    add_flag(p, "chunk_overlap")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="if another build is writing this index, wait up to SECONDS for it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_collection_arg(p)
    add_model_flags(p)

    p = sub.add_parser("ask", help="answer a question from the indexed documents")
    p.add_argument("question")
    p.add_argument("--source", help="search only documents whose path starts with this")
    p.add_argument("--document", metavar="FILE",
                   help="the document the question is about: its indexed path (or a folder's, or the file "
                        "under the corpus folder); \"Summarise this\" or \"List all ...\" then reads all of it")
    p.add_argument("--template", default="auto", choices=list(TEMPLATE_NAMES),
                   help="prompt template (default auto: chosen per question)")
    add_flag(p, "top_k")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_collection_arg(p)
    add_model_flags(p)

    p = sub.add_parser("serve", help="an OpenAI-compatible API over the indexed documents")
    p.add_argument("--host", default=os.environ.get("RAG_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("RAG_API_KEY", ""),
                   help="require `Authorization: Bearer KEY` (also RAG_API_KEY)")
    p.add_argument("--max-queue", type=int, default=16, help="requests that may wait for the model (429 past it)")
    p.add_argument("--queue-per-client", type=int, default=0, metavar="N",
                   help="requests one client address may have waiting or running (default: --max-queue)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a request may wait and run")
    p.add_argument("--allowed-hosts", default=os.environ.get("RAG_ALLOWED_HOSTS", ""), metavar="NAME[,NAME]",
                   help="Host names to answer besides localhost and --host, e.g. the machine's name on the "
                        "network; '*' for any (also RAG_ALLOWED_HOSTS)")
    p.add_argument("--trusted-proxies", default=os.environ.get("RAG_TRUSTED_PROXIES", ""), metavar="ADDR[,NET]",
                   help="reverse proxies whose X-Forwarded-For names the client (default: none; "
                        "also RAG_TRUSTED_PROXIES)")
    p.add_argument("--no-sources", dest="api_sources", action="store_const", const=False, default=None,
                   help="answer without the \"Sources:\" footer in the message text (citations stay in the "
                        "`rag` field; a request's \"sources\": true brings it back; also RAG_API_SOURCES=0)")
    add_flag(p, "top_k")
    add_collection_arg(p)
    add_model_flags(p)

    p = sub.add_parser("mcp", help="the documents as MCP tools over stdio, for desktop agents and editors")
    p.add_argument("--user", default=None, metavar="NAME",
                   help="act as this signed-in chat user: their own and shared collections too (default: "
                        "everyone's collections only)")
    p.add_argument("--collection", metavar="NAME",
                   help="the collection a tool call without one uses (default: the default collection)")
    add_model_flags(p)

    p = sub.add_parser("collections", help="list, create, share or delete named collections")
    p.add_argument("action", nargs="?", default="list", choices=["list", "create", "share", "unshare", "delete"])
    p.add_argument("name", nargs="?", help="the collection (for create, share, unshare, delete)")
    p.add_argument("--corpus", metavar="DIR", help="create: read documents from DIR instead of its own folder")
    p.add_argument("--owner", default="", help="create: the signed-in user who owns it (default: everyone's)")
    p.add_argument("--json", action="store_true", help="list: print JSON")
    add_model_flags(p)

    p = sub.add_parser("eval", help="evaluate retrieval and answers on a question set, templates side by side")
    p.add_argument("dataset", help="JSONL question set, SQuAD v2 .json file or BEIR folder")
    p.add_argument("--format", choices=["jsonl", "squad", "beir"], help="default: from the name")
    p.add_argument("--templates", default=",".join(TEMPLATE_NAMES),
                   help=f"comma-separated prompt templates (default: {','.join(TEMPLATE_NAMES)})")
    add_flag(p, "top_k", help="passages put into the prompt")
    p.add_argument("--limit", type=int, help="evaluate a fixed, stratified sample of N questions")
    # no argparse choices: an unknown split is one line naming the choices, like other bad values
    p.add_argument("--split", default="all", metavar="dev|test|all",
                   help="the questions marked with this split (tune on dev, report test; default all)")
    p.add_argument("--retrieval-only", action="store_true", help="retrieval metrics only, no LLM")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set min_score=0.3 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--report", metavar="DIR", help="write report.md, results.json, questions.jsonl, charts")
    add_collection_arg(p)
    add_model_flags(p)

    p = sub.add_parser("feedback", help="the chat's thumbs up and down; `rag feedback export` makes the corrections "
                                        "a question set for `rag eval`")
    p.add_argument("action", nargs="?", default="list", choices=["list", "export"])
    p.add_argument("--history", metavar="FILE",
                   help="the chat's history file, where the feedback is kept (default: the chat's: "
                        "RAG_HISTORY, else history.db)")
    p.add_argument("--user", metavar="NAME", help="only this signed-in user's feedback ('' for the feedback "
                                                  "given without sign-in; default: everyone's)")
    p.add_argument("--collection", metavar="NAME",
                   help="only the feedback on this collection's answers (export: default the default collection)")
    p.add_argument("-o", "--output", metavar="FILE", help="export: write the JSONL here (default: stdout)")
    p.add_argument("--up", action="store_true",
                   help="export: thumbs-up too (an approved answer as gold, an approved abstention as unanswerable)")
    p.add_argument("--split", default="test", metavar="dev|test",
                   help="export: the split the cases are marked with (default test)")
    p.add_argument("--json", action="store_true", help="list: print JSON")

    p = sub.add_parser("models", help="the model catalogue and the GGUFs on disk; `rag models pull NAME` downloads one")
    add_flag(p, "models_dir")
    p.add_argument("--json", action="store_true", help="print the catalogue and the local models as JSON")
    msub = p.add_subparsers(dest="models_command")
    pp = msub.add_parser("pull", help="download a model from the Hugging Face Hub into the models folder")
    pp.add_argument("name", help="a catalogue name (see `rag models`) or owner/repo:FILE.gguf")
    pp.add_argument("--models-dir", dest="pull_models_dir", help="folder to download into")
    pp.add_argument("--force", action="store_true", help="replace a file of that name that differs from the Hub's")
    return parser


def _flag_settings(args) -> Settings:
    """The settings the command's flags give, before --collection picks a collection's index."""
    # (`--corpus` of `rag collections create` is where a new collection reads from, not a setting)
    return Settings.load(**overrides(args, (*MODEL_SETTINGS, "top_k", "chunk_size", "chunk_overlap",
                                            "api_sources")))


def _settings(args) -> Settings:
    settings = _flag_settings(args)
    name = getattr(args, "collection", None)
    if name is not None:
        from .collections import Collections

        if args.index is not None:
            raise ConfigError("give --index or --collection, not both")
        settings = Collections.from_settings(settings).settings_for(settings, name)
    return settings


def _index_collection(args) -> None:
    """`rag index [DIR] --collection NAME`: NAME is created over DIR when it does not exist yet
    (over its own folder without DIR); an existing one indexes its own corpus folder."""
    from pathlib import Path

    from .collections import DEFAULT, Collections, check_name

    check_name(args.collection)
    base = Settings.load(**{"collections": args.collections} if args.collections else {})
    cols = Collections.from_settings(base)
    if len(args.paths) > 1 or (args.paths and not Path(args.paths[0]).is_dir()):
        raise ConfigError("--collection takes one folder: the collection's corpus")
    try:
        c = cols.get(args.collection)
    except ConfigError:
        c = cols.create(args.collection, corpus=args.paths[0] if args.paths else None)
        print(f"collection {c.name} created over {c.corpus}")
    if args.paths and Path(args.paths[0]).resolve() != c.corpus.resolve() and c.name != DEFAULT:
        raise ConfigError(f"collection {c.name} reads its documents from {c.corpus}, not {args.paths[0]}; "
                          f"index it without a folder, or create another collection")
    args.paths = [str(c.corpus)]


def cmd_index(args) -> int:
    from .pipeline import RAG

    if args.collection is not None:
        _index_collection(args)
    rag = RAG(_settings(args))
    if args.rollback:
        rollback = getattr(rag.vector_store, "rollback", None)
        if rollback is None:
            raise ConfigError("this store keeps no older versions to roll back to")
        print(f"{rag.vector_store.location}: version {rollback()} is live again")
        return 0
    # a bar on a terminal; in a log or a pipe, a line every few seconds
    report = rag.index(args.paths or None, rebuild=args.rebuild, progress=True if sys.stderr.isatty() else "lines",
                       lock_wait=max(0.0, args.wait))
    if args.json:
        print(json.dumps({"index": report.index_dir, "added": report.added, "updated": report.updated,
                          "removed": report.removed, "unchanged": report.unchanged,
                          "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
                          "chunks": report.n_chunks, "embedded": report.n_embedded,
                          "resumed": report.resumed, "reused_vectors": report.n_reused,
                          "seconds": round(report.seconds, 3)}, indent=2))
        return 0
    for label, items in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
        for item in items:
            print(f"{label} {item}")
    for path, reason in report.skipped:  # last, where a reader of a long build's output looks
        print(f"skipped {path}: {reason}")
    print(f"{report.index_dir}: {report.summary()}")
    return 0


def cmd_ask(args) -> int:
    from .pipeline import RAG
    rag = RAG(_settings(args), build_missing=args.index is None and args.collection is None)
    if args.document is not None:
        args.source = _document(rag, args.document, args.source)
    if args.json:
        answer = rag.ask(args.question, template=args.template, top_k=args.top_k, source=args.source)
        out = answer.to_dict()  # one shape for the library and the CLI
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    answer = _stream_answer(rag, args, live=sys.stdout.isatty(), status=sys.stderr.isatty())
    _print_notes(answer)
    return 0


def _print_notes(answer) -> None:
    """What `rag ask` prints under the answer: why it abstained, the sentences the documents
    do not back, what a whole-document answer read, the sources and the template."""
    if answer.abstained and answer.abstain_reason:
        print(f"({answer.abstain_reason})")
    for s in answer.sentences:
        if s.verified is False:  # the reader should know which sentences the documents do not back
            print(f"  unverified: {s.text} ({'; '.join(s.flags)})")
    covered = coverage_line(answer.coverage)  # what a whole-document answer read, and if it is all
    if covered:
        print(f"\n{covered}")
    citations = numbered(answer).citations  # numbered 1..n as the printed answer reads them
    if citations:
        print("\nSources:")
        for c in citations:
            where = f"{c.source} > {c.where}" if c.where else c.source
            # a survey's entries are copied from their passage: no similarity ranks them
            score = "" if answer.scope else f"score {c.score:.2f}"
            note = ", ".join(x for x in (score, "inferred" if c.inferred else "") if x)
            print(f"  [{c.n}] {where}" + (f" ({note})" if note else ""))
    if answer.template_reason:
        print(f"\nTemplate: {answer.template} ({answer.template_reason})")


def _document(rag, document: str, source: str | None) -> str:
    """`--document`: an indexed path or the start of some (`toolbox.indexed_document`), or a
    file's path on disk under the corpus folder, as the index names it; one line when neither."""
    from pathlib import Path

    from .errors import QueryError
    from .toolbox import indexed_document

    try:
        found = indexed_document(rag, document, name="--document")
    except QueryError:
        try:  # "corpus/notes.md", "./notes.md" from the corpus folder: its path in the index
            rel = Path(document).resolve().relative_to(Path(rag.settings.corpus).resolve()).as_posix()
            found = indexed_document(rag, rel, name="--document")
        except (ValueError, OSError, QueryError):
            found = None
        if found is None:
            raise
    if source is not None and source != found:
        raise ConfigError("give --source or --document, not both")
    return found


def _stream_answer(rag, args, *, live: bool, status: bool = False):
    """Print the answer and return it. On a terminal the model's draft streams dimmed, as a
    draft, while it is generated, and the checked answer replaces it once the checks are done;
    elsewhere only the checked answer is printed, so a pipe or a log never holds text that
    failed a check. With `status` (stderr is a terminal), how far a whole-document answer has
    read shows on one line of stderr, rewritten in place and cleared before the answer."""
    import shutil

    from .types import DraftText, Progress

    drafts = live and args.template != "cot"  # reasoning is not the answer
    stream = rag.stream(args.question, template=args.template, top_k=args.top_k,
                        source=getattr(args, "source", None), drafts=drafts or status)
    shown, progress = "", False
    try:
        for piece in stream:
            if isinstance(piece, Progress):
                if status:
                    print(f"\r{CLEAR_LINE}{DIM}{piece} ...{RESET}", end="", file=sys.stderr, flush=True)
                    progress = True
                continue
            if progress:  # the status line goes before anything else is printed
                print(f"\r{CLEAR_LINE}", end="", file=sys.stderr, flush=True)
                progress = False
            if isinstance(piece, DraftText) and drafts:
                print(("" if shown else DIM) + piece, end="", flush=True)
                shown += piece
    finally:
        if progress:  # (an error or Ctrl-C while reading leaves no status line behind)
            print(f"\r{CLEAR_LINE}", end="", file=sys.stderr, flush=True)
    answer = stream.answer
    if shown:
        # move back over the rows the draft took and clear them: the checked answer replaces it
        cols = max(20, shutil.get_terminal_size().columns)
        rows = sum(max(1, -(-len(line) // cols)) for line in shown.split("\n"))
        print(RESET + "\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + "\x1b[J", end="")
    print(numbered(answer).text)  # its markers 1..n in reading order, as the Sources list below
    return answer


DIM, RESET = "\x1b[2m", "\x1b[0m"  # how a terminal shows the draft: faint, until it is replaced
CLEAR_LINE = "\x1b[2K"  # erases the status line of a whole-document answer's progress


def cmd_eval(args) -> int:
    import dataclasses

    from .evaluation.data import load_dataset, select_split
    from .evaluation.report import format_table, write_report
    from .evaluation.runner import CACHE_ROOT, open_rag, parse_overrides, run_eval

    settings = dataclasses.replace(_settings(args), **parse_overrides(args.set))
    settings.validate()
    templates = [t.strip() for t in args.templates.split(",") if t.strip()]
    progress = sys.stderr.isatty()
    evalset = select_split(load_dataset(args.dataset, format=args.format, cache_root=CACHE_ROOT), args.split)
    rag = open_rag(evalset, settings, index_given=args.index is not None or args.collection is not None,
                   progress=progress)
    report = run_eval(evalset, rag, templates=templates, limit=args.limit,
                      retrieval_only=args.retrieval_only, progress=progress, seed=settings.seed)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
    if args.report:
        write_report(report, args.report)
        print(f"report written to {args.report}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_collections(args) -> int:
    from .collections import Collections, manifest_of

    settings = _settings(args)
    cols = Collections.from_settings(settings)
    if args.action != "list" and not args.name:
        raise ConfigError(f"`rag collections {args.action}` needs a collection name")
    if args.action == "create":
        c = cols.create(args.name, owner=args.owner, corpus=args.corpus)
        print(f"collection {c.name} created: documents in {c.corpus}, index in {c.index}")
        return 0
    if args.action in ("share", "unshare"):
        c = cols.set_shared(args.name, args.action == "share")
        print(f"collection {c.name} is {'shared' if c.shared else 'private to ' + (c.owner or 'everyone')}")
        return 0
    if args.action == "delete":
        print(f"collection {args.name} moved to {cols.delete(args.name)}")
        return 0
    rows = []
    for c in cols.list():
        try:
            manifest = manifest_of(cols.settings_for(settings, c.name))
        except RagError:
            manifest = None
        docs = (manifest or {}).get("documents", {})
        rows.append({"name": c.name, "documents": len(docs), "chunks": sum(d["n_chunks"] for d in docs.values()),
                     "corpus": str(c.corpus), "owner": c.owner, "shared": c.shared})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        who = "everyone" if not r["owner"] else r["owner"] + (", shared" if r["shared"] else "")
        print(f"{r['name']}: {r['documents']} documents, {r['chunks']} chunks, {r['corpus']} ({who})")
    return 0


def cmd_feedback(args) -> int:
    """`rag feedback [list]`: the saved ratings; `rag feedback export`: the cases they make, as a
    JSONL question set for `rag eval FILE --collection NAME` (its summary on stderr)."""
    from pathlib import Path

    from .collections import DEFAULT
    from .feedback import FeedbackStore, export_cases
    from .history import default_path

    path = Path(args.history) if args.history else default_path()
    if not path.is_file():
        raise ConfigError(f"no feedback saved: {path} does not exist (the chat's --history file; "
                          f"give it with --history)")
    store = FeedbackStore(path)
    if store.notice:
        print(f"warning: {store.notice}", file=sys.stderr)
    if args.action == "list":
        rows = store.list(owner=args.user, collection=args.collection)
        if args.json:
            print(json.dumps([dataclasses.asdict(f) for f in rows], indent=2, ensure_ascii=False))
            return 0
        for f in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(f.created))
            fix = f" -> {f.correction}" if f.correction else ""
            print(f"{f.id}  {when}  {f.user or '-'}  {f.rating:4}  {f.collection}  {f.question}{fix}")
        if not rows:
            print("no feedback yet", file=sys.stderr)
        return 0
    collection = args.collection or DEFAULT
    export = export_cases(store.list(owner=args.user, collection=collection), approvals=args.up, split=args.split)
    if not export.cases:
        raise ConfigError(f"no feedback on collection {collection!r} makes a case: {export.summary()}")
    if args.output:
        Path(args.output).write_text(export.jsonl(), encoding="utf-8")
    else:
        sys.stdout.write(export.jsonl())
    where = args.output or "stdout"
    then = f"rag eval {args.output}" + (f" --collection {collection}" if collection != DEFAULT else "") \
        if args.output else ""
    print(f"{export.summary()} written to {where}" + (f"; evaluate them: {then}" if then else ""), file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    from .hosts import parse_proxies
    from .pipeline import RAG
    from .serve import Limits, serve

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_queue < 1 or args.timeout <= 0 or args.queue_per_client < 0:
        raise ConfigError("--max-queue must be at least 1, --queue-per-client 0 or more and --timeout positive")
    try:
        proxies = parse_proxies([args.trusted_proxies])
    except ValueError as e:
        raise ConfigError(f"--trusted-proxies: {e}") from None
    hosts = tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip())
    rag = RAG(_settings(args), build_missing=args.index is None and args.collection is None)
    try:
        toolbox = _toolbox(args, rag, user=None)
    except RagError as e:  # e.g. --collection names a user's own collection: the API key is nobody's
        print(f"warning: MCP tools are off: {e}", file=sys.stderr)
        toolbox = None
    return serve(rag, host=args.host, port=args.port, toolbox=toolbox,
                 limits=Limits(api_key=args.api_key, max_queue=args.max_queue, per_client=args.queue_per_client,
                               timeout=args.timeout, allowed_hosts=hosts, trusted_proxies=proxies))


def _toolbox(args, rag, *, user: str | None):
    """The MCP tools' `Toolbox`: every collection through the default one's RAG (sharing `rag`'s
    models), calls without a collection going to --collection's."""
    from .collections import DEFAULT
    from .toolbox import Toolbox

    base = rag
    if args.collection is not None:  # `rag` is that collection's; the toolbox needs the default's
        base = rag.sibling(_flag_settings(args))
    return Toolbox(base, user=user, default=args.collection or DEFAULT)


def cmd_mcp(args) -> int:
    import threading

    from .mcp_server import run_stdio
    from .pipeline import RAG

    rag = RAG(_settings(args))
    toolbox = _toolbox(args, rag, user=args.user)
    print("rag mcp: serving the tools search, ask, list_collections and read_passage over stdio",
          file=sys.stderr, flush=True)
    # the models load while the client connects, not at its first question; a failure here is
    # reported again, as a tool error, by the call that needs them
    threading.Thread(target=_warm_up, args=(rag,), daemon=True, name="warm-up").start()
    return run_stdio(toolbox)


def _warm_up(rag) -> None:
    try:
        rag.warm_up()
    except Exception as e:  # noqa: BLE001 - logged; the tool call that needs the model says why
        logging.getLogger(__name__).warning("loading the models failed: %s", e)


def cmd_models(args) -> int:
    from . import models

    folder = getattr(args, "pull_models_dir", None) or args.models_dir or Settings.load().models_dir
    if args.models_command == "pull":
        return _pull(args.name, folder, force=args.force)
    local = models.local_models(folder)
    on_disk = {m.entry.name for m in local if m.entry}
    if args.json:
        print(json.dumps({
            "models_dir": str(folder),
            "catalogue": [{**dataclasses.asdict(e), "on_disk": e.name in on_disk} for e in models.CATALOGUE],
            "local": [{"path": str(m.path), "size": m.size, "shipped": m.shipped,
                       "name": m.entry.name if m.entry else None} for m in local],
            "provenance": models.PROVENANCE}, indent=2))
        return 0
    rows = [("name", "params", "file GB", "RAM GB", "speed", "licence", "here", "GGUF (Hugging Face repo)")]
    for e in models.CATALOGUE:
        here = "shipped" if not e.repo else "yes" if e.name in on_disk else ""
        rows.append((e.name, f"{e.params_b:g}B", f"{e.size_gb:.2f}", f"{e.ram_gb:g}", e.speed, e.licence,
                     here, f"{e.file} ({e.repo})" if e.repo else e.file))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print("\nspeed: " + "; ".join(f"{k} {v}" for k, v in models.SPEED_CLASSES.items()))
    print(f"sources: {models.PROVENANCE}")
    print(f"\nOn disk ({folder}):")
    for m in local:
        print(f"  {m.label}  {m.size / 1e9:.2f} GB  {m.path}")
    if not any(not m.shipped for m in local):
        print("  nothing pulled yet: `rag models pull qwen2.5-1.5b`, then `rag ask ... --model qwen2.5-1.5b`")
    return 0


def _pull(name: str, folder: str, *, force: bool) -> int:
    from .models import find, parse_spec, pull

    entry = parse_spec(name)
    logging.getLogger("huggingface_hub").propagate = False  # it prints its own warnings once
    print(f"pulling {entry.file} from {entry.repo} into {folder}", file=sys.stderr, flush=True)
    try:
        result = pull(name, models_dir=folder, force=force, progress=True)
    except KeyboardInterrupt:
        print("interrupted: the partial download is kept; run the same pull again to continue it",
              file=sys.stderr)
        return 130
    if result.already:
        print(f"{result.path} is already here (sha256 {'checked' if result.verified else 'not given by the Hub'})")
    else:
        how = f", continued from {result.resumed_from / 1e6:,.0f} MB" if result.resumed_from else ""
        check = "sha256 matches the Hub's" if result.verified else "the Hub gave no sha256 to check"
        print(f"{result.path}: {result.size / 1e6:,.0f} MB, {check}{how}")
    name_hint = entry.name if find(name) else result.path.name
    print(f"use it: rag ask \"...\" --model {name_hint}   (or pick it in the chat)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command != "models":  # `rag models pull` is the one command that goes online, when asked
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return {"index": cmd_index, "ask": cmd_ask, "eval": cmd_eval, "serve": cmd_serve, "mcp": cmd_mcp,
                "models": cmd_models, "collections": cmd_collections, "feedback": cmd_feedback}[args.command](args)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a last resort: users get one line, RAG_DEBUG=1 gets the traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (set RAG_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
