"""The chat front end: `python app.py` opens http://127.0.0.1:7860.

One `RAG` (models and index) is loaded at start and shared by every browser tab and API
call. Answers stream token by token, then the cited passages are listed under them. Uploaded
documents are copied into the corpus folder and indexed incrementally, so they survive a
restart. Every failure the user can cause or meet becomes a one-line message in the page.
"""
from __future__ import annotations

import argparse
import contextvars
import json
import logging
import os
import re
import socket
import sqlite3
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # private: the app calls no one

from rag import Answer, Settings  # noqa: E402
from rag.accounts import Accounts, AuthError, SignInThrottle, SignInThrottled, hash_password, load_accounts  # noqa: E402,F401
from rag.bounds import CHAT_MAX_ANSWER_CHARS, CHAT_MAX_HISTORY_TURNS, CHAT_MAX_TOP_K, CHAT_TEMPLATES  # noqa: E402
from rag.collections import DEFAULT  # noqa: E402
from rag.documents import list_documents  # noqa: E402
from rag.history import History  # noqa: E402
from rag.cli import add_model_args  # noqa: E402
from rag.serve import is_loopback  # noqa: E402
from rag.errors import HistoryError, QueryError, RagError  # noqa: E402
from rag.hosts import HostGuard, allowed_hosts, client_address, host_name, parse_proxies  # noqa: E402
from rag.transcript import answer_messages, html_text, md_text, message_text, public_text  # noqa: E402
from rag.turns import answer_json, live_version  # noqa: E402
from rag.uploads import MB, UPLOAD_TYPES, Allowance, UploadCancelled, UploadLimits, UploadReport  # noqa: E402,F401
from rag.uploads import inside_folder, size_text  # noqa: E402
from rag.workspace import ChatService, check_request  # noqa: E402

log = logging.getLogger("rag.app")

_TEMPLATE_LABELS = {"auto": "auto (per question)", "few_shot": "few-shot", "zero_shot": "zero-shot",
                    "cot": "chain-of-thought", "extract": "extractive"}
TEMPLATE_CHOICES = [(_TEMPLATE_LABELS[name], name) for name in CHAT_TEMPLATES]
# the chat shows text exactly as written: newlines break lines, nothing is rendered
CSS = ("#chat .md { white-space: pre-wrap; }\n"
       "#chat .md small { opacity: 0.7; }\n"  # a passage's neighbouring text, around it
       "#chat .md u.unsupported { text-decoration: underline wavy #c0392b; }")


_JSON_BODY_LIMIT = 4 << 20  # bytes; questions, histories and file entries are far smaller


class UploadGuard:
    """ASGI middleware in front of Gradio: a request whose JSON names a file entry that was not
    uploaded to this app (a server path, or a URL that Gradio would download) is refused with one
    line and logged, before Gradio reads, copies or fetches anything. An upload (the raw files,
    before any `/add_documents`) is refused by its declared length: over `max_request_bytes`, or
    over what is left of its sender's `allowance`, which it is charged as it is received."""

    def __init__(self, app, upload_dir: Callable[[], Path] | None = None,
                 max_request_bytes: int | None = None, allowance: Allowance | None = None) -> None:
        self.app = app
        self.upload_dir = upload_dir or upload_folder
        self.max_request_bytes = max_request_bytes
        self.allowance = allowance

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and \
                scope.get("path", "").rstrip("/").endswith("/gradio_api/upload"):
            return await self._upload(scope, receive, send)
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


    async def _upload(self, scope, receive, send):
        # refused by its declared size before any of it is stored
        size = dict(scope.get("headers") or []).get(b"content-length", b"")
        if not size.isdigit():
            return await _refuse(send, 411, "an upload must declare its length")
        if self.max_request_bytes and int(size) > self.max_request_bytes:
            return await _refuse(send, 413, f"upload over {size_text(self.max_request_bytes)} in one request")
        if self.allowance is None or not self.allowance.total:
            return await self.app(scope, receive, send)
        owner = scope_owner(scope)
        raw = self.allowance.reserve_raw(owner, int(size))
        if isinstance(raw, str):
            log.info("refused an upload of %s from %s: %s", size_text(int(size)), owner, raw)
            return await _refuse(send, 413, raw)
        status, body = 0, []

        async def watch(message):  # what Gradio stored: the list of paths it answers with
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            paths = []
            if status == 200:
                try:
                    paths = [p for p in json.loads(b"".join(body)) if isinstance(p, str)]
                except (ValueError, TypeError):
                    paths = []
            if paths:
                self.allowance.settle_raw(raw, paths)
            else:
                self.allowance.release_raw(raw)


