"""The chat front end: `python app.py` opens http://127.0.0.1:7860.

One `RAG` (models and index) is loaded at start and shared by every browser tab and API
call. Answers stream token by token, then the cited passages are listed under them. Uploaded
documents are copied into the corpus folder and indexed incrementally, so they survive a
restart. Every failure the user can cause or meet becomes a one-line message in the page.
"""
from __future__ import annotations

import argparse
import asyncio
import contextvars
import hashlib
import hmac
import html
import json
import logging
import math
import os
import re
import shutil
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # private: the app calls no one

from rag import RAG, Answer, Settings, Turn  # noqa: E402
from rag import ingest  # noqa: E402
from rag.collections import DEFAULT, CollectionExists, CollectionRAGs, Collections, check_name  # noqa: E402
from rag.documents import list_documents, remove_document, rescan, trash_path  # noqa: E402
from rag.history import History, TurnRecord  # noqa: E402
from rag.viewer import SourceView, source_view  # noqa: E402
from rag.cli import add_model_args  # noqa: E402
from rag.serve import is_loopback  # noqa: E402
from rag.errors import ConfigError, DocumentError, HistoryError, QueryError, RagError  # noqa: E402
from rag.hosts import HostGuard, allowed_hosts, client_address, host_name, parse_proxies  # noqa: E402
from rag.readers.budget import ReadLimits  # noqa: E402

log = logging.getLogger("rag.app")

TEMPLATE_CHOICES = [("auto (per question)", "auto"), ("few-shot", "few_shot"), ("zero-shot", "zero_shot"),
                    ("chain-of-thought", "cot"), ("extractive", "extract")]
UPLOAD_TYPES = sorted(ingest.SUPPORTED)
# abstaining is an answer, not a failure, so it carries no warning sign
ABSTAIN_HINT = "<em>None of the indexed passages answers this{why}. Try rephrasing, or add documents.</em>"
SOURCES_HEADER = "<strong>Sources</strong> (open one to read the passage)"
# the chat shows text exactly as written: newlines break lines, nothing is rendered
CSS = ("#chat .md { white-space: pre-wrap; }\n"
       "#chat .md small { opacity: 0.7; }\n"  # a passage's neighbouring text, around it
       "#chat .md u.unsupported { text-decoration: underline wavy #c0392b; }")


# ---------------------------------------------------------------- text shown in the page
#
# Documents are not trusted: a passage, heading or file name may hold HTML or Markdown that
# would make the reader's browser fetch something (an <img> beacon, a Markdown image) or hide
# what it says. The chat renders its messages as HTML (Markdown off), so every piece of text
# from a document, the model or the user goes through `html_text`; the app's own markup
# (the bold "Sources" header, the italic hint) is the only HTML in it. Markdown components
# (header, upload note) get `md_text`, which leaves no Markdown or HTML construct in place.

def html_text(text: str) -> str:
    """`text` as HTML that displays exactly these characters and makes no element."""
    return html.escape(str(text), quote=False)


_MD_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(text: str) -> str:
    """`text` as Markdown that displays exactly these characters, within a line: white space
    runs become one space, the marks that start emphasis, code, links, images, autolinks,
    tables, LaTeX or a heading are escaped, and HTML's three special characters become entities
    (no tag, comment or entity). Hyphens, dots and commas, which mean nothing inside a line,
    stay as they are, so file names read as written."""
    text = " ".join(str(text).split())
    return re.sub(r"[\\`*_{}\[\]()#+!|~:$^<>&]",
                  lambda m: _MD_ENTITY.get(m.group()) or "\\" + m.group(), text)


# ---------------------------------------------------------------- the service behind the page

MB = 1 << 20
BUILD_WAIT = 120.0  # seconds an upload waits for another one's index build of the same collection


@dataclass(frozen=True)
class UploadLimits:
    """What one user may upload (0: no limit): bytes per file, files per upload, and bytes added
    in all since the app started (per signed-in user, or per client address without sign-in)."""

    file_bytes: int = 50 * MB
    files: int = 20
    total_bytes: int = 500 * MB


def _mb(n: int) -> str:
    """A size for people: 50 MB, 1.5 MB, 2.4 KB, 300 bytes."""
    if n >= 10 * MB or n and n % MB == 0:
        return f"{n / MB:.0f} MB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


class UploadCancelled(Exception):
    """The user cancelled the upload (raised where the work can stop: between files, between
    embedding batches); nothing it brought is kept."""


@dataclass
class UploadReport:
    """What became of each uploaded file."""

    added: list[str] = field(default_factory=list)  # names as saved in the corpus folder
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, reason)
    n_chunks: int = 0
    cancelled: bool = False

    def markdown(self) -> str:
        lines = [f"✓ **{md_text(name)}** is indexed and searchable" for name in self.added]
        lines += [f"⚠️ **{md_text(name)}** not added: {md_text(reason)}" for name, reason in self.rejected]
        if self.cancelled:
            lines.insert(0, "Upload cancelled: nothing from it was added.")
        if self.added:
            lines.append(f"The index now holds {self.n_chunks} chunks.")
        return "\n\n".join(lines) or "No files were given."


@dataclass
class _RawUpload:
    """One upload request's files in Gradio's upload folder, charged to `owner`: `nbytes` is the
    request's declared length (an upper bound of what it stored); `paths` stays None while the
    request is received, then names the files it stored (resolved)."""

    owner: str
    nbytes: int
    paths: set[str] | None = None
    settled: float = 0.0


