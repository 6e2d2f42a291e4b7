"""The chat front end: `python app.py` opens http://127.0.0.1:7860.

One `RAG` (models and index) is loaded at start and shared by every browser tab and API
call. Answers stream token by token, then the cited passages are listed under them. Uploaded
documents are copied into the corpus folder and indexed incrementally, so they survive a
restart. Every failure the user can cause or meet becomes a one-line message in the page.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # private: the app calls no one

from rag import RAG, Answer, Settings, Turn  # noqa: E402
from rag import ingest  # noqa: E402
from rag.cli import add_model_args  # noqa: E402
from rag.errors import ConfigError, DocumentError, RagError  # noqa: E402

log = logging.getLogger("rag.app")

TEMPLATE_CHOICES = [("few-shot", "few_shot"), ("zero-shot", "zero_shot"), ("chain-of-thought", "cot"),
                    ("extractive", "extract")]
UPLOAD_TYPES = sorted(ingest.SUPPORTED)
# abstaining is an answer, not a failure, so it carries no warning sign
ABSTAIN_HINT = "_None of the indexed passages answers this{why}. Try rephrasing, or add documents._"


# ---------------------------------------------------------------- the service behind the page

@dataclass
class UploadReport:
    """What became of each uploaded file."""

    added: list[str] = field(default_factory=list)  # names as saved in the corpus folder
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, reason)
    n_chunks: int = 0

    def markdown(self) -> str:
        lines = [f"✓ **{name}** is indexed and searchable" for name in self.added]
        lines += [f"⚠️ **{name}** not added: {reason}" for name, reason in self.rejected]
        if self.added:
            lines.append(f"The index now holds {self.n_chunks} chunks.")
        return "\n\n".join(lines) or "No files were given."


class ChatService:
    """The loaded `RAG`, or the one-line reason it could not be made (e.g. a missing model file).

    The page stays up either way: a broken setting is shown in every answer until it is fixed.
    """

    def __init__(self, settings: Settings | None = None, *, rag: RAG | None = None,
                 **overrides) -> None:
        self.rag: RAG | None = rag
        self.error = ""
        if rag is not None:
            return
        try:
            s = settings if settings is not None else Settings.load(**overrides)
            # the chat serves the corpus folder: a missing index is built from it
            self.rag = RAG(s, build_missing=True)
        except RagError as e:
            self.error = str(e)

    @property
    def corpus(self) -> Path:
        return Path(self.rag.settings.corpus)

    def get(self) -> RAG:
        if self.rag is None:
            raise ConfigError(self.error)
        return self.rag

    def warm_up(self) -> str:
        """Load models and index now; returns the error text ("" when all is well)."""
        try:
            self.get().warm_up()
            return ""
        except RagError as e:
            return str(e)

    def status(self) -> str:
        """One line for the header: model, embedder, index and its size, or what is wrong."""
        if self.rag is None:
            return f"⚠️ {self.error}"
        rag = self.rag
        index = Path(rag.settings.index)
        try:
            store = rag.store
        except RagError as e:
            return f"**Model** {rag.llm.name} · ⚠️ index {index}: {e}"
        return (f"**Model** {rag.llm.name} · **Embedder** {rag.embedder.name} · "
                f"**Index** {index.name} ({store.path.name}): {len(store)} chunks from "
                f"{len(store.manifest['documents'])} documents")

    def add_uploads(self, files: list, *, upload_dir: str | Path, progress: bool = False) -> UploadReport:
        """Add files a browser uploaded: only those inside Gradio's upload folder `upload_dir`.

        An API client can send a file entry whose path names any server file (or a URL); such an
        entry is refused and logged, never read, so nothing outside the user's uploads can reach
        the corpus and be quoted back by `/ask`.
        """
        report = UploadReport()
        accepted: list[Path] = []
        for entry in files or []:
            path, name = _upload_entry(entry)
            inside = _inside(path, Path(upload_dir)) if path else None
            if inside is None:
                log.warning("refused an upload entry outside the upload folder: %r", path or entry)
                report.rejected.append((name or "?", "not a file uploaded to this app"))
                continue
            accepted.append(inside)
        if accepted:
            added = self.add_files(accepted, progress=progress)
            report.added, report.n_chunks = added.added, added.n_chunks
            report.rejected += added.rejected
        return report

    def add_files(self, paths: list[str | Path], *, progress: bool = False) -> UploadReport:
        """Check, copy into the corpus folder and index the given files (trusted, local paths).

        A file is copied only once it has been read successfully, never over an existing one;
        if indexing fails the copies are removed again and the previous index stays live.
        """
        rag = self.get()
        report = UploadReport()
        saved: list[Path] = []
        self.corpus.mkdir(parents=True, exist_ok=True)
        for raw in paths:
            src = Path(raw)
            name = src.name
            if src.suffix.lower() not in ingest.SUPPORTED:
                report.rejected.append((name, f"unsupported file type '{src.suffix or name}' "
                                              f"(supported: {', '.join(UPLOAD_TYPES)})"))
                continue
            try:
                doc = ingest.load(src)
            except DocumentError as e:
                report.rejected.append((name, str(e).removeprefix(f"{src}: ")))
                continue
            dest = _free_name(self.corpus / name, doc.sha256)
            if dest is None:
                report.rejected.append((name, "the same file is already in your documents"))
                continue
            part = dest.with_name(f".{dest.name}.part")  # dot files are never indexed
            shutil.copyfile(src, part)
            os.replace(part, dest)
            saved.append(dest)
        if not saved:
            return report
        try:
            built = rag.index([self.corpus], prune=False, progress=progress)
        except RagError as e:
            for p in saved:
                p.unlink(missing_ok=True)
            report.rejected += [(p.name, f"indexing failed: {e}") for p in saved]
            return report
        failed = {Path(p).name: reason for p, reason in built.skipped}
        for p in saved:
            if p.name in failed:
                p.unlink(missing_ok=True)
                report.rejected.append((p.name, failed[p.name]))
            else:
                report.added.append(p.name)
        report.n_chunks = built.n_chunks
        return report


def _upload_entry(entry) -> tuple[str, str]:
    """(path, name shown to the user) of one file entry of an upload request, as sent."""
    if isinstance(entry, dict):
        path = entry.get("path")
        name = entry.get("orig_name") or (Path(path).name if isinstance(path, str) else "")
        return (path if isinstance(path, str) else ""), str(name)[:200]
    if isinstance(entry, (str, Path)):
        return str(entry), Path(str(entry)).name
    return "", ""


def _inside(path: str, root: Path) -> Path | None:
    """`path` resolved, if it is a regular file under `root` (links followed first); else None."""
    if "://" in path or not path:
        return None  # a URL would make the server fetch it
    try:
        real = Path(path).resolve(strict=True)
        base = root.resolve()
    except (OSError, RuntimeError):
        return None
    if not real.is_file() or not real.is_relative_to(base) or real == base:
        return None
    return real


_JSON_BODY_LIMIT = 4 << 20  # bytes; questions, histories and file entries are far smaller


class UploadGuard:
    """ASGI middleware in front of Gradio: a request whose JSON names a file entry that was not
    uploaded to this app (a server path, or a URL that Gradio would download) is refused with one
    line and logged, before Gradio reads, copies or fetches anything."""

    def __init__(self, app, upload_dir: Callable[[], Path] | None = None) -> None:
        self.app = app
        self.upload_dir = upload_dir or upload_folder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or \
                b"json" not in dict(scope.get("headers") or []).get(b"content-type", b""):
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > _JSON_BODY_LIMIT:
                return await _refuse(send, 413, f"request body over {_JSON_BODY_LIMIT >> 20} MiB")
            if not message.get("more_body"):
                break
        foreign = _foreign_paths(body, self.upload_dir())
        if foreign:
            log.warning("refused a request naming files not uploaded to this app: %s", ", ".join(foreign[:5]))
            return await _refuse(send, 403, f"refused: {foreign[0][:200]} was not uploaded to this app")

        async def replay():
            return messages.pop(0) if messages else await receive()
        return await self.app(scope, replay, send)


async def _refuse(send, status: int, line: str) -> None:
    import json

    body = json.dumps({"error": line}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _foreign_paths(body: bytes, root: Path) -> list[str]:
    """Paths of file entries (dicts with a "path") in a JSON body that are not uploads under `root`."""
    import json

    try:
        data = json.loads(body or b"null")
    except ValueError:
        return []  # not ours to judge: Gradio answers malformed JSON itself
    out: list[str] = []
    todo = [data]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str) and _inside(path, root) is None:
                out.append(path)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return out


def upload_folder() -> Path:
    """Where Gradio stores what browsers upload (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def _free_name(dest: Path, sha256: str) -> Path | None:
    """`dest`, or `name-2.ext`, `name-3.ext`, ... if taken; None if an identical file is there."""
    candidate, n = dest, 1
    while candidate.exists():
        if candidate.is_file() and ingest.file_sha256(candidate) == sha256:
            return None
        n += 1
        candidate = dest.with_name(f"{dest.stem}-{n}{dest.suffix}")
    return candidate


# ---------------------------------------------------------------- chat messages

def answer_messages(answer: Answer) -> list[dict]:
    """The finished answer as chat messages: reasoning (collapsed), the answer, its sources.

    Each source is a collapsed block titled with its [n] marker, file, heading and score; the
    full chunk text shows when it is opened.
    """
    out: list[dict] = []
    if answer.reasoning:
        out.append({"role": "assistant", "content": answer.reasoning,
                    "metadata": {"title": "Reasoning (chain of thought)", "status": "done"}})
    if answer.abstained:
        why = f" ({answer.abstain_reason})" if answer.abstain_reason else ""
        out.append({"role": "assistant", "content": f"{answer.text}\n\n{ABSTAIN_HINT.format(why=why)}"})
        return out
    out.append({"role": "assistant", "content": answer.text})
    texts = {h.chunk.id: h.chunk.text for h in answer.hits}
    if answer.citations:
        out.append({"role": "assistant", "content": "**Sources** (open one to read the passage)"})
    for c in answer.citations:
        where = f"{c.source} › {c.heading}" if c.heading else c.source
        note = ", inferred" if c.inferred else ""
        out.append({"role": "assistant", "content": texts.get(c.chunk_id, c.snippet),
                    "metadata": {"title": f"[{c.n}] {where} · similarity {c.score:.2f}{note}",
                                 "status": "done"}})
    return out


def error_message(e: Exception) -> dict:
    if isinstance(e, RagError):
        text = str(e)
    else:  # a bug: the log gets the traceback, the user one line
        log.exception("unexpected error while answering")
        text = f"unexpected {type(e).__name__}: {e}"
    return {"role": "assistant", "content": f"⚠️ {text}"}


def respond(service: ChatService, question: str, chat: list[dict], turns: list[list[str]],
            template: str, top_k: float):
    """Stream one exchange: yields (textbox value, chat messages, turns) as the answer grows."""
    chat = list(chat or [])
    turns = list(turns or [])
    if question and question.strip():
        chat.append({"role": "user", "content": question})
    yield "", chat, turns
    try:
        rag = service.get()
        history = [Turn(q, a) for q, a in turns]
        stream = rag.stream(question, template=template, top_k=int(top_k), history=history)
        # chain-of-thought output streams as plain text too; it only becomes a collapsed block
        # at the end, because Gradio keeps a block open that was first drawn open
        live = {"role": "assistant", "content": ""}
        chat.append(live)
        for piece in stream:
            live["content"] += piece
            yield "", chat, turns
        answer = stream.answer
        chat[-1:] = answer_messages(answer)
        turns.append([answer.question, answer.text])
        yield "", chat, turns
    except Exception as e:  # noqa: BLE001 - every failure ends as a message, never a dead UI
        if chat and chat[-1].get("role") == "assistant" and not chat[-1]["content"]:
            chat.pop()
        chat.append(error_message(e))
        yield "", chat, turns


def api_ask(service: ChatService, question: str, template: str, top_k: int,
            history: list[list[str]] | None) -> dict:
    """The structured answer for API clients; errors come back as gradio errors with one line."""
    import gradio as gr

    try:
        turns = [Turn(q, a) for q, a in (history or [])]
        answer = service.get().ask(question, template=template, top_k=int(top_k) or None,
                                   history=turns)
    except RagError as e:
        raise gr.Error(str(e), print_exception=False) from None
    except (TypeError, ValueError) as e:
        raise gr.Error(f"bad request: {e}", print_exception=False) from None
    d = answer.to_dict()
    texts = {h.chunk.id: h.chunk.text for h in answer.hits}
    for item in d["citations"] + d["hits"]:
        item["text"] = texts.get(item["chunk_id"], item.get("snippet", ""))
    return d


# ---------------------------------------------------------------- the page

def build_ui(service: ChatService):
    """The Gradio Blocks of the chat, bound to `service`."""
    import gradio as gr

    top_k = service.rag.settings.top_k if service.rag else 4
    with gr.Blocks(title="rag-local", analytics_enabled=False) as demo:
        gr.Markdown("## rag-local · ask your documents")
        status = gr.Markdown(service.status(), elem_id="status")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Chat", elem_id="chat", height=520, feedback_options=None,
                                  placeholder="Ask something about your documents.")
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question and press Enter", show_label=False,
                                     elem_id="question", scale=5, autofocus=True)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                clear = gr.Button("New conversation", size="sm")
            with gr.Column(scale=1):
                template = gr.Radio(TEMPLATE_CHOICES, value="few_shot", label="Prompt template")
                k = gr.Slider(1, 12, value=top_k, step=1, label="Passages retrieved (top-k)")
                files = gr.File(label=f"Add documents ({', '.join(UPLOAD_TYPES)})",
                                file_count="multiple", elem_id="upload")
                upload_note = gr.Markdown(elem_id="upload-note")
        turns = gr.State([])

        def on_message(question, messages, past, tmpl, kk):
            yield from respond(service, question, messages, past, tmpl, kk)

        def on_upload(files, progress=gr.Progress(track_tqdm=True)):
            if not files:
                return "", service.status()
            progress(0, desc="checking and indexing")
            try:
                # raw file entries (preprocess=False): Gradio must not open, copy or download a
                # path a client names before it is checked against the upload folder
                note = service.add_uploads(files, upload_dir=upload_folder(), progress=True).markdown()
            except RagError as e:
                note = f"⚠️ {e}"
            return note, service.status()

        chat_io = dict(fn=on_message, inputs=[box, chat, turns, template, k],
                       outputs=[box, chat, turns], concurrency_id="llm", api_visibility="private")
        box.submit(**chat_io)
        send.click(**chat_io)
        clear.click(lambda: ([], []), outputs=[chat, turns], api_visibility="private")
        files.upload(on_upload, inputs=files, outputs=[upload_note, status], api_name="add_documents",
                     preprocess=False)
        demo.load(service.status, outputs=status, api_visibility="private")

        def ask(question: str, template: str = "few_shot", top_k: int = 0,
                history: list[list[str]] | None = None) -> dict:
            """Answer a question from the indexed documents. Returns the answer, whether it
            abstained, the citations ([n] marker, source, heading, score, chunk text), every
            retrieved passage (hits), timings and token usage. `history` is a list of [question, answer] pairs."""
            return api_ask(service, question, template, top_k, history)

        gr.api(ask, api_name="ask", concurrency_id="llm")
    return demo


