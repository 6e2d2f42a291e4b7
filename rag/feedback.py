"""Feedback on answers: a thumbs up or down on an answer, and with a thumbs-down the right answer
as the user would have it ("this is wrong, the right answer is ..."), so that every complaint can
become a test question.

Each rating is saved with what is needed to see later what was rated: the question, the answer,
whether it abstained, its citations (source and chunk id), the model, the index version, the
collection, the conversation and turn it belongs to (in the chat), who gave it (the signed-in
user; None without sign-in) and when. It lives beside the saved conversations: a `feedback`
table in the history's SQLite file (`rag.history`), so it has the same write-ahead log (many
writers at once lose nothing) and the same handling of a damaged file (set aside, a new one
started, `notice` says so). A user changes or takes back only their own ratings.

`export_cases` turns the saved feedback into a `rag eval` JSONL question set:

- a thumbs-down with a correction is a case: the question, the correction as its one gold
  answer, answerable, and `"sources": []`: where the right answer lives is not known (the
  answer's own citations may be what was wrong), so retrieval and citation figures leave the
  case out and the answer figures (exact match, F1, contains) judge it;
- a thumbs-down without a correction is no case: it says the answer was wrong, not what is
  right, nor whether nothing should have been answered;
- a thumbs-up is a case only when asked for (`approvals`): an approved abstention becomes an
  unanswerable question (the system should keep abstaining), an approved answer a case whose
  gold is that answer (without its [n] markers) and whose sources are the documents it cited.
  F1 against a whole answer measures how far a new answer drifts from an approved one, not
  whether it is right, which is why they are left out by default;
- one case per question: the latest feedback that makes a case wins (a corrected correction
  replaces the earlier one).
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from collections import Counter
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterable

from .bounds import FEEDBACK_MAX_ANSWER_CHARS, FEEDBACK_MAX_CITATIONS, FEEDBACK_MAX_CORRECTION
from .errors import HistoryError, QueryError
from .history import HistoryFile, TurnRecord
from .question import clean_question
from .text import strip_markers

RATINGS = ("up", "down")
VIA = ("chat", "api")
MAX_NAME = 1000  # characters of a citation's source or chunk id, and of a model or collection name
SPLITS = ("dev", "test")
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    collection TEXT NOT NULL,
    rating TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_owner ON feedback (owner, id);
"""


@dataclass
class Feedback:
    """One rating of one answer. `citations` are {"source", "chunk_id"} dicts; `user` is None
    without sign-in; `conversation` and `turn` name the saved turn (the chat, when it saves)."""

    rating: str
    question: str
    answer: str = ""
    correction: str = ""
    abstained: bool = False
    citations: list[dict] = field(default_factory=list)
    model: str = ""
    index_version: str = ""
    collection: str = "default"
    user: str | None = None
    conversation: int | None = None
    turn: int | None = None
    via: str = "chat"  # the chat's thumbs, or its /feedback API
    created: float = 0.0
    updated: float = 0.0
    id: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "Feedback":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def checked(self) -> "Feedback":
        """This feedback with its text normalised, or QueryError (one line) saying what is wrong."""
        rating = check_rating(self.rating)
        correction = check_correction(self.correction)
        if correction and rating != "down":
            raise QueryError("a correction goes with a thumbs-down (rating \"down\")")
        if not isinstance(self.answer, str):
            raise QueryError("the answer must be text")
        if len(self.answer) > FEEDBACK_MAX_ANSWER_CHARS:
            raise QueryError(f"the answer is {len(self.answer)} characters long; the limit is "
                             f"{FEEDBACK_MAX_ANSWER_CHARS}")
        if self.via not in VIA:
            raise QueryError(f"via must be one of {', '.join(VIA)}")
        return Feedback(**{**asdict(self), "rating": rating, "question": clean_question(self.question),
                           "correction": correction, "abstained": bool(self.abstained),
                           "citations": check_citations(self.citations),
                           "model": _name(self.model, "model"), "index_version": _name(self.index_version, "index version"),
                           "collection": _name(self.collection, "collection") or "default",
                           "user": _name(self.user, "user") or None})


def check_rating(rating) -> str:
    if rating not in RATINGS:
        raise QueryError(f"rating must be \"up\" or \"down\", not {str(rating)[:40]!r}")
    return rating