class Allowance:
    """What each owner (a signed-in user, else a client address) has stored on this server since
    it started, against `total` bytes (0: no limit): the files it uploaded that no `/add_documents`
    has taken yet ("raw" uploads, in Gradio's upload folder), plus the copies added to a corpus.

    Raw uploads count from the moment they are sent: otherwise a client could store any amount
    in Gradio's upload folder (kept a day) by never asking to add what it uploaded. A raw upload
    that is added or refused stops counting as raw (its file is deleted; an added copy counts
    as added instead). Hold `lock` around `used` and the `_` methods."""

    FORGET_AFTER = 3600.0  # seconds: a raw upload whose files are gone (Gradio's cache cleaning) stops counting

    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.lock = threading.Lock()
        self._clock = clock
        self._added: dict[str, int] = {}
        self._raw: list[_RawUpload] = []

    def used(self, owner: str) -> int:
        """Bytes `owner` has stored: raw uploads and added copies."""
        now = self._clock()
        self._raw = [r for r in self._raw if r.paths is None or now - r.settled < self.FORGET_AFTER
                     or any(os.path.exists(p) for p in r.paths)]
        return self._added.get(owner, 0) + sum(r.nbytes for r in self._raw if r.owner == owner)

    def over(self, owner: str, nbytes: int) -> str:
        """Why `owner` may not store `nbytes` more ("" when they may)."""
        used = self.used(owner)
        if self.total and used + nbytes > self.total:
            return f"over your upload allowance of {_mb(self.total)} ({_mb(used)} used)"
        return ""

    def reserve_raw(self, owner: str, nbytes: int) -> _RawUpload | str:
        """Charge an upload request of `nbytes` to `owner` before it is received: the charge, or
        the one-line reason it is refused."""
        with self.lock:
            if why := self.over(owner, nbytes):
                return why
            raw = _RawUpload(owner, nbytes)
            self._raw.append(raw)
            return raw

    def settle_raw(self, raw: _RawUpload, paths: list[str]) -> None:
        """The request stored `paths`: they count (at the request's length) until taken."""
        with self.lock:
            raw.paths = {os.path.realpath(p) for p in paths}
            raw.settled = self._clock()
            if not raw.paths:
                self._drop(raw)

    def release_raw(self, raw: _RawUpload) -> None:
        """The request stored nothing (refused, failed, cut off)."""
        with self.lock:
            self._drop(raw)

    def _drop(self, raw: _RawUpload) -> None:
        self._raw = [r for r in self._raw if r is not raw]

    def _is_raw(self, owner: str, path: str) -> bool:
        return any(r.owner == owner and r.paths and path in r.paths for r in self._raw)

    def _take_raw(self, owner: str, paths: list[str]) -> list[str]:
        """`owner`'s raw uploads among `paths` were added or refused: they stop counting as raw.
        Returns those no other raw upload names, for the caller to delete."""
        taken, mine = set(paths), set()
        for r in list(self._raw):
            if r.owner != owner or not r.paths or not r.paths & taken:
                continue
            for p in r.paths & taken:
                mine.add(p)
                try:
                    r.nbytes -= min(os.path.getsize(p), r.nbytes)
                except OSError:
                    pass
            r.paths -= taken
            if not r.paths:  # the rest of the request's length was its multipart framing
                self._drop(r)
        still = set().union(*(r.paths or set() for r in self._raw))
        return sorted(mine - still)

    def _add(self, owner: str, nbytes: int) -> None:
        self._added[owner] = max(0, self._added.get(owner, 0) + nbytes)