# ---------------------------------------------------------------- command line

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="Chat with your documents in the browser.")
    p.add_argument("--host", default=os.environ.get("RAG_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("RAG_PORT", "7860")))
    p.add_argument("--corpus", help="documents folder; uploads are saved here (default: corpus/)")
    add_model_args(p)
    p.add_argument("--top-k", type=int, help="passages retrieved per question (default 4)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p.parse_args(argv)


def _can_listen(host: str, port: int) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    names = ("index", "corpus", "model", "embedder", "n_gpu_layers", "n_threads", "n_ctx", "top_k")
    try:
        settings = Settings.load(**{n: getattr(args, n) for n in names})
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not _can_listen(args.host, args.port):  # say so now, not after loading the models
        print(f"error: cannot listen on {args.host}:{args.port} (in use or not this machine's "
              f"address); choose another with --port or --host", file=sys.stderr)
        return 1
    service = ChatService(settings)
    print("loading the models and the index ...", flush=True)
    problem = service.error or service.warm_up()
    if problem:  # the page still opens and shows it, so it can be read and fixed
        print(f"warning: {problem}", file=sys.stderr, flush=True)
    demo = build_ui(service)
    import gradio as gr
    from starlette.middleware import Middleware

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: works offline
    try:
        demo.queue(default_concurrency_limit=1).launch(
            server_name=args.host, server_port=args.port, ssr_mode=False, show_error=False,
            max_file_size="200mb", theme=theme, footer_links=["api"],
            app_kwargs={"middleware": [Middleware(UploadGuard)]})
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port} ({str(e).split('. ')[0]})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
