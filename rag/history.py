"""Saved conversations in one SQLite file (write-ahead log, so several tabs and processes read and
write at once without corrupting it).

Each turn keeps what is needed to audit the answer later: the question, the answer, its
citations with the passages' text, the template, the model, the collection and index version it
came from, and the timings. Conversations belong to an owner (the signed-in user, "" without
sign-in) and only their owner lists, reads, renames, deletes or exports them.

A file that is not a database or fails SQLite's check is not lost: it is renamed aside
(`history.db.damaged-<time>`), a new history starts, and `History.notice` says so.

The feedback on answers (`rag.feedback`) is kept in the same file, in a table of its own.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import HistoryError
from .present import reading_order, renumbered

log = logging.getLogger(__name__)

MAX_TITLE = 120
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    collection TEXT NOT NULL DEFAULT 'default',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_conversation ON turns (conversation, id);
"""


@dataclass
class TurnRecord:
    """One question and its answer as saved. `citations` are dicts of `Citation`'s fields plus
    the passage `text`; `sentences` those of `SentenceSupport`."""

    question: str
    answer: str
    abstained: bool = False
    abstain_reason: str = ""
    reasoning: str = ""
    citations: list[dict] = field(default_factory=list)
    sentences: list[dict] = field(default_factory=list)
    template: str = ""
    model: str = ""
    collection: str = "default"
    index_version: str = ""
    timings: dict = field(default_factory=dict)
    created: float = 0.0
    abstain_code: str = ""  # which check refused (verdict codes), for the reader's reason
    scope: str = ""  # a whole-document answer's scope and what it read (types.Coverage's fields)
    coverage: dict | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "TurnRecord":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class ConversationInfo:
    id: int
    title: str
    collection: str
    created: float
    updated: float
    n_turns: int


def default_path() -> Path:
    """Where the chat keeps its conversations (and the feedback on its answers) unless told:
    RAG_HISTORY, else history.db in the project folder."""
    from .config import PROJECT_ROOT

    return Path(os.environ.get("RAG_HISTORY") or PROJECT_ROOT / "history.db")