class UploadJournal:
    """Which copies in corpus folders this app made for uploads that are not indexed yet, so the
    next start can tell an upload cut off by a crash (kill -9, power loss, out of memory while
    indexing) from a file someone put in the folder by hand.

    Layout, under the collections root: `.uploads/<instance>/lock`, held (flock) by the running
    app, and `.uploads/<instance>/<token>.json`, one record per copy: collection, file name,
    sha256. A record is written once the copy is in the corpus folder and removed once the
    upload's index build is committed or its copies are removed. A start reconciles the records
    of every instance whose lock is free (its process is gone): see `ChatService.reconcile_uploads`.
    Nothing is written until the first upload, so an app that never uploads leaves no trace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / ".uploads"
        self.instance = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._lock_fh = None
        self._mutex = threading.Lock()

    def _folder(self) -> Path:
        import fcntl

        folder = self.root / self.instance
        with self._mutex:
            if self._lock_fh is None:
                folder.mkdir(parents=True, exist_ok=True)
                fh = (folder / "lock").open("a+")
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # new folder: never taken
                self._lock_fh = fh
        return folder

    def record(self, collection: str, path: Path, sha256: str) -> Path:
        """Note that `path` (in `collection`'s corpus) is a copy an upload made, not yet indexed."""
        folder = self._folder()
        rec = folder / f"{os.urandom(8).hex()}.json"
        tmp = folder / f".{rec.name}.tmp"
        tmp.write_text(json.dumps({"collection": collection, "name": path.name, "sha256": sha256}))
        os.replace(tmp, rec)
        return rec

    def part_tag(self) -> str:
        """What the temporary copies of this app's uploads carry in their names."""
        return self.instance

    def orphans(self) -> list[tuple[str, Path]]:
        """(instance, folder) of journals whose app is gone, each locked for the caller (the lock
        goes with the folder)."""
        import fcntl

        out = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            if folder.name == self.instance or not folder.is_dir():
                continue
            try:
                fh = (folder / "lock").open("a+")
            except OSError:
                continue
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its app is running: its uploads are its own
                fh.close()
                continue
            out.append((folder.name, folder))
            fh.close()  # (a race with a second start reconciling the same folder only repeats a move)
        return out


class ChatService:
    """The loaded `RAG`, or the one-line reason it could not be made (e.g. a missing model file).

    The page stays up either way: a broken setting is shown in every answer until it is fixed.
    """

    def __init__(self, settings: Settings | None = None, *, rag: RAG | None = None,
                 limits: UploadLimits | None = None, history: History | None = None,
                 operators: frozenset[str] | None = None, **overrides) -> None:
        self.rag: RAG | None = rag
        self.history = history  # saved conversations; None: not saved
        self.error = ""
        self.limits = limits or UploadLimits()
        self.allowance = Allowance(self.limits.total_bytes)  # bytes stored, by owner (user or client address)
        # who may switch the model and take documents out of the operator's collections (default,
        # and those made with the CLI); None: anyone (no sign-in, one local user)
        self.operators = operators
        self.collections: Collections | None = None
        self.rags: CollectionRAGs | None = None
        self.journal: UploadJournal | None = None
        if rag is None:
            try:
                s = settings if settings is not None else Settings.load(**overrides)
                # the chat serves the corpus folder: a missing index is built from it
                self.rag = RAG(s, build_missing=True)
            except RagError as e:
                self.error = str(e)
        if getattr(self.rag, "settings", None) is not None:  # (a stand-in RAG may have none)
            self.collections = Collections.from_settings(self.rag.settings)
            self.rags = CollectionRAGs(self.rag, self.collections)
            self.journal = UploadJournal(self.collections.root)
            self.reconcile_uploads()

    @property
    def corpus(self) -> Path:
        return Path(self.rag.settings.corpus)

    def get(self, collection: str | None = None, *, user: str | None = None) -> RAG:
        """The RAG of `collection` (None: the default) as `user` may see it (None: no sign-in)."""
        if self.rag is None:
            raise ConfigError(self.error)
        if self.rags is None:
            check_name(collection or DEFAULT)
            return self.rag
        return self.rags.get(collection, user=user)

    # ---------------------------------------------------------------- collections

    def collection_names(self, *, user: str | None = None) -> list[str]:
        return [c.name for c in self.collections.list(user=user)] if self.collections else [DEFAULT]

    def public_collection_names(self) -> list[str]:
        """The collections every user may see whoever asks: the ones nobody owns (the default and
        those made with the CLI). What the page offers before it knows who is asking (its config
        is the same for everyone), so no private or shared name is in it."""
        if self.collections is None:
            return [DEFAULT]
        return [c.name for c in self.collections.list(user=None) if not c.owner]

    def is_operator(self, user: str | None) -> bool:
        """Whether `user` runs this app: anyone without sign-in, else those named by --admins."""
        return user is None or self.operators is None or user in self.operators

    def create_collection(self, name: str, *, user: str | None = None, shared: bool = False) -> str:
        """A new empty collection owned by `user`; its name. A taken name is refused with the
        same line whoever holds it, so a user cannot tell another's private collection exists
        from one they can see (only that the name is not free)."""
        if self.collections is None:
            raise ConfigError(self.error)
        name = check_name(str(name or "").strip())
        try:
            return self.collections.create(name, owner=user or "", shared=shared).name
        except CollectionExists:
            raise ConfigError(f"the name {name!r} is not available; choose another") from None

    def delete_collection(self, name: str, *, user: str | None = None) -> Path:
        if self.collections is None:
            raise ConfigError(self.error)
        self._operator_only(name, user, "delete collection {name!r}")
        where = self.collections.delete(name, user=user)
        self.rags.forget(name)
        return where

    def _operator_only(self, collection: str | None, user: str | None, what: str) -> None:
        """ConfigError unless `user` may do `what` (a format of the collection's `name`) to
        `collection`: a collection nobody owns (the default, or one made with the CLI) is the
        operator's; every user may add to it and ask it."""
        if self.is_operator(user) or self.collections is None:
            return
        c = self.collections.get(collection, user=user)
        if not c.owner:
            raise ConfigError("only the operator of this app can " + what.format(name=c.name))

    # ---------------------------------------------------------------- saved conversations

    def save_turn(self, conversation: int | None, answer: Answer, *, collection: str | None = None,
                  user: str | None = None) -> int | None:
        """Save one answered question into `conversation` (a new one, titled by the question,
        when None); the conversation's id (None when nothing is saved)."""
        if self.history is None:
            return None
        record = turn_record(answer, collection=collection or DEFAULT, rag=self.get(collection, user=user))
        owner = user or ""
        if conversation is None:
            conversation = self.history.create(owner=owner, title=answer.question, collection=collection or DEFAULT)
        self.history.add_turn(conversation, record, owner=owner)
        return conversation

    def conversation_choices(self, *, user: str | None = None) -> list[tuple[str, int]]:
        if self.history is None:
            return []
        return [(f"{c.title} ({c.n_turns})", c.id) for c in self.history.list(owner=user or "")]

    def conversation(self, conversation: int, *, user: str | None = None) -> tuple[list[dict], list[list[str]], str]:
        """A saved conversation as the chat shows it: messages, turns for follow-ups, collection."""
        if self.history is None:
            raise HistoryError("conversations are not saved in this app")
        info = self.history.get(conversation, owner=user or "")
        try:  # the collection's index as it is now: its neighbours of passages still indexed
            version = _live_version(self.get(info.collection, user=user))
        except RagError:
            version = None
        messages, turns = [], []
        for t in self.history.turns(conversation, owner=user or ""):
            messages.append({"role": "user", "content": html_text(t.question)})
            messages += answer_messages(stored_answer(t), version)
            turns.append([t.question, t.answer[:MAX_ANSWER_CHARS]])
        return messages, turns[-MAX_HISTORY_TURNS:], info.collection

    # ---------------------------------------------------------------- documents

    def documents(self, collection: str | None = None, *, user: str | None = None) -> list[list]:
        """Rows for the documents table: name, type, chunks, size, indexed at."""
        return [[d.source, d.type, d.n_chunks, _mb(d.size), d.indexed.replace("T", " ")[:19]]
                for d in list_documents(self.get(collection, user=user))]

    def remove_document(self, collection: str | None, source: str, *, user: str | None = None) -> str:
        """Take a document out of the collection; a one-line note of what happened."""
        c = self.writable(collection, user)
        self._operator_only(collection, user, "remove documents from collection {name!r}")
        where = remove_document(self.get(collection, user=user), source, trash=c.trash, lock_wait=BUILD_WAIT)
        moved = f"; the file is in {where.parent.name} of the trash folder" if where else ""
        return f"{source} removed from the index{moved}"

    def rescan(self, collection: str | None = None, *, user: str | None = None, progress: bool = False) -> str:
        self.writable(collection, user)
        report = rescan(self.get(collection, user=user), progress=progress, lock_wait=BUILD_WAIT)
        return f"Re-scanned: {report.summary()}"

    def writable(self, collection: str | None, user: str | None):
        """The collection, if `user` may change it; ConfigError otherwise."""
        if self.collections is None:
            raise ConfigError(self.error or "this app has no collections")
        c = self.collections.get(collection, user=user)
        if not c.writable_by(user):
            raise ConfigError(f"collection {c.name!r} belongs to {c.owner}; only they can add or remove documents")
        return c

    def warm_up(self) -> str:
        """Load models and index now; returns the error text ("" when all is well)."""
        try:
            self.get().warm_up()
            return ""
        except RagError as e:
            return str(e)

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, name) of the GGUFs the model picker offers: the shipped default first, then
        the models folder, and the model in use wherever it lives; none with an LLM server.
        A model is named by its file name (a second file of that name gets " (2)"): where the
        operator keeps files is not the page's business."""
        return [(label, name) for label, name, _ in self._models()]

    def model_name(self) -> str | None:
        """The picker's name of the model in use (None with an LLM server)."""
        current = self.rag.model_path if self.rag is not None else ""
        return next((name for _, name, path in self._models() if path == current), None)

    def _models(self) -> list[tuple[str, str, str]]:
        if self.rag is None or not self.rag.model_path:
            return []
        from rag.models import local_models

        found = [(m.label, str(m.path)) for m in local_models(self.rag.settings.models_dir)]
        if self.rag.model_path not in {path for _, path in found}:
            found.append((Path(self.rag.model_path).name, self.rag.model_path))
        out, names = [], set()
        for label, path in found:
            name, n = Path(path).name, 1
            while name in names:
                n += 1
                name = f"{Path(path).name} ({n})"
            names.add(name)
            out.append((label, name, path))
        return out

    def use_model(self, name: str, *, user: str | None = None) -> str:
        """Answer with the picker's model `name` from the next question on; one line saying how
        it went. Only the operator switches the model: it is the one every user's answers use."""
        if not self.is_operator(user):
            return "⚠️ only the operator of this app can switch the model"
        if self.rag is not None and self.rag.settings.llm_url:
            return "⚠️ answers come from the LLM server; choose its model there"
        path = next((p for _, n, p in self._models() if n == name), None)
        if path is None:
            return f"⚠️ {md_text(f'no model named {str(name)[:80]!r} on this machine')}"
        try:
            self.get().use_model(path)
        except RagError as e:
            return f"⚠️ {md_text(self.public(e))}"
        return f"✓ Answering with {md_text(Path(path).name)}."

    def public(self, e) -> str:
        """An error's text as a user may read it: model paths become file names."""
        dirs = []
        settings = getattr(self.rag, "settings", None)
        if settings is not None:
            from rag.config import default_llm_path

            dirs = [settings.models_dir, default_llm_path()]
            if settings.model:
                dirs.append(settings.model)
            if getattr(self.rag, "model_path", ""):
                dirs.append(self.rag.model_path)
        return public_text(str(e), folders=[str(Path(d).parent) if str(d).endswith(".gguf") else str(d)
                                            for d in dirs if d])

    def status(self, collection: str | None = None, *, user: str | None = None) -> str:
        """One line for the header: model, embedder, index and its size, or what is wrong."""
        if self.rag is None:
            return f"⚠️ {md_text(self.public(self.error))}"
        try:
            rag = self.get(collection, user=user)
        except RagError as e:
            return f"⚠️ {md_text(self.public(e))}"
        index = Path(rag.settings.index)
        name = f"**Collection** {md_text(collection)} · " if collection and collection != DEFAULT else ""
        try:
            store = rag.store
        except RagError as e:
            if name and "no index" in str(e):  # a new collection: nothing uploaded yet
                return f"**Model** {md_text(rag.llm.name)} · {name}empty: add documents to it"
            return f"**Model** {md_text(rag.llm.name)} · ⚠️ index {md_text(index)}: {md_text(self.public(e))}"
        return (f"**Model** {md_text(rag.llm.name)} · **Embedder** {md_text(rag.embedder.name)} · "
                f"{name}**Index** {md_text(index.name)} ({md_text(store.version)}): {len(store)} chunks from "
                f"{len(store.manifest['documents'])} documents")

    def add_uploads(self, files: list, *, upload_dir: str | Path, owner: str = "", progress: bool = False,
                    cancel: threading.Event | None = None,
                    on_file: Callable[[int, int, str], None] | None = None,
                    collection: str | None = None, user: str | None = None) -> UploadReport:
        """Add files a browser uploaded: only those inside Gradio's upload folder `upload_dir`,
        within `self.limits` for `owner` (files over a limit are refused, one line each, and the
        rest added).

        An API client can send a file entry whose path names any server file (or a URL); such an
        entry is refused and logged, never read, so nothing outside the user's uploads can reach
        the corpus and be quoted back by `/ask`. `owner`'s own uploads (counted against the
        allowance when they were sent) are deleted from the upload folder once added or refused:
        the corpus holds the copy that counts.
        """
        report = UploadReport()
        corpus = self.writable(collection, user).corpus if self.rag is not None else Path()
        accepted: list[tuple[Path, str]] = []
        for entry in files or []:
            path, name = _upload_entry(entry)
            inside = _inside(path, Path(upload_dir)) if path else None
            if inside is None:
                log.warning("refused an upload entry outside the upload folder: %r", path or entry)
                report.rejected.append((name or "?", "not a file uploaded to this app"))
                continue
            accepted.append((inside, name or inside.name))
        lim, allowance = self.limits, self.allowance
        kept: list[Path] = []
        reserved = 0
        with allowance.lock:  # the allowance is reserved now and settled below
            used = allowance.used(owner)
            for path, name in accepted:
                try:
                    size = path.stat().st_size
                except OSError as e:
                    report.rejected.append((name, f"cannot read ({e.strerror or e})"))
                    continue
                counted = allowance._is_raw(owner, str(path))  # already within the allowance
                if lim.files and len(kept) >= lim.files:
                    reason = f"over the limit of {lim.files} files per upload"
                elif lim.file_bytes and size > lim.file_bytes:
                    reason = f"{_mb(size)}, over the limit of {_mb(lim.file_bytes)} per file"
                elif lim.total_bytes and not counted and used + reserved + size > lim.total_bytes:
                    reason = (f"over your upload allowance of {_mb(lim.total_bytes)} "
                              f"({_mb(used + reserved)} used)")
                else:
                    kept.append(path)
                    reserved += 0 if counted else size
                    continue
                report.rejected.append((name, reason))
            allowance._add(owner, reserved)
        added = UploadReport()
        try:
            if kept:
                added = self.add_files(kept, progress=progress, cancel=cancel, on_file=on_file,
                                       collection=collection, user=user)
        finally:
            kept_bytes = sum((corpus / n).stat().st_size for n in added.added if (corpus / n).is_file())
            with allowance.lock:
                allowance._add(owner, kept_bytes - reserved)
                done = allowance._take_raw(owner, [str(p) for p, _ in accepted])
            for p in done:  # the upload folder keeps no second copy of what was added or refused
                Path(p).unlink(missing_ok=True)
        report.added, report.n_chunks, report.cancelled = added.added, added.n_chunks, added.cancelled
        report.rejected += added.rejected
        return report

    def add_files(self, paths: list[str | Path], *, progress: bool = False,
                  cancel: threading.Event | None = None,
                  on_file: Callable[[int, int, str], None] | None = None,
                  collection: str | None = None, user: str | None = None) -> UploadReport:
        """Check, copy into the corpus folder and index the given files (trusted, local paths).

        A file is copied only once it has been read successfully (within the reading budgets of
        the settings), never over an existing one; any failure of one file (whatever the reader
        raised) is that file's one-line reason and the rest go on. If indexing fails the copies
        are removed again and the previous index stays live. A file identical to one already in
        the folder is "already in your documents" only when the index holds it; otherwise that
        file is indexed now (a copy left unindexed earlier is never a trap). Once `cancel` is set
        (checked between files and before indexing; an `UploadCancelled` raised while indexing
        counts the same), the copies are removed, nothing is indexed and the report says so.
        `on_file(i, n, name)` is called before file i of n is checked. Each copy is in the upload
        journal until its index build is committed or it is removed (`reconcile_uploads`).
        """
        rag = self.get(collection, user=user)
        c = self.writable(collection, user)
        corpus = c.corpus
        report = UploadReport()
        saved: list[Path] = []  # copies this upload made: removed again if not indexed
        again: list[Path] = []  # identical files already in the folder but not indexed
        records: list[Path] = []
        corpus.mkdir(parents=True, exist_ok=True)
        limits = ReadLimits.from_settings(rag.settings)
        try:
            indexed = (rag.vector_store.manifest() or {}).get("documents") or {}
        except RagError:
            indexed = {}

        def cancelled(pending: list[str]) -> UploadReport:
            for p in saved:
                p.unlink(missing_ok=True)
            log.info("upload cancelled: %d files not added", len(saved) + len(pending))
            report.cancelled = True
            report.rejected += [(n, "upload cancelled") for n in [p.name for p in saved + again] + pending]
            return report

        try:
            for i, raw in enumerate(paths):
                src = Path(raw)
                name = src.name
                if cancel is not None and cancel.is_set():
                    return cancelled([Path(p).name for p in paths[i:]])
                if on_file is not None:
                    on_file(i, len(paths), name)
                if src.suffix.lower() not in ingest.SUPPORTED:
                    report.rejected.append((name, f"unsupported file type '{src.suffix or name}' "
                                                  f"(supported: {', '.join(UPLOAD_TYPES)})"))
                    continue
                try:
                    doc = ingest.load(src, limits=limits)
                    sha256 = doc.sha256
                    del doc  # only its checks and its hash were wanted: the build reads it again
                    dest, made = _place_copy(src, corpus / name, sha256,
                                             tag=self.journal.part_tag() if self.journal else "")
                except DocumentError as e:
                    report.rejected.append((name, str(e).removeprefix(f"{src}: ")))
                    continue
                except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, is that file's
                    log.exception("upload %s could not be read or saved", name)
                    report.rejected.append((name, _failure_reason(e)))
                    continue
                if not made:
                    if (indexed.get(dest.name) or {}).get("sha256") == sha256:
                        report.rejected.append((name, "the same file is already in your documents"))
                    elif dest not in again:  # left unindexed by an earlier upload or by hand: index it now
                        again.append(dest)
                    continue
                saved.append(dest)
                if self.journal is not None:
                    try:
                        records.append(self.journal.record(c.name, dest, sha256))
                    except OSError as e:  # the upload goes on; only a crash now would leave the copy
                        log.warning("upload journal not written (%s): %s", e.strerror or e, dest)
            if not saved and not again:
                return report
            if cancel is not None and cancel.is_set():
                return cancelled([])
            try:
                # another tab's upload into this collection may be building: wait for it
                built = rag.index([corpus], prune=False, progress=progress, lock_wait=BUILD_WAIT)
            except UploadCancelled:
                return cancelled([])
            except Exception as e:  # noqa: BLE001 - nothing of this upload may stay unindexed
                if not isinstance(e, RagError):
                    log.exception("indexing an upload failed")
                for p in saved:
                    p.unlink(missing_ok=True)
                why = self.public(e) if isinstance(e, RagError) else _failure_reason(e)
                report.rejected += [(p.name, f"indexing failed: {why}") for p in saved + again]
                return report
            failed = {os.path.realpath(p): reason for p, reason in built.skipped}
            for p in saved + again:
                reason = failed.get(os.path.realpath(p))
                if reason is not None:
                    if p in saved:
                        p.unlink(missing_ok=True)
                    report.rejected.append((p.name, reason.removeprefix(f"{p}: ")))
                else:
                    report.added.append(p.name)
            report.n_chunks = built.n_chunks
            return report
        finally:
            for r in records:  # committed, or its copy removed: nothing left to reconcile
                r.unlink(missing_ok=True)

    def reconcile_uploads(self) -> list[Path]:
        """At start: the copies that uploads of an app that is gone (killed while indexing, a
        power cut) left in a corpus folder without getting them indexed are moved to their
        collection's trash folder; where they went.

        Moved rather than indexed: the user was never told they were added, the crash may have
        come from indexing that very file (indexing it again at every start would crash every
        start), and the trash keeps it. A copy the index holds stays. Files put in a corpus
        folder by hand are never touched: only copies the journal names are, and only while
        they are byte for byte what the upload saved."""
        moved: list[Path] = []
        if self.journal is None or self.collections is None:
            return moved
        for instance, folder in self.journal.orphans():
            for rec_path in sorted(folder.glob("*.json")):
                try:
                    rec = json.loads(rec_path.read_text(encoding="utf-8"))
                    c = self.collections.get(str(rec["collection"]))
                    name = Path(str(rec["name"])).name
                    path = c.corpus / name
                    if path.is_file() and not path.is_symlink() and ingest.file_sha256(path) == rec["sha256"]:
                        from rag.collections import manifest_of

                        settings = self.collections.settings_for(self.rag.settings, c.name)
                        documents = (manifest_of(settings) or {}).get("documents") or {}
                        if (documents.get(name) or {}).get("sha256") != rec["sha256"]:
                            dest = trash_path(c.trash, Path(name))
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            shutil.move(str(path), str(dest))
                            moved.append(dest)
                            log.warning("collection %s: %s was uploaded but not indexed when the app stopped; "
                                        "moved to %s (upload it again to add it)", c.name, name, dest)
                except (OSError, ValueError, KeyError, TypeError, RagError) as e:
                    log.warning("upload journal %s: %s", rec_path, e)
                    continue
            for c in self.collections.list():  # temporary copies the killed app was writing
                for part in c.corpus.glob(f".*.{instance}.*.part") if c.corpus.is_dir() else []:
                    part.unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
        return moved


