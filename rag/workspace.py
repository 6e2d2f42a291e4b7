"""The library behind the chat page: one loaded `RAG` shared by every tab and API call, its
collections as each user may see and change them, saved conversations, the documents of a
collection, uploads into it, the model picker and the feedback on answers (`rag.feedback`).
Everything here returns values or one-line
texts the page shows as they are; the web adapter (`rag.web`) only wires it to Gradio.

`check_request` holds one question's arguments to the chat's bounds (`rag.bounds`).
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from . import upload_journal, uploads
from .bounds import CHAT_MAX_ANSWER_CHARS, CHAT_MAX_HISTORY_TURNS, CHAT_MAX_TOP_K, CHAT_TEMPLATES
from .collections import DEFAULT, CollectionExists, CollectionRAGs, Collections, check_name
from .config import Settings
from .documents import list_documents, remove_document, rescan
from .errors import ConfigError, HistoryError, IndexMissing, QueryError, RagError
from .feedback import Feedback, FeedbackStore, subject_of
from .history import History
from .pipeline import RAG, clean_question
from .transcript import answer_messages, html_text, md_text, public_text
from .turns import live_version, stored_answer, turn_record
from .types import Answer, Turn
from .upload_journal import UploadJournal
from .uploads import BUILD_WAIT, Allowance, UploadLimits, UploadReport, size_text

if TYPE_CHECKING:
    from .models.local import LocalModel

log = logging.getLogger(__name__)
SAVED = "Thanks — saved."
ASK_CORRECTION = "Thanks — saved. If you know the right answer, write it below and send it."


def check_request(question, template, top_k, history) -> tuple[str, str, int | None, list[Turn]]:
    """The arguments of one question, checked against the chat's bounds (QueryError, one line).

    `top_k` None means the configured default; `history` is None or a list of [question, answer]
    string pairs."""
    question = clean_question(question)
    known = list(CHAT_TEMPLATES)
    if not isinstance(template, str) or template not in known:
        raise QueryError(f"unknown template {str(template)[:40]!r}; choose one of {', '.join(known)}")
    if top_k is not None:
        whole = isinstance(top_k, int) or (isinstance(top_k, float) and top_k.is_integer())
        if isinstance(top_k, bool) or not whole or not 1 <= top_k <= CHAT_MAX_TOP_K:
            raise QueryError(f"top_k must be a whole number from 1 to {CHAT_MAX_TOP_K}, not {str(top_k)[:40]}")
        top_k = int(top_k)
    if history is None:
        history = []
    if not isinstance(history, (list, tuple)):
        raise QueryError("history must be a list of [question, answer] pairs")
    if len(history) > CHAT_MAX_HISTORY_TURNS:
        raise QueryError(f"history has {len(history)} turns; the limit is {CHAT_MAX_HISTORY_TURNS}")
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
        if len(a) > CHAT_MAX_ANSWER_CHARS:
            raise QueryError(f"history turn {i}: the answer is {len(a)} characters long; "
                             f"the limit is {CHAT_MAX_ANSWER_CHARS}")
        turns.append(Turn(q, a))
    return question, template, top_k, turns


class ChatService:
    """The loaded `RAG`, or the one-line reason it could not be made (e.g. a missing model file).

    The page stays up either way: a broken setting is shown in every answer until it is fixed.
    """

    def __init__(self, settings: Settings | None = None, *, rag: RAG | None = None,
                 limits: UploadLimits | None = None, history: History | None = None,
                 feedback: FeedbackStore | None = None, operators: frozenset[str] | None = None,
                 **overrides) -> None:
        self.rag: RAG | None = rag
        self.history = history  # saved conversations; None: not saved
        # ratings of answers: beside the conversations, in the same file, unless given
        self.feedback = feedback if feedback is not None or history is None else self._feedback_beside(history)
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
        """Whether `user` runs this app: anyone without sign-in (`operators` None), else those
        named by --admins. With sign-in, no user (None: a handler that did not pass the request's
        user) is never the operator."""
        if user is None:
            return self.operators is None
        return self.operators is None or user in self.operators

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
        return self.answered(conversation, answer, collection=collection, user=user)[0]

    def answered(self, conversation: int | None, answer: Answer, *, collection: str | None = None,
                 user: str | None = None) -> tuple[int | None, dict]:
        """`save_turn`, and what a rating of this answer is about (`rate_answer`'s subject)."""
        record = turn_record(answer, collection=collection or DEFAULT, rag=self.get(collection, user=user))
        if self.history is None:
            return None, subject_of(record)
        owner = user or ""
        if conversation is None:
            conversation = self.history.create(owner=owner, title=answer.question, collection=collection or DEFAULT)
        turn = self.history.add_turn(conversation, record, owner=owner)
        return conversation, subject_of(record, conversation=conversation, turn=turn)

    def conversation_choices(self, *, user: str | None = None, search: str = "") -> list[tuple[str, int]]:
        """(label, id) of `user`'s conversations for the sidebar, the most recent first; with
        `search`, those whose title, questions or answers hold it."""
        if self.history is None:
            return []
        search = str(search or "")[:200]
        return [(f"{c.title} ({c.n_turns})", c.id) for c in self.history.list(owner=user or "", search=search)]

    def conversation(self, conversation: int, *, user: str | None = None) -> tuple[list[dict], list[list[str]], str]:
        """A saved conversation as the chat shows it: messages, turns for follow-ups, collection."""
        return self.reopen(conversation, user=user)[:3]

    def reopen(self, conversation: int, *, user: str | None = None) -> tuple[list[dict], list[list[str]], str, dict]:
        """`conversation`'s messages, turns and collection, and what a rating of each answer is
        about, by the position of its question among the messages (`rate_answer`'s subjects)."""
        if self.history is None:
            raise HistoryError("conversations are not saved in this app")
        info = self.history.get(conversation, owner=user or "")
        try:  # the collection's index as it is now: its neighbours of passages still indexed
            version = live_version(self.get(info.collection, user=user))
        except RagError:
            version = None
        messages, turns, subjects = [], [], {}
        for turn, t in self.history.numbered_turns(conversation, owner=user or ""):
            subjects[len(messages)] = subject_of(t, conversation=info.id, turn=turn)
            messages.append({"role": "user", "content": html_text(t.question)})
            messages += answer_messages(stored_answer(t), version)
            turns.append([t.question, t.answer[:CHAT_MAX_ANSWER_CHARS]])
        return messages, turns[-CHAT_MAX_HISTORY_TURNS:], info.collection, subjects

    # ---------------------------------------------------------------- feedback on answers

    @staticmethod
    def _feedback_beside(history: History) -> FeedbackStore | None:
        try:
            return FeedbackStore(history.path)
        except (RagError, OSError, sqlite3.Error) as e:
            log.warning("feedback on answers will not be saved: %s", e)
            return None

    def _feedback_store(self) -> FeedbackStore:
        if self.feedback is None:
            raise HistoryError("feedback is not saved in this app (it keeps no conversation history)")
        return self.feedback

    def rate_answer(self, subject: dict | None, rating: str | None, *, user: str | None = None) -> str:
        """Rate an answer of the chat "up" or "down", or take its rating back (None); the line
        the page shows. `subject` is what `answered` or `reopen` gave for it: its "feedback" (the
        rating's id) is set in place, so rating it again changes that rating."""
        if subject is None:
            return "⚠️ only an answer can be rated"
        try:
            store, rated = self._feedback_store(), subject.get("feedback")
            if rating is None:
                if rated is not None:
                    store.remove(rated, user=user)
                    subject["feedback"] = None
                return "Rating taken back."
            if rated is not None:
                store.rate(rated, rating, user=user)
            else:
                fields = {k: v for k, v in subject.items() if k in Feedback.__dataclass_fields__}
                subject["feedback"] = store.add(Feedback(rating=rating, user=user, via="chat", **fields))
        except RagError as e:
            return f"⚠️ not saved: {md_text(e)}"
        return SAVED if rating == "up" else ASK_CORRECTION

    def correct_answer(self, subject: dict | None, correction: str, *, user: str | None = None) -> str:
        """The right answer to an answer of the chat (a thumbs-down with it); the line the page shows."""
        if subject is None:
            return "⚠️ rate an answer with a thumbs-down first"
        try:
            store, rated = self._feedback_store(), subject.get("feedback")
            if rated is not None:
                store.correct(rated, correction, user=user)
            else:
                fields = {k: v for k, v in subject.items() if k in Feedback.__dataclass_fields__}
                subject["feedback"] = store.add(Feedback(rating="down", correction=correction, user=user,
                                                         via="chat", **fields))
        except RagError as e:
            return f"⚠️ not saved: {md_text(e)}"
        return SAVED

    def api_feedback(self, question, answer, rating, correction=None, collection=None, citations=None, *,
                     user: str | None = None) -> dict:
        """Feedback an API client gives on an answer it got: `{"saved": true, "id": ...}`, or a
        RagError (one line). The model and index version are the collection's now (the ones
        the answer came from, unless they changed since)."""
        if collection is not None and not isinstance(collection, str):
            raise QueryError("collection must be a collection's name")
        rag = self.get(collection or None, user=user)  # one the user may ask, or the error /ask gives
        try:
            version = rag.store.version
        except RagError:
            version = ""
        fid = self._feedback_store().add(Feedback(
            rating=rating, question=question, answer="" if answer is None else answer, correction=correction,
            citations=citations, model=rag.llm.name, index_version=version, collection=collection or DEFAULT,
            user=user, via="api"))
        return {"saved": True, "id": fid}

    # ---------------------------------------------------------------- documents

    def documents(self, collection: str | None = None, *, user: str | None = None) -> list[list]:
        """Rows for the documents table: name, type, chunks, size, indexed at."""
        return [[d.source, d.type, d.n_chunks, size_text(d.size), d.indexed.replace("T", " ")[:19]]
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
        operator keeps files is not the page's business. A label says what the model costs
        here: "smollm2-135m: SmolLM2-135M-Instruct.Q4_1.gguf (shipped default) · 0.1 GB ·
        about 6 s an answer" (`models.costs`)."""
        return [(f"{label} · {self._cost(model).short()}", name) for label, name, _, model in self._models()]

    def model_note(self, name: str | None = None) -> str:
        """A line on the picker's model `name` (default: the one in use): what it costs here and
        what it is good for; "" when there is no such model."""
        current = self.rag.model_path if self.rag is not None else ""
        model = next((m for _, n, path, m in self._models() if (n == name if name else path == current)), None)
        return md_text(self._cost(model).describe()) if model is not None else ""

    def _cost(self, model):
        from .models.costs import model_cost

        try:
            seconds = self.history.answer_seconds(model.path.name) if self.history else []
        except (RagError, sqlite3.Error):  # (a damaged history leaves the estimate)
            seconds = []
        return model_cost(model, seconds)

    def model_name(self) -> str | None:
        """The picker's name of the model in use (None with an LLM server)."""
        current = self.rag.model_path if self.rag is not None else ""
        return next((name for _, name, path, _ in self._models() if path == current), None)

    def _models(self) -> list[tuple[str, str, str, LocalModel]]:
        if self.rag is None or not self.rag.model_path:
            return []
        from .models import local_models  # (model management loads only for the picker)
        from .models.local import LocalModel

        found = list(local_models(self.rag.settings.models_dir))
        if self.rag.model_path not in {str(m.path) for m in found}:
            path = Path(self.rag.model_path)
            found.append(LocalModel(path, path.stat().st_size if path.exists() else 0))
        out, names = [], set()
        for m in found:
            name, n = m.path.name, 1
            while name in names:
                n += 1
                name = f"{m.path.name} ({n})"
            names.add(name)
            out.append((m.label, name, str(m.path), m))
        return out

    def use_model(self, name: str, *, user: str | None = None) -> str:
        """Answer with the picker's model `name` from the next question on; one line saying how
        it went. Only the operator switches the model: it is the one every user's answers use."""
        if not self.is_operator(user):
            return "⚠️ only the operator of this app can switch the model"
        if self.rag is not None and self.rag.settings.llm_url:
            return "⚠️ answers come from the LLM server; choose its model there"
        path = next((p for _, n, p, _ in self._models() if n == name), None)
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
            from .config import default_llm_path

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
            if name and isinstance(e, IndexMissing):  # a new collection: nothing uploaded yet
                return f"**Model** {md_text(rag.llm.name)} · {name}empty: add documents to it"
            return f"**Model** {md_text(rag.llm.name)} · ⚠️ index {md_text(index)}: {md_text(self.public(e))}"
        return (f"**Model** {md_text(rag.llm.name)} · **Embedder** {md_text(rag.embedder.name)} · "
                f"{name}**Index** {md_text(index.name)} ({md_text(store.version)}): {len(store)} chunks from "
                f"{len(store.manifest['documents'])} documents")


    # ---------------------------------------------------------------- uploads

    def add_uploads(self, files: list, **options) -> UploadReport:
        """Add files a browser uploaded to Gradio's upload folder: see `rag.uploads.add_uploads`."""
        return uploads.add_uploads(self, files, **options)

    def add_files(self, paths: list[str | Path], **options) -> UploadReport:
        """Check, copy into the corpus folder and index local files: see `rag.uploads.add_files`."""
        return uploads.add_files(self, paths, **options)

    def reconcile_uploads(self) -> list[Path]:
        """At start: copies that uploads of an app now gone left unindexed go to the trash
        (`rag.upload_journal.reconcile`); where they went."""
        if self.journal is None or self.collections is None:
            return []
        return upload_journal.reconcile(self.journal, self.collections, self.rag.settings)