class HistoryFile:
    """The SQLite file `path` (created when missing) with the tables of `SCHEMA`, in write-ahead
    log mode. `History` and `rag.feedback.FeedbackStore` are two views of the same file, each
    with its own tables; either one opening a damaged file sets it aside (`notice` says so)."""

    SCHEMA = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notice = ""  # a damaged file was set aside: what happened, for the user
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._init()
        except sqlite3.DatabaseError as e:
            kept = self._set_aside()
            self.notice = (f"the conversation history {self.path} was damaged ({e}); it was kept as "
                           f"{kept.name} and a new history was started")
            log.warning("%s", self.notice)
            self._init()

    def _init(self) -> None:
        with self._db() as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self.SCHEMA)

    def _set_aside(self) -> Path:
        stem = f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        kept, n = self.path.with_name(stem), 1
        while kept.exists():
            n += 1
            kept = self.path.with_name(f"{stem}-{n}")
        os.replace(self.path, kept)
        for suffix in ("-wal", "-shm"):  # the log belongs to the damaged file
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
        return kept

    @contextmanager
    def _db(self):
        """A connection for one unit of work, committed at the end (rolled back on error)."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            with db:
                yield db
        finally:
            db.close()


class History(HistoryFile):
    """The conversations in the SQLite file `path` (created when missing)."""

    SCHEMA = _SCHEMA

    # ---------------------------------------------------------------- conversations

    def create(self, *, owner: str = "", title: str = "", collection: str = "default") -> int:
        now = time.time()
        with self._db() as db:
            cur = db.execute("INSERT INTO conversations (owner, title, collection, created, updated) "
                             "VALUES (?, ?, ?, ?, ?)", (owner, _title(title), collection, now, now))
            return int(cur.lastrowid)

    def list(self, *, owner: str = "", search: str = "") -> list[ConversationInfo]:
        """`owner`'s conversations, the most recent first; with `search`, those whose title or
        a question or answer holds it (any case)."""
        where, args = "c.owner = ?", [owner]
        if search.strip():
            like = "%" + re.sub(r"([\\%_])", r"\\\1", " ".join(search.split())) + "%"
            where += (" AND (c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM turns t WHERE "
                      "t.conversation = c.id AND (json_extract(t.record, '$.question') LIKE ? ESCAPE '\\' "
                      "OR json_extract(t.record, '$.answer') LIKE ? ESCAPE '\\')))")
            args += [like, like, like]
        with self._db() as db, closing(db.execute(
                "SELECT c.id, c.title, c.collection, c.created, c.updated, "
                "(SELECT COUNT(*) FROM turns t WHERE t.conversation = c.id) "
                f"FROM conversations c WHERE {where} ORDER BY c.updated DESC, c.id DESC", args)) as cur:
            return [ConversationInfo(*row) for row in cur.fetchall()]

    def answer_seconds(self, model: str, *, last: int = 50) -> list[float]:
        """How long the last `last` answers `model` (its file name) wrote took, in seconds, all
        users' together: only the times leave the table, for the model picker's costs. A refusal
        before the model ran and a whole-document answer (no model) say nothing of its speed."""
        with self._db() as db, closing(db.execute(
                "SELECT json_extract(record, '$.timings.total') FROM turns "
                "WHERE json_extract(record, '$.model') = ? AND json_extract(record, '$.timings.total') > 0 "
                "AND json_extract(record, '$.timings.generate') > 0 "
                "AND COALESCE(json_extract(record, '$.scope'), '') = '' "
                "ORDER BY id DESC LIMIT ?", (model, int(last)))) as cur:
            return [float(t) for (t,) in cur.fetchall() if isinstance(t, (int, float))]

    def get(self, conversation: int, *, owner: str = "") -> ConversationInfo:
        for c in self.list(owner=owner):
            if c.id == _id(conversation):
                return c
        raise HistoryError(f"there is no conversation {conversation!r}")

    def rename(self, conversation: int, title: str, *, owner: str = "") -> None:
        if not str(title or "").strip():
            raise HistoryError("a conversation's title cannot be empty")
        self._change("UPDATE conversations SET title = ? WHERE id = ? AND owner = ?",
                     (_title(title), _id(conversation), owner), conversation)

    def delete(self, conversation: int, *, owner: str = "") -> None:
        self._change("DELETE FROM conversations WHERE id = ? AND owner = ?", (_id(conversation), owner),
                     conversation)

    def _change(self, sql: str, args: tuple, conversation) -> None:
        with self._db() as db:
            if db.execute(sql, args).rowcount != 1:  # another owner's reads as missing
                raise HistoryError(f"there is no conversation {conversation!r}")

    # ---------------------------------------------------------------- turns

    def add_turn(self, conversation: int, record: TurnRecord, *, owner: str = "") -> int:
        """Add `record` to `conversation`; the turn's id."""
        record.created = record.created or time.time()
        with self._db() as db:
            if db.execute("UPDATE conversations SET updated = ? WHERE id = ? AND owner = ?",
                          (record.created, _id(conversation), owner)).rowcount != 1:
                raise HistoryError(f"there is no conversation {conversation!r}")
            cur = db.execute("INSERT INTO turns (conversation, created, record) VALUES (?, ?, ?)",
                             (_id(conversation), record.created, json.dumps(asdict(record), ensure_ascii=False)))
            return int(cur.lastrowid)

    def turns(self, conversation: int, *, owner: str = "") -> list[TurnRecord]:
        return [t for _, t in self.numbered_turns(conversation, owner=owner)]

    def numbered_turns(self, conversation: int, *, owner: str = "") -> list[tuple[int, TurnRecord]]:
        """(turn id, record) of each turn of `conversation`, in order."""
        self.get(conversation, owner=owner)
        with self._db() as db, closing(db.execute(
                "SELECT id, record FROM turns WHERE conversation = ? ORDER BY id", (_id(conversation),))) as cur:
            return [(int(r[0]), TurnRecord.from_dict(json.loads(r[1]))) for r in cur.fetchall()]

    def export_markdown(self, conversation: int, *, owner: str = "") -> str:
        """The conversation as Markdown: each question, its answer, how it was made, and its
        sources with the passage text quoted."""
        info = self.get(conversation, owner=owner)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
        out = [f"# {info.title}", "", f"Collection `{info.collection}`, started {started}.", ""]
        for i, t in enumerate(self.turns(conversation, owner=owner), 1):
            answer, cited = _numbered(t)
            out += [f"## {i}. {t.question}", "", answer, ""]
            if t.abstained and t.abstain_reason:
                out += [f"*Not answered: {t.abstain_reason}.*", ""]
            total = t.timings.get("total")
            made = [f"template `{t.template}`" if t.template else "", f"model `{t.model}`" if t.model else "",
                    f"collection `{t.collection}` index {t.index_version}" if t.index_version else "",
                    f"{total:.1f} s" if isinstance(total, (int, float)) else ""]
            out += ["Made with " + ", ".join(m for m in made if m) + ".", ""]
            if cited:
                out += ["Sources:", ""]
                for n, c in cited:
                    where = f"{c.get('source', '')}" + (f" › {c['heading']}" if c.get("heading") else "")
                    out.append(f"- [{n}] {where} (similarity {float(c.get('score') or 0):.2f})")
                    text = " ".join(str(c.get("text") or c.get("snippet") or "").split())
                    if text:
                        out.append(f"  > {text}")
                out.append("")
        return "\n".join(out).rstrip() + "\n"


def _numbered(t: TurnRecord) -> tuple[str, list[tuple[int, dict]]]:
    """A saved answer's text and citations numbered 1..n in reading order, as the chat shows them
    (`present.numbered`): the saved markers are the prompt's passage numbers."""
    by_block = {c["n"]: c for c in t.citations if isinstance(c.get("n"), int)}
    order = reading_order(t.answer, by_block)
    return renumbered(t.answer, {b: i for i, b in enumerate(order, 1)}), \
        [(i, by_block[b]) for i, b in enumerate(order, 1)]


def _title(title: str) -> str:
    title = " ".join(str(title or "").split())
    return (title[:MAX_TITLE - 3] + "...") if len(title) > MAX_TITLE else (title or "New conversation")


def _id(conversation) -> int:
    try:
        return int(conversation)
    except (TypeError, ValueError):
        raise HistoryError(f"there is no conversation {str(conversation)[:40]!r}") from None