_GGUF_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/]+[\\/])*([^\s'\"\\/]+\.gguf)\b", re.I)


def _failure_reason(e: BaseException) -> str:
    """One line for a failure no reader turned into a DocumentError (a bug, or a library's)."""
    if isinstance(e, OSError) and e.errno is not None:
        return f"cannot read or save it ({e.strerror or e})"
    if isinstance(e, MemoryError):
        return "too large to read (out of memory)"
    detail = " ".join(str(e).split())[:160]
    return f"cannot be read: unexpected {type(e).__name__}{': ' + detail if detail else ''}"


def public_text(text: str, *, folders: list[str] = ()) -> str:
    """`text` with the folders of model files taken out of it, and any other path of a .gguf
    file cut to its file name: users see which model, not where the operator keeps things."""
    for folder in sorted({f.rstrip("/\\") for f in folders if f.strip("/\\.")}, key=len, reverse=True):
        text = text.replace(folder + os.sep, "")
    return _GGUF_PATH.sub(r"\1", text)


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
            return await _refuse(send, 413, f"upload over {_mb(self.max_request_bytes)} in one request")
        if self.allowance is None or not self.allowance.total:
            return await self.app(scope, receive, send)
        owner = scope_owner(scope)
        raw = self.allowance.reserve_raw(owner, int(size))
        if isinstance(raw, str):
            log.info("refused an upload of %s from %s: %s", _mb(int(size)), owner, raw)
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


def _place_copy(src: Path, dest: Path, sha256: str, *, tag: str = "") -> tuple[Path, bool]:
    """Copy `src` to `dest`, or to `name-2.ext`, `name-3.ext`, ... if taken, never over an
    existing file, even when another upload places a file of the same name at the same moment
    (the copy is linked in, which fails on a taken name, rather than renamed over it). Returns
    (where, True), or (the identical file, False) and nothing copied if an identical file is
    already there. The temporary copy's name carries `tag` (the app instance), so a start after
    a crash knows whose it was."""
    import tempfile

    prefix = f".{dest.name}.{tag}." if tag else f".{dest.name}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=dest.parent)  # dot files are never indexed
    os.close(fd)
    part = Path(tmp)
    try:
        shutil.copyfile(src, part)
        candidate, n = dest, 1
        while True:
            if candidate.is_file() and not candidate.is_symlink() and ingest.file_sha256(candidate) == sha256:
                return candidate, False
            if not candidate.exists() and not candidate.is_symlink():
                try:
                    os.link(part, candidate)
                    return candidate, True
                except FileExistsError:
                    continue  # taken between the look and the link: look again
            n += 1
            candidate = dest.with_name(f"{dest.stem}-{n}{dest.suffix}")
    finally:
        part.unlink(missing_ok=True)


# ---------------------------------------------------------------- chat messages

def answer_messages(answer: Answer, version=None) -> list[dict]:
    """The finished answer as chat messages: reasoning (collapsed), the answer, its sources.

    Each source is a collapsed block titled with its [n] marker, file, heading and score; opened,
    it shows the passage in its document's context (`version`, the index version answered from,
    gives the neighbouring text) with the sentences that support the answer marked. Answer
    sentences the documents do not back are marked as such. All text is escaped (`html_text`):
    a passage or an answer quoting one shows its markup as text, and the browser fetches nothing
    it names; the marks are the app's own tags.
    """
    out: list[dict] = []
    if answer.reasoning:
        out.append({"role": "assistant", "content": html_text(answer.reasoning),
                    "metadata": {"title": "Reasoning (chain of thought)", "status": "done"}})
    if answer.abstained:
        why = html_text(f" ({answer.abstain_reason})") if answer.abstain_reason else ""
        out.append({"role": "assistant",
                    "content": f"{html_text(answer.text)}\n\n{ABSTAIN_HINT.format(why=why)}"})
        return out
    out.append({"role": "assistant", "content": answer_html(answer)})
    if answer.citations:
        out.append({"role": "assistant", "content": SOURCES_HEADER})
    for c in answer.citations:
        where = f"{c.source} › {c.where}" if c.where else c.source
        note = ", inferred" if c.inferred else ""
        out.append({"role": "assistant", "content": view_html(source_view(answer, c, version)),
                    "metadata": {"title": html_text(f"[{c.n}] {where} · similarity {c.score:.2f}{note}"),
                                 "status": "done"}})
    return out


UNSUPPORTED = '<u class="unsupported" title="{why}">{text}</u> <small>(not supported by the passages)</small>'


def answer_html(answer: Answer) -> str:
    """The answer's text, escaped, with each sentence the checks found unsupported marked."""
    text, out, pos = answer.text, [], 0
    for s in answer.sentences:
        if s.verified is not False:
            continue
        start = text.find(s.text, pos)
        if start < 0:
            continue
        why = "; ".join(s.flags) or "no passage supports it"
        out += [html_text(text[pos:start]),
                UNSUPPORTED.format(why=html.escape(why, quote=True), text=html_text(s.text))]
        pos = start + len(s.text)
    return "".join(out) + html_text(text[pos:])


def view_html(view: SourceView) -> str:
    """A source view as the chat's HTML: the page, the text before (dimmed), the passage with
    its supporting sentences in <mark>, the text after."""
    passage, parts, pos = view.passage, [], 0
    for start, end in view.highlights:
        parts += [html_text(passage[pos:start]), f"<mark>{html_text(passage[start:end])}</mark>"]
        pos = end
    parts.append(html_text(passage[pos:]))
    body = "".join(parts)
    if view.before:
        body = f"<small>{html_text(view.before)}</small>\n" + body
    if view.after:
        body += f"\n<small>{html_text(view.after)}</small>"
    if view.page:
        body = f"<em>{html_text(view.page)}</em>\n" + body
    return body


def _message_text(message: dict) -> str:
    """The text of a chat message as the page sends it back (a string, or a list of parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def error_message(e: Exception) -> dict:
    if isinstance(e, RagError):
        text = public_text(str(e))
    else:  # a bug: the log gets the traceback, the user one line
        log.exception("unexpected error while answering")
        text = f"unexpected {type(e).__name__}: {e}"
    return {"role": "assistant", "content": f"⚠️ {html_text(text)}"}


def turn_record(answer: Answer, *, collection: str, rag) -> TurnRecord:
    """What is saved of an answer: enough to show it again and to audit how it was made."""
    d = answer.to_dict()
    texts = {h.chunk.id: h.chunk.text for h in answer.hits}
    citations = [{**c, "text": texts.get(c["chunk_id"], c["snippet"])} for c in d["citations"]]
    try:
        version = rag.store.version
    except RagError:
        version = ""
    return TurnRecord(question=answer.question, answer=answer.text, abstained=answer.abstained,
                      abstain_reason=answer.abstain_reason, reasoning=answer.reasoning, citations=citations,
                      sentences=d["sentences"], template=answer.template, model=rag.llm.name,
                      collection=collection, index_version=version, timings=d["timings"])


def _live_version(rag):
    """The index version `rag` answers from (for the passages' neighbours), None if it has none."""
    try:
        return rag.store
    except (RagError, AttributeError):
        return None


def stored_answer(t: TurnRecord) -> Answer:
    """A saved turn as an `Answer` again (its cited passages as hits), for `answer_messages`."""
    from rag.types import Chunk, Citation, Hit, SentenceSupport

    fields = Citation.__dataclass_fields__
    citations = [Citation(**{k: v for k, v in c.items() if k in fields}) for c in t.citations]
    hits = [Hit(Chunk(id=c["chunk_id"], source=c["source"], title="", headings=(), text=c.get("text", "")),
                float(c.get("score") or 0), dense=float(c.get("score") or 0)) for c in t.citations]
    sentences = [SentenceSupport(x["text"], x["passage"], x["support"], x["verified"], tuple(x.get("flags", ())))
                 for x in t.sentences]
    return Answer(question=t.question, text=t.answer, citations=citations, hits=hits, abstained=t.abstained,
                  abstain_reason=t.abstain_reason, reasoning=t.reasoning, template=t.template,
                  sentences=sentences)


# ---------------------------------------------------------------- what a request may ask for

MAX_TOP_K = 12  # the slider's range; the API is held to the same
MAX_HISTORY_TURNS = 20  # [question, answer] pairs a request may carry; the chat keeps the last ones
MAX_ANSWER_CHARS = 8000  # per answer in a history


def check_request(question, template, top_k, history) -> tuple[str, str, int | None, list[Turn]]:
    """The arguments of one question, checked against the page's bounds (QueryError, one line).

    `top_k` None means the configured default; `history` is None or a list of [question, answer]
    string pairs."""
    from rag.pipeline import clean_question

    question = clean_question(question)
    known = [value for _, value in TEMPLATE_CHOICES]
    if not isinstance(template, str) or template not in known:
        raise QueryError(f"unknown template {str(template)[:40]!r}; choose one of {', '.join(known)}")
    if top_k is not None:
        whole = isinstance(top_k, int) or (isinstance(top_k, float) and top_k.is_integer())
        if isinstance(top_k, bool) or not whole or not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {str(top_k)[:40]}")
        top_k = int(top_k)
    if history is None:
        history = []
    if not isinstance(history, (list, tuple)):
        raise QueryError("history must be a list of [question, answer] pairs")
    if len(history) > MAX_HISTORY_TURNS:
        raise QueryError(f"history has {len(history)} turns; the limit is {MAX_HISTORY_TURNS}")
    turns = []
    for i, pair in enumerate(history, 1):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or \
                not all(isinstance(x, str) for x in pair):
            raise QueryError(f"history turn {i} is not a [question, answer] pair of strings")
        q, a = pair
        try:
            q = clean_question(q)
        except QueryError as e:
            raise QueryError(f"history turn {i}: {e}") from None
        if len(a) > MAX_ANSWER_CHARS:
            raise QueryError(f"history turn {i}: the answer is {len(a)} characters long; "
                             f"the limit is {MAX_ANSWER_CHARS}")
        turns.append(Turn(q, a))
    return question, template, top_k, turns


def respond(service: ChatService, question: str, chat: list[dict], turns: list[list[str]],
            template: str, top_k: float, *, shown: bool = False, collection: str | None = None,
            user: str | None = None, on_answer: Callable[[Answer], None] | None = None):
    """Stream one exchange: yields (textbox value, chat messages, turns) as the answer grows.

    `shown`: the question is already the last message of `chat` (the page shows it at once,
    while the answer waits in the queue)."""
    chat = list(chat or [])
    turns = list(turns or [])[-MAX_HISTORY_TURNS:]
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
        chat[-1:] = answer_messages(answer, _live_version(rag))
        turns.append([answer.question, answer.text[:MAX_ANSWER_CHARS]])
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
    d = answer.to_dict()
    texts = {h.chunk.id: h.chunk.text for h in answer.hits}
    for item in d["citations"] + d["hits"]:
        item["text"] = texts.get(item["chunk_id"], item.get("snippet", ""))
    version = _live_version(rag)
    for item, c in zip(d["citations"], answer.citations):  # the source viewer's data
        view = source_view(answer, c, version)
        item.update(page=view.page, before=view.before, after=view.after,
                    supporting=[view.passage[a:b] for a, b in view.highlights])
    return d


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
        f"{_mb(lim.file_bytes)} each" if lim.file_bytes else "",
        f"{_mb(lim.total_bytes)} in all" if lim.total_bytes else "") if x)
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
                k = gr.Slider(1, MAX_TOP_K, value=min(top_k, MAX_TOP_K), step=1,
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
                    _message_text(messages[-1]).strip() == html_text(question).strip():
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

class AuthError(ValueError):
    """A bad --auth or --auth-file argument (one line)."""


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1  # about 50 ms and 16 MiB per check
_HASH = re.compile(r"scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]{32,})\$([0-9a-f]{64})")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=256 * n * r * p + (1 << 20))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password`: `scrypt$N$r$p$<salt hex>$<hash hex>`."""
    salt = os.urandom(16) if salt is None else salt
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _parse_hash(stored: str) -> tuple[bytes, int, int, int, bytes] | None:
    m = _HASH.fullmatch(stored)
    if not m:
        return None
    n, r, p = (int(m.group(i)) for i in (1, 2, 3))
    if n < 2 or n & (n - 1) or n > 1 << 20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        return None
    return bytes.fromhex(m.group(4)), n, r, p, bytes.fromhex(m.group(5))


@dataclass
class _Attempts:
    failures: int = 0
    pending: int = 0  # attempts being checked now: counted as failures until they end
    next_at: float = 0.0


class SignInThrottle:
    """Sign-in attempts per user name and per client address, with exponential backoff.

    One shared record per key (failures, attempts in flight, the time the next attempt is
    allowed), under a lock: an attempt is admitted only when both its user's and its address's
    records allow one now, and an admitted attempt counts as a failure until it ends, so fifty
    attempts sent at once are one check, not fifty (a delay per request would let them all
    through). A refused attempt checks no password and is not counted. After the n-th failure a
    user waits `first` x 2^(n-1) seconds (up to `cap`); an address gets `free_per_address`
    failures first (people behind one router mistype too). A user's success forgets the user's
    failures (see `succeeded`); a record with nothing to wait for is forgotten after
    `forget_after` seconds."""

    def __init__(self, *, first: float = 0.5, cap: float = 300.0, free_per_address: int = 10,
                 forget_after: float = 900.0, max_records: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.cap, self.free = first, cap, free_per_address
        self.forget_after, self.max_records = forget_after, max_records
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Attempts] = {}

    def _delay(self, n: int, free: int) -> float:
        n -= free
        return 0.0 if n <= 0 else min(self.cap, self.first * 2 ** min(n - 1, 60))

    def _keys(self, user: str, address: str) -> list[tuple[tuple[str, str], int]]:
        return [(("user", str(user)[:200]), 0), (("address", str(address)[:100]), self.free)]

    def _forget_old(self, now: float) -> None:
        def stale(r: _Attempts) -> bool:
            return not r.pending and now > r.next_at + self.forget_after
        for key in [k for k, r in self._records.items() if stale(r)]:
            del self._records[key]
        if len(self._records) > self.max_records:  # a flood of names: the idle ones go first
            idle = sorted((r.next_at, k) for k, r in self._records.items() if not r.pending)
            for _, key in idle[:len(self._records) - self.max_records]:
                del self._records[key]

    def admit(self, user: str, address: str) -> float:
        """0.0 when this attempt may check its password now (it then counts until `failed` or
        `succeeded`); else the seconds to wait, and nothing is counted."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            keys = self._keys(user, address)
            wait = max((self._records[k].next_at - now for k, _ in keys if k in self._records), default=0.0)
            if wait > 0:
                return wait
            for key, free in keys:
                r = self._records.setdefault(key, _Attempts())
                r.pending += 1
                r.next_at = max(r.next_at, now + self._delay(r.failures + r.pending, free))
            return 0.0

    def failed(self, user: str, address: str) -> None:
        with self._lock:
            now = self._clock()
            for key, free in self._keys(user, address):
                r = self._records.setdefault(key, _Attempts())
                r.pending = max(0, r.pending - 1)
                r.failures += 1
                r.next_at = max(r.next_at, now + self._delay(r.failures + r.pending, free))

    def succeeded(self, user: str, address: str) -> None:
        """The user's failures are forgotten, and the address's by as many (they were this
        user's typing, as the success shows; failures against other users stay)."""
        with self._lock:
            now = self._clock()
            (user_key, _), (address_key, free) = self._keys(user, address)
            mine = self._records.pop(user_key, _Attempts()).failures
            r = self._records.get(address_key)
            if r is not None:
                r.pending = max(0, r.pending - 1)
                r.failures = max(0, r.failures - mine)
                r.next_at = min(r.next_at, now + self._delay(r.failures + r.pending, free))
                if not r.pending and not r.failures:
                    del self._records[address_key]


class Accounts:
    """Who may sign in: users with a password given on the command line (`--auth`) or a salted
    scrypt hash from a file (`--auth-file`). Checks take the same time whether or not the user
    exists, run off the server's event loop, and a failed one answers a second later. Attempts
    are throttled per user name and per client address (`SignInThrottle`): a throttled one is
    refused with 429 and how long to wait, without its password being checked."""

    FAIL_DELAY = 1.0

    def __init__(self, *, throttle: SignInThrottle | None = None) -> None:
        self._users: dict[str, tuple[bytes, int, int, int, bytes]] = {}
        self._dummy = _parse_hash(hash_password(os.urandom(8).hex()))
        self._gate = threading.BoundedSemaphore(2)  # a flood of logins cannot take every core
        self.throttle = throttle or SignInThrottle()
        self.checked = 0  # passwords checked (a throttled attempt checks none)

    def __len__(self) -> int:
        return len(self._users)

    def names(self) -> list[str]:
        """The users, in the order they were given (--auth first, then the auth file's lines)."""
        return list(self._users)

    def add(self, user: str, *, password: str | None = None, hashed: str | None = None,
            where: str = "--auth") -> None:
        if not user or user != user.strip() or any(c.isspace() or c == ":" for c in user):
            raise AuthError(f"{where}: the user name {user!r} is empty or has spaces or colons")
        if user in self._users:
            raise AuthError(f"{where}: user {user!r} is given twice")
        if password is not None:
            if not password:
                raise AuthError(f"{where}: the password of {user!r} is empty")
            hashed = hash_password(password)
        parsed = _parse_hash(hashed or "")
        if parsed is None:
            raise AuthError(f"{where}: expected user:scrypt$N$r$p$SALT$HASH "
                            f"(make a line with: python app.py --hash-password {user})")
        self._users[user] = parsed

    def check(self, user: str, password: str) -> bool:
        record = self._users.get(user)
        salt, n, r, p, digest = record or self._dummy
        with self._gate:
            self.checked += 1
            ok = hmac.compare_digest(_scrypt(password or "", salt, n, r, p), digest)
        return ok and record is not None

    async def login(self, user: str, password: str) -> bool:
        """Gradio's auth callback (async, so the check runs in a worker thread). The client's
        address comes from `ClientAddress`, which handles every request first."""
        address = CLIENT_ADDRESS.get()
        wait = self.throttle.admit(user, address)
        if wait > 0:
            from fastapi import HTTPException

            seconds = math.ceil(wait)
            log.warning("refused a sign-in for %r from %s: too many attempts, %d s to wait", user[:80], address, seconds)
            raise HTTPException(status_code=429, headers={"Retry-After": str(seconds)},
                                detail=f"too many sign-in attempts; wait {seconds} s and try again")
        try:
            ok = await asyncio.to_thread(self.check, user, password)
        except BaseException:
            self.throttle.failed(user, address)
            raise
        if ok:
            self.throttle.succeeded(user, address)
            return True
        self.throttle.failed(user, address)
        log.warning("failed sign-in for %r from %s", user[:80], address)
        await asyncio.sleep(self.FAIL_DELAY)
        return False


def load_accounts(auth: list[str] | None, auth_file: str | None) -> Accounts | None:
    """The accounts named by --auth USER:PASSWORD (repeatable) and --auth-file PATH (lines of
    USER:HASH; blank lines and # comments allowed); None when neither is given."""
    if not auth and not auth_file:
        return None
    accounts = Accounts()
    for item in auth or []:
        user, colon, password = item.partition(":")
        if not colon:
            raise AuthError("--auth expects USER:PASSWORD")
        accounts.add(user, password=password)
    if auth_file:
        try:
            text = Path(auth_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or type(e).__name__
            raise AuthError(f"cannot read the auth file {auth_file} ({why})") from None
        for no, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, colon, hashed = line.partition(":")
            where = f"{auth_file} line {no}"
            if not colon:
                raise AuthError(f"{where}: expected user:scrypt$N$r$p$SALT$HASH "
                                f"(make a line with: python app.py --hash-password USER)")
            accounts.add(user, hashed=hashed, where=where)
        if not len(accounts):
            raise AuthError(f"the auth file {auth_file} names no user")
    return accounts


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
    p.add_argument("--top-k", type=int, help=f"passages retrieved per question, 1 to {MAX_TOP_K} (default 4)")
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
    if args.top_k is not None and not 1 <= args.top_k <= MAX_TOP_K:
        return f"--top-k must be from 1 to {MAX_TOP_K}"
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
        auth=accounts.login if accounts else None,
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