async def _refuse(send, status: int, line: str) -> None:
    body = json.dumps({"error": line}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _foreign_paths(body: bytes, root: Path) -> list[str]:
    """Paths of file entries (dicts with a "path") in a JSON body that are not uploads under `root`."""
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
            if isinstance(path, str) and inside_folder(path, root) is None:
                out.append(path)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return out


def upload_folder() -> Path:
    """Where Gradio stores what browsers upload (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def error_message(e: Exception) -> dict:
    if isinstance(e, RagError):
        text = public_text(str(e))
    else:  # a bug: the log gets the traceback, the user one line
        log.exception("unexpected error while answering")
        text = f"unexpected {type(e).__name__}: {e}"
    return {"role": "assistant", "content": f"⚠️ {html_text(text)}"}


def respond(service: ChatService, question: str, chat: list[dict], turns: list[list[str]],
            template: str, top_k: float, *, shown: bool = False, collection: str | None = None,
            user: str | None = None, on_answer: Callable[[Answer], None] | None = None):
    """Stream one exchange: yields (textbox value, chat messages, turns) as the answer grows.

    `shown`: the question is already the last message of `chat` (the page shows it at once,
    while the answer waits in the queue)."""
    chat = list(chat or [])
    turns = list(turns or [])[-CHAT_MAX_HISTORY_TURNS:]
    if question and question.strip() and not shown:
        chat.append({"role": "user", "content": html_text(question)})
    yield "", chat, turns
    try:
        rag = service.get(collection, user=user)
        question, template, top_k, history = check_request(question, template, top_k, turns)
        stream = rag.stream(question, template=template, top_k=top_k, history=history)
        # chain-of-thought output streams as plain text too; it only becomes a collapsed block
        # at the end, because Gradio keeps a block open that was first drawn open
        live = {"role": "assistant", "content": ""}
        chat.append(live)
        text = ""
        for piece in stream:
            text += piece
            live["content"] = html_text(text)
            yield "", chat, turns
        answer = stream.answer
        chat[-1:] = answer_messages(answer, live_version(rag))
        turns.append([answer.question, answer.text[:CHAT_MAX_ANSWER_CHARS]])
        if on_answer is not None:
            on_answer(answer)
        yield "", chat, turns
    except Exception as e:  # noqa: BLE001 - every failure ends as a message, never a dead UI
        if chat and chat[-1].get("role") == "assistant" and not chat[-1]["content"]:
            chat.pop()
        chat.append(error_message(e))
        yield "", chat, turns


def api_ask(service: ChatService, question: str, template: str, top_k: int | None,
            history: list[list[str]] | None, collection: str | None = None, user: str | None = None) -> dict:
    """The structured answer for API clients; errors come back as gradio errors with one line."""
    import gradio as gr

    try:
        question, template, top_k, turns = check_request(question, template, top_k, history)
        if collection is not None and not isinstance(collection, str):
            raise QueryError("collection must be a collection's name")
        rag = service.get(collection or None, user=user)
        answer = rag.ask(question, template=template, top_k=top_k, history=turns)
    except RagError as e:
        raise gr.Error(" ".join(public_text(str(e)).split()), print_exception=False) from None
    except (TypeError, ValueError) as e:
        raise gr.Error(f"bad request: {e}", print_exception=False) from None
    return answer_json(answer, rag)


# ---------------------------------------------------------------- the page

@dataclass
class _UploadJob:
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    report: UploadReport | None = None


class UploadJobs:
    """The upload running for each browser session, so that session's Cancel can stop it."""

    def __init__(self) -> None:
        self._jobs: dict[str, _UploadJob] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> _UploadJob:
        with self._lock:
            job = self._jobs[session] = _UploadJob()
            return job

    def finish(self, session: str, job: _UploadJob, report: UploadReport | None) -> None:
        job.report = report
        job.done.set()
        with self._lock:
            if self._jobs.get(session) is job:
                del self._jobs[session]

    def cancel(self, session: str) -> _UploadJob | None:
        with self._lock:
            job = self._jobs.get(session)
        if job is not None:
            job.cancel.set()
        return job


def _stop_on_cancel(progress, cancel: threading.Event) -> None:
    """Make Gradio's progress tracker raise UploadCancelled once `cancel` is set. With
    track_tqdm every tqdm bar in the handler's thread steps through the tracker (iterating or
    `update`): the index build's file loop and embedding slices, and the embedder's batches of
    32 texts, so a cancelled build stops within a batch, before anything is committed."""

    class Cancellable(type(progress)):
        def __next__(self):
            if cancel.is_set():
                raise UploadCancelled()
            return super().__next__()

        def update(self, n=1):
            if cancel.is_set():
                raise UploadCancelled()
            return super().update(n)

    progress.__class__ = Cancellable


def client_key(username: str | None, client=None) -> str:
    """Who is asking, for per-user limits: the signed-in user, else the client's address
    (`client`: a request's client, with a `host`). The address is the connection's peer, or
    with --trusted-proxies the client a trusted proxy names (`ClientAddress`), never a header
    any client can write."""
    return f"user {username}" if username else f"address {getattr(client, 'host', None) or '?'}"


def scope_owner(scope) -> str:
    """`client_key` of a raw ASGI request (before Gradio makes a gr.Request of it)."""
    gradio = scope.get("app")
    user = None
    if getattr(gradio, "auth", None) is not None:
        user = getattr(gradio, "tokens", {}).get(_session_token(scope, gradio))
    client = scope.get("client")
    return f"user {user}" if user else f"address {(client[0] if client else None) or '?'}"


def request_key(request) -> str:
    return client_key(getattr(request, "username", None), getattr(request, "client", None))


def request_user(request) -> str | None:
    """The signed-in user of a request; None without sign-in (then every collection is everyone's)."""
    return getattr(request, "username", None) or None


def _api_call(fn, *args, **kwargs):
    """`fn(...)`, its RagError turned into the one-line error API clients get."""
    import gradio as gr

    try:
        return fn(*args, **kwargs)
    except RagError as e:
        raise gr.Error(" ".join(public_text(str(e)).split()), print_exception=False) from None


def build_ui(service: ChatService, *, concurrency: int = 1):
    """The Gradio Blocks of the chat, bound to `service`. `concurrency` questions are worked on
    at once: retrieval, the prompt and the checks of one overlap another's generation, which
    the model's lock keeps to one at a time, first come first served."""
    import gradio as gr

    top_k = service.rag.settings.top_k if service.rag else 4
    lim = service.limits
    limits = ", ".join(x for x in (
        f"up to {lim.files} files" if lim.files else "",
        f"{size_text(lim.file_bytes)} each" if lim.file_bytes else "",
        f"{size_text(lim.total_bytes)} in all" if lim.total_bytes else "") if x)
    uploads = UploadJobs()
    # uploaded files are kept a day in Gradio's cache, then deleted (the corpus keeps its copies)
    with gr.Blocks(title="rag-local", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown("## rag-local · ask your documents")
        status = gr.Markdown(service.status(), elem_id="status")
        with gr.Row():
            # saved conversations: this user's, the most recent first
            with gr.Column(scale=1, min_width=220, elem_id="history"):
                conversations = gr.Dropdown([], value=None, label="Conversations", elem_id="conversations",
                                            allow_custom_value=False)
                with gr.Accordion("Rename, delete, export", open=False, elem_id="conversation-tools"):
                    new_title = gr.Textbox(placeholder="new title", show_label=False, max_lines=1,
                                           elem_id="conversation-title")
                    with gr.Row():
                        rename = gr.Button("Rename", size="sm", elem_id="rename-conversation")
                        forget = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation")
                    export = gr.Button("Export as Markdown", size="sm", elem_id="export-conversation")
                    exported = gr.File(label="Markdown", interactive=False, elem_id="export-file")
                history_note = gr.Markdown(f"⚠️ {md_text(service.history.notice)}"
                                           if service.history and service.history.notice else "",
                                           elem_id="history-note")
            with gr.Column(scale=3):
                # messages are HTML built by html_text (Markdown off, no LaTeX, no custom tags,
                # sanitised): document text can neither render nor make the browser fetch
                chat = gr.Chatbot(label="Chat", elem_id="chat", height=520, feedback_options=None,
                                  placeholder="Ask something about your documents.",
                                  render_markdown=False, sanitize_html=True, latex_delimiters=[],
                                  allow_tags=False, buttons=["copy", "copy_all"])
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question and press Enter", show_label=False,
                                     elem_id="question", scale=5, autofocus=True)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                clear = gr.Button("New conversation", size="sm")
            with gr.Column(scale=1):
                # collections: the one asked and added to, per tab; only those this user may see
                # (the page's config is everyone's: it names only collections nobody owns, and
                # each page gets its user's list when it opens)
                collection = gr.Dropdown(service.public_collection_names(), value=DEFAULT, label="Collection",
                                         elem_id="collection", allow_custom_value=False)
                with gr.Accordion("New or delete collection", open=False, elem_id="collection-tools"):
                    new_name = gr.Textbox(placeholder="name: a-z, 0-9, - or _", show_label=False,
                                          elem_id="new-collection", max_lines=1)
                    shared = gr.Checkbox(label="shared with every signed-in user", value=False,
                                         elem_id="shared-collection")
                    with gr.Row():
                        create = gr.Button("Create", size="sm", elem_id="create-collection")
                        drop = gr.Button("Delete this collection", size="sm", variant="stop",
                                         elem_id="delete-collection")
                collection_note = gr.Markdown(elem_id="collection-note")
                template = gr.Radio(TEMPLATE_CHOICES, value="auto", label="Prompt template")
                k = gr.Slider(1, CHAT_MAX_TOP_K, value=min(top_k, CHAT_MAX_TOP_K), step=1,
                              label="Passages retrieved (top-k)")
                files = gr.File(label=f"Add documents ({', '.join(UPLOAD_TYPES)}; {limits})",
                                file_count="multiple", elem_id="upload")
                stop = gr.Button("Cancel upload", size="sm", elem_id="cancel-upload")
                upload_note = gr.Markdown(elem_id="upload-note")
                # the model every answer uses: the operator's to switch, so the page's config
                # lists none; the operator's page gets them when it opens (by file name)
                picker = gr.Dropdown([], value=None, label="Model", elem_id="model-picker", visible=False,
                                     info="GGUFs on this machine; `rag models pull NAME` adds more")
                model_note = gr.Markdown(elem_id="model-note")
        # the documents of the collection shown: what is indexed, taking one out, a re-scan
        with gr.Accordion("Documents", open=False, elem_id="documents"):
            doc_table = gr.Dataframe(headers=["document", "type", "chunks", "size", "indexed"],
                                     datatype=["str", "str", "number", "str", "str"], interactive=False,
                                     elem_id="doc-table", wrap=True)
            with gr.Row():
                doc_pick = gr.Dropdown([], label="Document", elem_id="doc-pick", scale=3)
                remove = gr.Button("Move to trash", size="sm", variant="stop", elem_id="remove-doc", scale=1)
                scan = gr.Button("Re-scan the folder", size="sm", elem_id="rescan", scale=1)
            doc_note = gr.Markdown(elem_id="doc-note")
        turns = gr.State([])
        pending = gr.State("")  # the question on its way from the box to the answer
        conv_id = gr.State(None)  # the saved conversation this tab continues, once it has one

        def show_question(question, messages):
            """The fast first step (not queued): the question shows in the chat at once and the
            box waits until the answer is in, however long the queue."""
            messages = list(messages or [])
            if question and question.strip():
                messages.append({"role": "user", "content": html_text(question)})
            return gr.update(value="", interactive=False), gr.update(interactive=False), messages, question

        def on_message(question, messages, past, tmpl, kk, name, cid, request: gr.Request):
            shown = bool(question and question.strip())
            user = request_user(request)
            saved = {"id": cid, "note": ""}

            def save(answer):
                try:
                    saved["id"] = service.save_turn(saved["id"], answer, collection=name, user=user)
                except RagError as e:  # the answer still shows; the note says it was not saved
                    saved["note"] = f"⚠️ not saved: {md_text(e)}"

            for _, messages, past in respond(service, question, messages, past, tmpl, kk, shown=shown,
                                             collection=name, user=user, on_answer=save):
                yield messages, past, saved["id"], gr.update(), gr.update()
            choices = service.conversation_choices(user=user)
            yield messages, past, saved["id"], gr.update(choices=choices, value=saved["id"]), \
                saved["note"] or gr.update()

        def unlock():
            return gr.update(interactive=True), gr.update(interactive=True)

        def take_back(question, messages):
            messages = list(messages or [])
            if question and messages and messages[-1].get("role") == "user" and \
                    message_text(messages[-1]).strip() == html_text(question).strip():
                messages.pop()
            return gr.update(value=question, interactive=True), gr.update(interactive=True), messages

        def on_upload(files, name, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            user = request_user(request)
            if not files:
                return "", service.status(name, user=user)
            job = uploads.start(request.session_hash or "")
            _stop_on_cancel(progress, job.cancel)
            report = None
            try:
                progress(0, desc="checking the files")
                # raw file entries (preprocess=False): Gradio must not open, copy or download a
                # path a client names before it is checked against the upload folder
                report = service.add_uploads(
                    files, upload_dir=upload_folder(), owner=request_key(request), progress=True,
                    cancel=job.cancel, collection=name, user=user,
                    on_file=lambda i, n, file: progress((i, n), desc="checking the files", unit="files"))
                note = report.markdown()
            except RagError as e:
                note = f"⚠️ {md_text(e)}"
            finally:
                uploads.finish(request.session_hash or "", job, report)
            return note, service.status(name, user=user)

        def on_cancel_upload(request: gr.Request):
            job = uploads.cancel(request.session_hash or "")
            if job is not None:
                job.done.wait(120)  # it stops at the next file or embedding batch
            if job is not None and job.report is not None and job.report.added:
                note = "The upload was already indexed when it was cancelled.\n\n" + job.report.markdown()
            else:
                note = "Upload cancelled: nothing from it was added."
            return note, service.status()

        def on_pick(name, request: gr.Request):
            user = request_user(request)
            return (service.status(name, user=user), *doc_views(name, user))

        def on_create(name, share, request: gr.Request):
            user = request_user(request)
            try:
                made = service.create_collection(name, user=user, shared=bool(share))
            except RagError as e:
                return gr.update(), f"⚠️ {md_text(e)}", gr.update()
            return (gr.update(choices=service.collection_names(user=user), value=made),
                    f"Collection **{md_text(made)}** created: add documents to it.", "")

        def on_delete(name, request: gr.Request):
            user = request_user(request)
            try:
                service.delete_collection(name, user=user)
            except RagError as e:
                return gr.update(), f"⚠️ {md_text(e)}"
            return (gr.update(choices=service.collection_names(user=user), value=DEFAULT),
                    f"Collection **{md_text(name)}** deleted (its documents are in the trash folder).")

        def on_open(name, request: gr.Request):
            """The page opened: this user's collections (the value stays: the user may have
            picked one already while the page was loading), its documents, their conversations."""
            user = request_user(request)
            names = service.collection_names(user=user)
            name = name if name in names else DEFAULT
            return (gr.update(choices=names, value=name), service.status(name, user=user), *doc_views(name, user),
                    gr.update(choices=service.conversation_choices(user=user)))

        def on_conversation(cid, request: gr.Request):
            user = request_user(request)
            if cid is None:
                return gr.update(), gr.update(), gr.update(), gr.update(), ""
            try:
                messages, past, name = service.conversation(cid, user=user)
            except RagError as e:
                return gr.update(), gr.update(), gr.update(), gr.update(), f"⚠️ {md_text(e)}"
            pick = name if name in service.collection_names(user=user) else gr.update()
            return messages, past, cid, pick, ""

        def on_rename(cid, title, request: gr.Request):
            user = request_user(request)
            try:
                if cid is None:
                    raise HistoryError("pick a conversation first")
                service.history.rename(cid, title, owner=user or "")
            except RagError as e:
                return gr.update(), f"⚠️ {md_text(e)}", gr.update()
            return gr.update(choices=service.conversation_choices(user=user), value=cid), "Renamed.", ""

        def on_forget(cid, request: gr.Request):
            user = request_user(request)
            try:
                if cid is None:
                    raise HistoryError("pick a conversation first")
                service.history.delete(cid, owner=user or "")
            except RagError as e:
                return gr.update(), gr.update(), gr.update(), gr.update(), f"⚠️ {md_text(e)}"
            return gr.update(choices=service.conversation_choices(user=user), value=None), [], [], None, \
                "Conversation deleted."

        def on_export(cid, request: gr.Request):
            import tempfile

            try:
                if cid is None:
                    raise HistoryError("pick a conversation first")
                text = service.history.export_markdown(cid, owner=request_user(request) or "")
            except RagError as e:
                return None, f"⚠️ {md_text(e)}"
            folder = Path(tempfile.mkdtemp(prefix="rag-export-"))
            path = folder / f"conversation-{int(cid)}.md"
            path.write_text(text, encoding="utf-8")
            return str(path), ""

        def on_new():
            return [], [], None, gr.update(value=None)

        def doc_views(name, user):
            """The documents table and the remove picker of collection `name`."""
            try:
                rows = service.documents(name, user=user)
            except RagError:
                rows = []
            return gr.update(value=rows), gr.update(choices=[r[0] for r in rows], value=None)

        def on_docs(name, request: gr.Request):
            return doc_views(name, request_user(request))

        def on_remove(name, source, request: gr.Request):
            user = request_user(request)
            try:
                note = md_text(service.remove_document(name, source, user=user))
            except RagError as e:
                note = f"⚠️ {md_text(e)}"
            return (note, *doc_views(name, user), service.status(name, user=user))

        def on_rescan(name, request: gr.Request):
            user = request_user(request)
            try:
                note = md_text(service.rescan(name, user=user))
            except RagError as e:
                note = f"⚠️ {md_text(e)}"
            return (note, *doc_views(name, user), service.status(name, user=user))

        # Gradio finds gr.Request by its annotation, which postponed evaluation leaves a string
        for fn in (on_upload, on_cancel_upload, on_message, on_pick, on_create, on_delete, on_open,
                   on_docs, on_remove, on_rescan, on_conversation, on_rename, on_forget, on_export):
            fn.__annotations__["request"] = gr.Request
        ask_steps = dict(fn=show_question, inputs=[box, chat], outputs=[box, send, chat, pending],
                         queue=False, api_visibility="private")
        answer_step = dict(fn=on_message, inputs=[pending, chat, turns, template, k, collection, conv_id],
                           outputs=[chat, turns, conv_id, conversations, history_note], concurrency_id="llm", concurrency_limit=concurrency,
                           api_visibility="private", show_progress="minimal",
                           show_progress_on=[chat])  # the queue position shows in the chat alone
        for trigger in (box.submit, send.click):
            answered = trigger(**ask_steps).then(**answer_step)
            answered.success(unlock, outputs=[box, send], queue=False, api_visibility="private")
            # refused ("busy, try again"): the question goes back from the chat to the box
            answered.failure(take_back, inputs=[pending, chat], outputs=[box, send, chat],
                             queue=False, api_visibility="private")
        # reading and naming things is quick: not queued behind answers (nor counted against the
        # per-client queue allowance, which a page's opening would otherwise use up)
        quick = dict(api_visibility="private", queue=False)
        clear.click(on_new, outputs=[chat, turns, conv_id, conversations], **quick)
        conversations.input(on_conversation, inputs=conversations,
                            outputs=[chat, turns, conv_id, collection, history_note], **quick)
        rename.click(on_rename, inputs=[conv_id, new_title], outputs=[conversations, history_note, new_title],
                     **quick)
        forget.click(on_forget, inputs=conv_id, outputs=[conversations, chat, turns, conv_id, history_note],
                     **quick)
        export.click(on_export, inputs=conv_id, outputs=[exported, history_note], **quick)
        upload = files.upload(on_upload, inputs=[files, collection], outputs=[upload_note, status],
                              api_name="add_documents", preprocess=False)
        stop.click(on_cancel_upload, outputs=[upload_note, status], cancels=[upload], queue=False,
                   api_name="cancel_upload")
        collection.change(on_pick, inputs=collection, outputs=[status, doc_table, doc_pick], **quick)
        upload.then(on_docs, inputs=collection, outputs=[doc_table, doc_pick], **quick)
        # the uploaded files were taken (added or refused, and deleted from the upload folder):
        # the box empties, so a later upload cannot send them again
        upload.then(lambda: None, outputs=files, **quick)
        remove.click(on_remove, inputs=[collection, doc_pick], outputs=[doc_note, doc_table, doc_pick, status],
                     api_visibility="private", concurrency_id="index")
        scan.click(on_rescan, inputs=collection, outputs=[doc_note, doc_table, doc_pick, status],
                   api_visibility="private", concurrency_id="index")
        create.click(on_create, inputs=[new_name, shared], outputs=[collection, collection_note, new_name], **quick)
        drop.click(on_delete, inputs=collection, outputs=[collection, collection_note], **quick)
        demo.load(on_open, inputs=collection, outputs=[collection, status, doc_table, doc_pick, conversations],
                  **quick)

        def on_model(name, request: gr.Request):
            """Load the picked model (the next questions wait for it); a broken file leaves the
            one in use in place and the picker on it. The operator's alone."""
            user = request_user(request)
            if not service.is_operator(user):
                yield service.use_model(name, user=user), gr.update(), gr.update()
                return
            yield f"Loading {md_text(str(name or '?'))} ...", gr.update(), gr.update()
            note = service.use_model(name, user=user)
            yield note, service.status(), gr.update(value=service.model_name())

        def refresh_models(request: gr.Request):  # a model pulled while the app runs shows at the next page load
            models = service.model_choices() if service.is_operator(request_user(request)) else []
            return gr.update(choices=models, value=service.model_name() if models else None, visible=bool(models))

        on_model.__annotations__["request"] = refresh_models.__annotations__["request"] = gr.Request

        # `input`, not `change`: putting the picker back after a failed load is not a new pick
        picker.input(on_model, inputs=picker, outputs=[model_note, status, picker], concurrency_id="llm",
                     api_visibility="private", show_progress="minimal")
        demo.load(refresh_models, outputs=picker, api_visibility="private")

        def ask(question: str, template: str = "auto", top_k: int | None = None,
                history: list[list[str]] | None = None, collection: str | None = None,
                request: gr.Request = None) -> dict:
            """Answer a question from the indexed documents. Returns the answer, whether it
            abstained, the citations ([n] marker, source, heading, score, chunk text), every
            retrieved passage (hits), timings and token usage. `template`: auto (chosen per
            question), few_shot, zero_shot, cot or extract; `top_k`: passages retrieved, 1 to 12 (default: the app's); `history`:
            up to 20 [question, answer] pairs of earlier turns; `collection`: the collection to
            ask (default: the default one)."""
            return api_ask(service, question, template, top_k, history, collection, request_user(request))

        def collections(request: gr.Request = None) -> list[str]:
            """The names of the collections you may ask."""
            return service.collection_names(user=request_user(request))

        def create_collection(name: str, shared: bool = False, request: gr.Request = None) -> str:
            """Create an empty collection (yours, unless shared); its name."""
            return _api_call(service.create_collection, name, user=request_user(request), shared=bool(shared))

        def delete_collection(name: str, request: gr.Request = None) -> str:
            """Delete one of your collections: its documents go to the trash folder."""
            _api_call(service.delete_collection, name, user=request_user(request))
            return name

        def documents(collection: str | None = None, request: gr.Request = None) -> list[dict]:
            """The documents of a collection: source, type, size (bytes), chunks, indexed (time)."""
            from dataclasses import asdict

            user = request_user(request)
            return [asdict(d) for d in _api_call(lambda: list_documents(service.get(collection or None, user=user)))]

        def remove_document_(collection: str | None, source: str, request: gr.Request = None) -> str:
            """Take a document out of a collection: its chunks leave the index, its file goes to the trash."""
            return _api_call(service.remove_document, collection or None, source, user=request_user(request))

        def rescan_(collection: str | None = None, request: gr.Request = None) -> str:
            """Index what changed in a collection's folder; remove what is gone from it."""
            return _api_call(service.rescan, collection or None, user=request_user(request))

        for fn in (ask, collections, create_collection, delete_collection, documents, remove_document_, rescan_):
            fn.__annotations__["request"] = gr.Request
        gr.api(documents, api_name="documents")
        gr.api(remove_document_, api_name="remove_document", concurrency_id="index")
        gr.api(rescan_, api_name="rescan", concurrency_id="index")
        gr.api(ask, api_name="ask", concurrency_id="llm", concurrency_limit=concurrency)
        gr.api(collections, api_name="collections")
        gr.api(create_collection, api_name="create_collection")
        gr.api(delete_collection, api_name="delete_collection")
    return demo


# ---------------------------------------------------------------- sign-in

def gradio_login(accounts: Accounts):
    """Gradio's auth callback for `accounts` (async, so the check runs in a worker thread). The
    client's address comes from `ClientAddress`, which handles every request first; a throttled
    attempt is refused with 429 and how long to wait."""

    async def login(user: str, password: str) -> bool:
        try:
            return await accounts.sign_in(user, password, CLIENT_ADDRESS.get())
        except SignInThrottled as e:
            from fastapi import HTTPException

            raise HTTPException(status_code=429, headers={"Retry-After": str(e.seconds)}, detail=str(e)) from None

    return login


_OPEN_PATHS = re.compile(r"/(login|logout|favicon\.ico|theme\.css|robots\.txt|manifest\.json|pwa_icon.*"
                         r"|(assets|static|svelte)/.*|gradio_api/(login_check|theme\.css|startup-events))/?")


class SignInGuard:
    """ASGI middleware: with sign-in on, every request but the page itself and what the login
    form needs carries a valid session cookie, or gets 401 with one line. Gradio checks its API
    routes itself; this covers the ones it leaves open (cancel, reset, heartbeat, streams, run
    history, monitoring) and any it adds later. The page shown before signing in (the login
    form) also loses the description of the API that Gradio writes into it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        gradio = scope.get("app")
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or getattr(gradio, "auth", None) is None \
                or _signed_in(scope, gradio):
            return await self.app(scope, receive, send)
        if path == "/":
            return await self.app(scope, receive, _without_api_info(send))
        if _OPEN_PATHS.fullmatch(path):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        return await _refuse(send, 401, "sign in first")


def _signed_in(scope, gradio) -> bool:
    """Whether the request carries the cookie of a session Gradio's login handed out."""
    token = _session_token(scope, gradio)
    return bool(token) and token in gradio.tokens


def _session_token(scope, gradio) -> str:
    """The session token in the request's cookies ("" when none)."""
    cookies = {}
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                cookies[k] = v
    cid = gradio.cookie_id
    return cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}") or ""


_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)