def check_correction(text) -> str:
    """The right answer a user wrote, on one line ("" for none); QueryError when too long."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise QueryError("the correction must be text")
    text = " ".join(unicodedata.normalize("NFC", _CONTROL.sub(" ", text)).split())
    if len(text) > FEEDBACK_MAX_CORRECTION:
        raise QueryError(f"the correction is {len(text)} characters long; the limit is {FEEDBACK_MAX_CORRECTION}")
    return text


def check_citations(citations) -> list[dict]:
    """{"source", "chunk_id"} of each citation (other keys, such as /ask's text, are dropped)."""
    if citations is None:
        return []
    if not isinstance(citations, (list, tuple)):
        raise QueryError("citations must be a list of objects with source and chunk_id")
    if len(citations) > FEEDBACK_MAX_CITATIONS:
        raise QueryError(f"{len(citations)} citations; the limit is {FEEDBACK_MAX_CITATIONS}")
    out = []
    for i, c in enumerate(citations, 1):
        if not isinstance(c, dict) or not isinstance(c.get("source"), str) or \
                not isinstance(c.get("chunk_id", ""), str):
            raise QueryError(f"citation {i} is not an object with a source (and a chunk_id)")
        out.append({"source": _name(c["source"], f"citation {i}'s source"),
                    "chunk_id": _name(c.get("chunk_id", ""), f"citation {i}'s chunk_id")})
    return out


def _name(value, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise QueryError(f"the {what} must be text")
    if len(value) > MAX_NAME:
        raise QueryError(f"the {what} is {len(value)} characters long; the limit is {MAX_NAME}")
    return value


def subject_of(record: TurnRecord, *, conversation: int | None = None, turn: int | None = None) -> dict:
    """What a rating of the saved turn `record` is about: the fields of `Feedback` it fills."""
    return {"question": record.question, "answer": record.answer[:FEEDBACK_MAX_ANSWER_CHARS],
            "abstained": bool(record.abstained),
            "citations": [{"source": c.get("source", ""), "chunk_id": c.get("chunk_id", "")}
                          for c in record.citations][:FEEDBACK_MAX_CITATIONS],
            "model": record.model, "index_version": record.index_version,
            "collection": record.collection or "default", "conversation": conversation, "turn": turn}


class FeedbackStore(HistoryFile):
    """The feedback in the history's SQLite file `path` (created when missing)."""

    SCHEMA = _SCHEMA

    def add(self, feedback: Feedback) -> int:
        """Save `feedback` (checked first: QueryError); its id."""
        fb = feedback.checked()
        fb.created = fb.updated = time.time()
        fb.id = None
        with self._writing() as db:
            cur = db.execute("INSERT INTO feedback (owner, collection, rating, created, updated, record) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (fb.user or "", fb.collection, fb.rating, fb.created, fb.updated, _json(fb)))
            return int(cur.lastrowid)

    def get(self, id: int, *, user: str | None = None) -> Feedback:
        """`user`'s feedback `id` (HistoryError when there is none: another user's reads as missing)."""
        with self._db() as db, closing(db.execute(
                "SELECT id, record FROM feedback WHERE id = ? AND owner = ?", (_id(id), user or ""))) as cur:
            row = cur.fetchone()
        if row is None:
            raise HistoryError(f"there is no feedback {id!r}")
        return _feedback(row)

    def rate(self, id: int, rating: str, *, user: str | None = None) -> Feedback:
        """Change the rating of `user`'s feedback `id`; a thumbs-up drops the correction."""
        rating = check_rating(rating)
        return self._change(id, user, rating=rating, **({"correction": ""} if rating == "up" else {}))

    def correct(self, id: int, correction: str, *, user: str | None = None) -> Feedback:
        """The right answer to `user`'s feedback `id`, which becomes a thumbs-down."""
        text = check_correction(correction)
        if not text:
            raise QueryError("the correction is empty: write the right answer")
        return self._change(id, user, rating="down", correction=text)

    def remove(self, id: int, *, user: str | None = None) -> None:
        """Take back `user`'s feedback `id`."""
        with self._writing() as db:
            if db.execute("DELETE FROM feedback WHERE id = ? AND owner = ?", (_id(id), user or "")).rowcount != 1:
                raise HistoryError(f"there is no feedback {id!r}")

    def list(self, *, owner: str | None = None, collection: str | None = None) -> list[Feedback]:
        """The feedback, oldest first: everyone's (`owner` None), or one owner's ("" for the
        feedback given without sign-in); of every collection, or of `collection`."""
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if collection is not None:
            where.append("collection = ?")
            args.append(collection)
        sql = "SELECT id, record FROM feedback" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        with self._db() as db, closing(db.execute(sql, args)) as cur:
            return [_feedback(row) for row in cur.fetchall()]

    def _change(self, id, user, **changes) -> Feedback:
        with self._writing() as db:  # read and write in one transaction: a concurrent change is not lost
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id, record FROM feedback WHERE id = ? AND owner = ?",
                             (_id(id), user or "")).fetchone()
            if row is None:
                raise HistoryError(f"there is no feedback {id!r}")
            fb = _feedback(row)
            for k, v in changes.items():
                setattr(fb, k, v)
            fb.updated = time.time()
            db.execute("UPDATE feedback SET rating = ?, updated = ?, record = ? WHERE id = ?",
                       (fb.rating, fb.updated, _json(fb), fb.id))
            return fb

    @contextmanager
    def _writing(self):
        """`_db()` for a write, its SQLite failures (a full disk, a lock held past the busy
        timeout) turned into HistoryError: the feedback was not saved, and the page says so."""
        try:
            with self._db() as db:
                yield db
        except sqlite3.Error as e:
            raise HistoryError(f"the feedback could not be saved ({e})") from None


def _json(fb: Feedback) -> str:
    d = asdict(fb)
    d.pop("id")
    return json.dumps(d, ensure_ascii=False)


def _feedback(row) -> Feedback:
    fb = Feedback.from_dict(json.loads(row[1]))
    fb.id = int(row[0])
    return fb


def _id(id) -> int:
    try:
        return int(id)
    except (TypeError, ValueError):
        raise HistoryError(f"there is no feedback {str(id)[:40]!r}") from None


# ---------------------------------------------------------------- feedback as a question set


@dataclass
class Export:
    """The cases made of some feedback (rows of `rag eval`'s JSONL format), and how many
    ratings made none, by reason."""

    cases: list[dict]
    skipped: Counter = field(default_factory=Counter)

    def jsonl(self) -> str:
        return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in self.cases)

    def summary(self) -> str:
        """One line: the cases made and what was left out."""
        n = len(self.cases)
        made = f"{n} case{'s' if n != 1 else ''}"
        if not self.skipped:
            return made
        return made + " (left out: " + ", ".join(f"{v} {k}" for k, v in self.skipped.items()) + ")"


SKIP_NO_CORRECTION = "thumbs-down without a correction"
SKIP_UP = "thumbs-up (add them with --up)"
SKIP_REPLACED = "replaced by a later rating of the same question"


def export_cases(feedback: Iterable[Feedback], *, approvals: bool = False, split: str = "test") -> Export:
    """The `rag eval` cases `feedback` makes (see the module's docstring for which), in the order
    given; each row is a JSONL question of `rag eval` with no corpus header (it is asked of the
    index of the collection the feedback was about: `rag eval FILE --collection NAME`) and a
    "feedback" object of where it came from, which `rag eval` does not read."""
    if split not in SPLITS:
        raise QueryError(f"split must be one of {', '.join(SPLITS)}, not {str(split)[:40]!r}")
    out = Export(cases=[])
    by_question: dict[str, int] = {}
    for fb in feedback:
        case = _case(fb, approvals=approvals, split=split)
        if isinstance(case, str):
            out.skipped[case] += 1
            continue
        key = " ".join(fb.question.casefold().split())
        if key in by_question:  # the later word on a question replaces the earlier one
            out.cases[by_question[key]] = None
            out.skipped[SKIP_REPLACED] += 1
        by_question[key] = len(out.cases)
        out.cases.append(case)
    out.cases = [c for c in out.cases if c is not None]
    return out


def _case(fb: Feedback, *, approvals: bool, split: str) -> dict | str:
    """The case of one rating, or why it makes none."""
    cited = list(dict.fromkeys(c.get("source", "") for c in fb.citations if c.get("source")))
    origin = {"id": fb.id, "rating": fb.rating, "user": fb.user, "collection": fb.collection,
              "answer": fb.answer, "abstained": fb.abstained, "cited": cited, "model": fb.model,
              "index_version": fb.index_version, "via": fb.via,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(fb.created))}
    case = {"id": f"feedback-{fb.id}", "question": fb.question}
    if fb.rating == "down":
        if not fb.correction:
            return SKIP_NO_CORRECTION
        case.update(answers=[fb.correction], sources=[], answerable=True)
    elif not approvals:
        return SKIP_UP
    elif fb.abstained or not strip_markers(fb.answer):
        case.update(answerable=False)
    else:
        case.update(answers=[strip_markers(fb.answer)], sources=cited, answerable=True)
    return {**case, "split": split, "feedback": origin}