def _without_api_info(send):
    """`send` for the login page: the body is held until complete, then sent without the API
    description (endpoint names, parameters, docstrings)."""
    start, chunks = None, []

    async def filtered(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return None
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return None
        body = _API_INFO.sub(b"window.gradio_api_info = {};</script>", b"".join(chunks))
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return filtered


# ---------------------------------------------------------------- who is asking, and from where

# the client address of the request being handled, for the sign-in throttle (Gradio calls the
# auth callback with a user name and a password only)
CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("rag_client_address", default="?")

_PROXY_HEADERS = frozenset({b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port",
                            b"x-forwarded-prefix", b"x-forwarded-server", b"x-real-ip", b"forwarded"})


def _trusted_peer(peer: str, trusted: tuple) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class ClientAddress:
    """ASGI middleware: a request's client address is the connection's peer. With trusted proxies
    (--trusted-proxies), a request that comes through one of them is from the client its
    X-Forwarded-For names (`rag.hosts.client_address`); from anyone else, the proxy headers are
    taken out before Gradio sees them: they would make the address every per-client limit counts
    by (queue places, upload allowance, sign-in attempts), and the root URL Gradio writes into
    the page, whatever the client likes. uvicorn's own reading of X-Forwarded-For, which believes
    any client on this machine, is switched off by `launch_app`."""

    def __init__(self, app, trusted: tuple = ()) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        client = scope.get("client")
        peer = client[0] if client else ""
        headers = list(scope.get("headers") or [])
        if self.trusted and _trusted_peer(peer, self.trusted):
            forwarded = ", ".join(v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for")
            address = client_address(peer, forwarded or None, self.trusted)
        else:
            address = peer
            headers = [(k, v) for k, v in headers if k not in _PROXY_HEADERS]
        port = client[1] if client and address == peer else 0
        scope = {**scope, "client": (address, port) if address else client, "headers": headers}
        token = CLIENT_ADDRESS.set(address or "?")
        try:
            return await self.app(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(token)


def _origin_allowed(origin: str, host: str | None, allowed: frozenset[str], server_port: int | None) -> bool:
    """Whether a request that a page at `origin` sent to the server called `host` (its Host
    header) comes from this app's own pages: the same port, and the same name or another name
    this server answers to ("*" in --allowed-hosts does not make every site's pages ours)."""
    from urllib.parse import urlsplit

    try:
        o = urlsplit(origin.strip())
        o_port = o.port or {"http": 80, "https": 443}.get(o.scheme)
    except ValueError:
        return False
    if o.scheme not in ("http", "https") or not o.hostname:  # "null": a sandboxed page or a file
        return False
    o_name = o.hostname.lower()
    if host:
        h_name = host_name(host)
        _, colon, tail = host.rpartition(":")
        h_port = int(tail) if colon and tail.isdigit() and not host.endswith("]") else o_port
    else:
        h_name, h_port = None, server_port
    if o_port != h_port:
        return False
    return o_name == h_name or o_name in (allowed - {"*"})


class OriginGuard:
    """ASGI middleware: a request that can change something (any method but GET, HEAD and
    OPTIONS, and websocket handshakes) which says it comes from a page of another site (its
    Origin header) is refused with 403 before it is read. Browsers send Origin with every such
    request, and a multipart upload or a form post from any page needs no CORS permission: a
    page on evil.example could otherwise make a visitor's browser upload files here or sign in.
    Clients that are not browsers send no Origin and are judged by everything else."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" or (scope["type"] == "http" and scope["method"] not in self.SAFE):
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin")
            host = headers.get(b"host")
            server = scope.get("server") or (None, None)
            if origin is not None and not _origin_allowed(origin.decode("latin-1"),
                                                          host.decode("latin-1") if host else None,
                                                          self.allowed, server[1]):
                shown = origin.decode("latin-1")[:100]
                log.warning("refused a %s to %s from a page of %s", scope.get("method", "websocket"),
                            scope.get("path"), shown)
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await _refuse(send, 403, f"refused: a request from a page of another site ({shown})")
        return await self.app(scope, receive, send)


# ---------------------------------------------------------------- a fair queue

BUSY = "the server is busy ({why}); try again in a minute"


def limit_queue(demo, per_client: int) -> None:
    """Refuse a new queued request from a client (signed-in user, else address) that already
    has `per_client` requests waiting or running, as Gradio refuses one when the whole queue is
    full: HTTP 503, which the page shows as "busy, try again" and gradio_client raises."""
    queue = demo._queue
    push = queue.push

    def owner(event) -> str:
        return client_key(event.username, getattr(event.request, "client", None))

    async def fair_push(body, request, username):
        key = client_key(username, request.client)
        if queue.max_size is not None and len(queue) >= queue.max_size:
            return False, BUSY.format(why=f"{len(queue)} requests waiting"), "queue_full"
        if per_client:
            waiting = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
            running = [e for job in queue.active_jobs if job for e in job]
            mine = sum(owner(e) == key for e in waiting + running)
            if mine >= per_client:
                log.info("refused a request from %s: %d already queued", key, mine)
                return False, BUSY.format(why=f"you have {mine} requests waiting, the most one "
                                                f"client may have"), "queue_full"
        return await push(body, request, username)

    queue.push = fair_push


def _print_hash_line(user: str | None) -> int:
    if sys.stdin.isatty():
        import getpass

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
    p.add_argument("--corpus", help="documents folder; uploads are saved here (default: corpus/)")
    p.add_argument("--history", default=os.environ.get("RAG_HISTORY") or str(Path(__file__).resolve().parent
                                                                             / "history.db"),
                   help="SQLite file of the saved conversations (default: history.db; also RAG_HISTORY)")
    add_model_args(p)
    p.add_argument("--top-k", type=int, help=f"passages retrieved per question, 1 to {CHAT_MAX_TOP_K} (default 4)")
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
        max_file_size=transport, theme=theme, css=CSS, footer_links=["api"],
        auth=gradio_login(accounts) if accounts else None,
        auth_message="Sign in to ask your documents." if accounts else None,
        share=False, mcp_server=False, run_history=False, enable_monitoring=False,
        prevent_thread_lock=True, quiet=prevent_thread_lock,
        app_kwargs={"middleware": [Middleware(HostGuard, allowed=allowed),
                                   Middleware(OriginGuard, allowed=allowed),
                                   Middleware(ClientAddress, trusted=trusted),
                                   Middleware(SignInGuard),
                                   Middleware(UploadGuard, max_request_bytes=per_request,
                                              allowance=service.allowance)]})
    # Gradio puts its CORS and compression layers outside the app's middleware, and its CORS
    # layer answers preflight requests itself: the Host check goes outside them too, so no
    # request for another name gets any answer but 400
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
    names = ("index", "corpus", "model", "embedder", "n_gpu_layers", "n_threads", "n_ctx", "top_k",
             "llm_url", "llm_model", "store", "milvus_uri", "models_dir", "collections")
    try:
        settings = Settings.load(**{n: getattr(args, n) for n in names})
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
        from rag.watch import CorpusWatcher

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


if __name__ == "__main__":
    sys.exit(main())
