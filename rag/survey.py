"""Answers that read a whole document or collection instead of the top-k passages: a list (every
entry of the lists about the topic), the documents that discuss a topic, a summary (one
central sentence per section, in order). Each entry is copied from a chunk and cited to it, so
nothing is written that the documents do not say; the `Coverage` says what was read.

The survey is cheap where it can be: every chunk in scope is scored with the vectors already in
the index and BM25, and only the lists and sentences of the chunks that score are embedded. It
stops at a chunk budget and a time budget (`whole_chunks`, `whole_seconds`), and then says so.

`survey(...)` is a generator: it yields `Progress` lines while it reads and returns the result.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable, Iterator

import numpy as np

from .scope import DOCUMENTS, LIST, SUMMARY, Scope
from .text import sentences
from .types import Chunk, Citation, Coverage, FoundItem, Progress, SentenceSupport

# a list entry's marker: "-", "*", "•" and the like, or "1." / "2)"
BULLET = re.compile(r"^\s*(?:[-*+•◦▪‣●○■–]|\d{1,3}[.)])\s+(?=\S)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # Markdown links keep their words; images go
_EMPHASIS = re.compile(r"(\*\*|__|`)")
# "Alpha Zero - Super-human Shogi", "ort: the default strategy": a term, a dash or colon, words
_DEFINITION = re.compile(r"^[^\s:–-][^:–]{0,100}?\s(?:-|–|—)\s\S|^[\w.-][^:\s]{0,40}(?:\s[^:\s]+){0,4}:\s\S")
_URL_ONLY = re.compile(r"^\W*(?:https?://|www\.)\S*\W*$")
ITEM_MAX_CHARS = 240

# Selection of the lists: a list's score is its cosine to the question plus LEXICAL_WEIGHT times
# the share of the topic's words in its heading, lead line and entries. The lists kept are
# those within LIST_MARGIN of the best, above LIST_FLOOR (tuned on the dev split of
# data/eval/whole.jsonl; rag eval reports the test split)
LEXICAL_WEIGHT = 0.3
LIST_MARGIN = 0.08
LIST_FLOOR = 0.45
# a list must be about the topic: its lead and heading together share this much with the topic
# or with the question's meaning; the chunks read for lists are the best CANDIDATE_CHUNKS
CANDIDATE_CHUNKS = 64
# documents: a chunk discusses the topic when it holds the topic's words in one sentence, or,
# for a topic the documents never name in words, when its cosine to the question is this high
DOCUMENT_COSINE = 0.6
COMMON_SHARE = 0.3
# a code-like word of a topic: an option ("--abort"), a name with "_" or "." ("ORIG_HEAD",
# "merge.ff"), a word in capitals ("RLHF")
LITERAL = re.compile(r"(?<![\w-])(?:--?[A-Za-z][\w-]*|[^\W_]+(?:[_.][^\W_]+)+|[A-Z][A-Z0-9]{2,}[^\W_]*)(?![\w-])")
MAX_LISTS = 3  # the best lists within LIST_MARGIN, at most this many
SUMMARY_SECTIONS = 40  # the most sections a summary quotes (then the longest, and it says so)
SUMMARY_MIN_WORDS = 5
MIN_SECTIONS = 3  # a document split into fewer by its titles is summarised chunk by chunk
# which sentence stands for a section: its first (the lead) or its most central. On the dev
# splits the lead sentence found more of the sections' gold phrases (corpus: 0.50 -> 0.75 for
# deep-learning-overview.md) at one miss more in another, and needs no embedding
SUMMARY_PICK = "first"
# A plain-text line starting with "#" is a title (`_is_title`). False: only the unmarked rule.
MARKED_TITLES = True
_MARKED = re.compile(r"^#{1,6}\s*[A-Za-z0-9]")


@dataclass
class Budget:
    """How much a survey may read: `chunks` in scope, `seconds` of reading."""

    chunks: int = 2000
    seconds: float = 60.0
    started: float = field(default_factory=lambda: time.perf_counter())

    def out_of_time(self) -> bool:
        return time.perf_counter() - self.started > self.seconds

    def due(self, every: float = 1.0) -> bool:
        """True about once a second: time to tell the reader how far the reading has got."""
        now = time.perf_counter()
        if now - self._said >= every:
            self._said = now
            return True
        return False

    def __post_init__(self) -> None:
        self._said = self.started


@dataclass
class Result:
    """A survey's answer: its text (entries with [n] markers), citations, entries and coverage."""

    text: str
    citations: list[Citation]
    items: list[FoundItem]
    coverage: Coverage
    sentences: list[SentenceSupport]


@dataclass
class _Line:
    text: str
    chunk: Chunk
    row: int
    heading: bool = False  # a heading of the document, put back where its section starts
    indented: bool = False  # the line began with white space (a definition's description)


# ---------------------------------------------------------------- reading

def document_lines(chunks: list[tuple[int, Chunk]]) -> list[_Line]:
    """A document's lines from its chunks in order: the overlap a chunk repeats of the one
    before is read once, and the headings (kept apart from the chunk text) are put back where
    they change, so a list never runs on into the next section."""
    out: list[_Line] = []
    prev_lines: list[str] = []
    prev_headings: tuple[str, ...] | None = None
    for row, chunk in chunks:
        raw = [ln for ln in chunk.text.split("\n") if ln.strip()]
        lines = [ln.strip() for ln in raw]
        skip = _overlap(prev_lines, lines)
        if chunk.headings != prev_headings and chunk.headings:
            changed = [h for i, h in enumerate(chunk.headings)
                       if prev_headings is None or i >= len(prev_headings) or prev_headings[i] != h]
            for h in changed:
                out.append(_Line(_clean(h), chunk, row, heading=True))
        elif chunk.headings != prev_headings and prev_headings:
            out.append(_Line("", chunk, row, heading=True))  # back to the top level
        out.extend(_Line(ln.strip(), chunk, row, indented=ln[:1] in (" ", "\t")) for ln in raw[skip:])
        prev_lines, prev_headings = lines, chunk.headings
    return out


def _overlap(before: list[str], after: list[str]) -> int:
    """How many leading lines of `after` repeat the last lines of `before` (chunk overlap)."""
    for k in range(min(len(before), len(after)), 0, -1):
        if before[-k:] == after[:k]:
            return k
    return 0


def _clean(text: str) -> str:
    text = _LINK.sub(lambda m: m.group(1), text)
    text = re.sub(r"(?<=\w)#$", "", text.strip())  # a generated page's permalink sign after a title
    text = _EMPHASIS.sub("", text)
    text = re.sub(r"^#+\s*", "", text)
    return " ".join(text.split())


def _is_title(lines: list[_Line], i: int) -> bool:
    """A plain-text line that reads as a section title: short, no sentence end, a capital first
    letter, not a list entry, and text after it; or a line a "#" marks as a heading, as
    Markdown does, whatever its end (`MARKED_TITLES`: notes typed in plain text keep them)."""
    t = lines[i].text
    if MARKED_TITLES and _MARKED.match(t) and i + 1 < len(lines) and not lines[i + 1].heading:
        return len(_clean(t).split()) <= 12
    words = t.split()
    return (1 <= len(words) <= 8 and t[0].isupper() and not BULLET.match(t) and not t.endswith((".", ",", ";"))
            and "," not in t
            and not _URL_ONLY.match(t) and i + 1 < len(lines) and not lines[i + 1].heading)


# ---------------------------------------------------------------- lists

@dataclass
class _List:
    lead: str  # the line before the entries ("Transformer : Key Features")
    heading: str
    entries: list[_Line]
    source: str
    definitions: bool = False  # a definition list (terms over indented descriptions)

    def text(self) -> str:
        head = " ".join(x for x in (self.heading, self.lead) if x)
        return f"{head}: " + "; ".join(_clean(BULLET.sub("", e.text)) for e in self.entries[:6])


def lists_of(lines: list[_Line]) -> list[_List]:
    """The runs of list entries in a document's lines, each with the line that leads it in. A
    line right after an entry that starts in lower case continues it (a wrapped entry). After a
    lead ending in ":", short "term - description" lines are entries too (a list written without
    bullets: "Alpha Zero - Super-human Shogi, Chess, and GO"). A manual page's definition list
    (terms such as "--stat" / "-n" over an indented description) is one run of entries, the
    terms of one description joined ("--stat, -n, --no-stat"), whatever prose lies between; a
    list inside a description is a list of its own, led by its term."""
    out: list[_List] = []
    cur: _List | None = None
    inner: _List | None = None  # a list inside a definition's description
    lead = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.heading:
            cur, lead = None, line.text
            i += 1
            continue
        n_terms = _terms_at(lines, i)
        if n_terms:
            group = lines[i:i + n_terms]
            if cur is None or not cur.definitions:
                cur = _List(lead=lead, heading=line.chunk.heading, entries=[], source=line.chunk.source,
                            definitions=True)
                out.append(cur)
            same = [t for t in group if t.row == group[0].row]  # an entry is cited to one chunk
            cur.entries.append(_Line(", ".join(t.text for t in same), group[0].chunk, group[0].row))
            i += n_terms
            continue
        if cur is not None and cur.definitions and not line.indented and _is_title(lines, i):
            cur, lead = None, line.text  # a title in plain text ends a definition list
            i += 1
            continue
        if cur is not None and cur.definitions and (not BULLET.match(line.text) or line.indented):
            if not line.indented:
                lead = line.text  # prose between two terms: the run goes on, and leads a list after it
            elif BULLET.match(line.text):
                # a list inside a description (indented) is a list of its own, led by the term
                # ("--cleanup=<mode>": strip, whitespace, verbatim, ...), and the run goes on
                term = cur.entries[-1]
                if inner is None or inner.lead != term.text:
                    inner = _List(lead=term.text, heading=line.chunk.heading, entries=[], source=line.chunk.source)
                    out.append(inner)
                inner.entries.append(line)
            i += 1
            continue
        if cur is not None and cur.definitions:
            cur = None  # a bulleted list ends a definition list
        if BULLET.match(line.text) or (_DEFINITION.match(line.text) and (cur is not None or _leads_in(lead))):
            if cur is None:
                cur = _List(lead=lead, heading=line.chunk.heading, entries=[], source=line.chunk.source)
                out.append(cur)
            cur.entries.append(line)
        elif cur is not None and line.text[:1].islower():
            last = cur.entries[-1]
            if line.row == last.row:  # (a continuation in the next chunk is left out: not in the cited one)
                cur.entries[-1] = _Line(f"{last.text} {line.text}", last.chunk, last.row)
        elif cur is None and line.text[:1].islower() and lead and not lead.endswith((".", ":")):
            lead = f"{lead} {line.text}"  # a wrapped paragraph: the whole of it leads the list
        else:
            cur, lead = None, line.text
        i += 1
    # one term over a description is a paragraph with a title, not a list
    return [x for x in out if not x.definitions or len(x.entries) >= 2]


def _leads_in(lead: str) -> bool:
    """A line after which "term - description" lines are a list: one ending in ":" or a title
    ("Learn More")."""
    words = lead.split()
    return lead.endswith(":") or (0 < len(words) <= 6 and lead[:1].isupper() and not lead.endswith((".", "?", "!")))


def _is_term(line: _Line) -> bool:
    t = line.text
    return (not line.indented and not line.heading and len(t.split()) <= 6 and len(t) <= 80
            and not t.endswith((".", ":", ",", ";")) and not BULLET.match(t))


def _terms_at(lines: list[_Line], i: int) -> int:
    """How many definition terms start at line i (aliases one under another), 0 for none: terms
    are short unindented lines followed by an indented description."""
    j = i
    while j < len(lines) and j - i < 6 and _is_term(lines[j]):
        j += 1
    described = j < len(lines) and lines[j].indented and not lines[j].heading and not BULLET.match(lines[j].text)
    return j - i if j > i and described else 0


# ---------------------------------------------------------------- the survey

def survey(scope: Scope, question: str, *, chunks: list[Chunk], vectors: Callable[[np.ndarray], np.ndarray],
           lexical: Callable[[str], np.ndarray], terms: Callable[[str], list[str]],
           embed: Callable[[list[str]], np.ndarray],
           budget: Budget | None = None) -> Iterator[Progress]:
    """Read the chunks in `scope` and return a `Result` (None when a list question finds no list:
    the ordinary path answers it). `chunks` are the index's, `vectors(rows)` their vectors,
    `lexical(text)` BM25 scores of a text for every chunk, `terms` BM25's stemmed terms of a
    text, `embed` the embedder's. A summary scores nothing: it reads its documents in order."""
    budget = budget or Budget()
    docs = set(scope.documents)
    rows = [i for i, c in enumerate(chunks) if not docs or c.source in docs]
    total = len(rows)
    stopped = ""
    if total > budget.chunks:
        stopped = f"the budget of {budget.chunks:,} chunks"
    rows = rows[:budget.chunks]
    if scope.kind != SUMMARY:  # scored by meaning against the question (the index's vectors)
        qvec = embed([question])[0]
        dense = _dense(rows, vectors, qvec)
    n_docs = len({chunks[r].source for r in rows})
    yield Progress(f"Scored {len(rows):,} chunks in {n_docs:,} document{'s' if n_docs != 1 else ''}")
    if scope.kind == SUMMARY:
        result = yield from _summary(scope, chunks, rows, embed, budget)
    elif scope.kind == DOCUMENTS:
        result = yield from _documents(scope, question, chunks, rows, dense, terms, budget)
    else:
        result = yield from _lists(scope, chunks, rows, dense, lexical(scope.topic), terms, qvec, embed, budget)
    if result is None:
        return None
    result.coverage.chunks_total = total
    # incomplete when something in scope was left unread (a budget) or left out (a summary's cap)
    if stopped or result.coverage.chunks_read < total or result.coverage.stopped:
        result.coverage.complete = False
        result.coverage.stopped = stopped or result.coverage.stopped or f"the {budget.seconds:g} s budget"
    result.coverage.seconds = round(time.perf_counter() - budget.started, 3)
    return result


def _dense(rows: list[int], vectors, qvec: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rows), dtype=np.float32)
    for start in range(0, len(rows), 4096):  # a remote store answers each call over the network
        part = np.asarray(rows[start:start + 4096], dtype=np.int64)
        out[start:start + len(part)] = vectors(part) @ qvec
    return out


def _by_document(chunks: list[Chunk], rows: list[int]) -> dict[str, list[tuple[int, Chunk]]]:
    out: dict[str, list[tuple[int, Chunk]]] = {}
    for r in rows:
        out.setdefault(chunks[r].source, []).append((r, chunks[r]))
    for pairs in out.values():
        pairs.sort(key=lambda p: _chunk_number(p[1]))
    return out


def _chunk_number(chunk: Chunk) -> int:
    tail = chunk.id.rsplit("#", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _lists(scope, chunks, rows, dense, lexical, terms, qvec, embed, budget):
    """Every list about the topic, from the chunks most related to it, entries merged."""
    topic_terms = set(terms(scope.topic))
    fused = dense + 0.5 * _norm(np.asarray([lexical[r] for r in rows], dtype=np.float32))
    keep = {rows[i] for i in np.argsort(-fused)[:CANDIDATE_CHUNKS]}
    by_doc = _by_document(chunks, rows)
    found: list[_List] = []
    read = 0
    for k, pairs in enumerate(by_doc.values()):
        if budget.out_of_time():
            break
        if budget.due():
            yield Progress(f"Looking for lists: {k:,} of {len(by_doc):,} documents")
        read += len(pairs)
        if not any(r in keep for r, _ in pairs):
            continue  # no chunk of it is among the best: its lists are not read
        for lst in lists_of(document_lines(pairs)):
            if any(e.row in keep for e in lst.entries):
                found.append(lst)
    yield Progress(f"Reading {len(found)} lists from {len(keep)} passages")
    if not found:
        return None
    vecs = embed([lst.text() for lst in found])
    scores = []
    for lst, v in zip(found, vecs):
        lead_terms = set(terms(f"{lst.heading} {lst.lead} " + " ".join(e.text for e in lst.entries)))
        share = len(topic_terms & lead_terms) / len(topic_terms) if topic_terms else 0.0
        scores.append(float(v @ qvec) + LEXICAL_WEIGHT * share)
    best = max(scores)
    if best < LIST_FLOOR:
        return None
    ranked = sorted(zip(scores, range(len(found))), reverse=True)
    chosen = [found[i] for sc, i in ranked[:MAX_LISTS] if sc >= best - LIST_MARGIN]
    chosen.sort(key=found.index)  # in the documents' order
    items: list[tuple[str, _Line, str]] = []
    seen: set[str] = set()
    for lst in chosen:
        for e in lst.entries:
            text = _clean(BULLET.sub("", e.text))[:ITEM_MAX_CHARS]
            key = re.sub(r"\W+", " ", text.lower()).strip()
            if key and key not in seen:
                seen.add(key)
                items.append((text, e, f"{(lst.lead or lst.heading or 'A list').rstrip(': ')} ({lst.source})"))
    result = _result(LIST, items, chunks, rows, scope)
    result.coverage.chunks_read = read
    result.coverage.documents_found = len({line.chunk.source for _, line, _ in items})
    return result


def _norm(x: np.ndarray) -> np.ndarray:
    top = float(x.max()) if len(x) else 0.0
    return x / top if top > 0 else x


def _documents(scope, question, chunks, rows, dense, terms, budget):
    """The documents with a sentence naming the topic, best first. A topic holding code-like
    words ("--abort", "ORIG_HEAD") is named by those, exactly; another by its words (stemmed),
    less those in more than COMMON_SHARE of the chunks ("option" in a manual). For a topic with
    no such sentence anywhere, the documents whose best chunk is close in meaning."""
    # words in capitals are literal names, unless the question is written in capitals
    shouting = sum(c.isupper() for c in question) > 0.6 * sum(c.isalpha() for c in question)
    literals = [] if shouting else LITERAL.findall(scope.topic)
    wanted = set(terms(scope.topic))
    df: dict[str, int] = {}
    if wanted and not literals and len(rows) >= 10:
        seen = [set(terms(chunks[r].text)) for r in rows]
        df = {t: sum(t in x for x in seen) for t in wanted}
        rare = {t for t in wanted if df[t] <= COMMON_SHARE * len(rows)}
        wanted = rare or wanted

    exact = [re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])") for w in literals]

    # a topic of three words or more is named by a sentence with its rarest word and half of them
    rarest = min(wanted, key=lambda t: df.get(t, 0)) if wanted and df else None
    enough = (len(wanted) + 1) // 2 if len(wanted) >= 3 else len(wanted)

    def names(text: str) -> bool:
        if exact:  # "BERT or LSTM": a document naming either
            return any(p.search(text) for p in exact)
        found = wanted & set(terms(text))
        return bool(wanted) and len(found) >= enough and (rarest is None or rarest in found)

    hits: dict[str, tuple[float, int, str]] = {}
    read = 0
    for i, r in enumerate(rows):
        if budget.out_of_time():
            break
        if budget.due():
            yield Progress(f"Searched {i:,} of {len(rows):,} chunks")
        read += 1
        c = chunks[r]
        if not names(c.text + "\n" + c.heading):
            continue
        for s in [*sentences(c.text), c.heading]:
            if names(s):
                if c.source not in hits or dense[i] > hits[c.source][0]:
                    hits[c.source] = (float(dense[i]), r, s)
                break
    if not hits and not literals:
        for i, r in enumerate(rows[:read]):
            c = chunks[r]
            if dense[i] >= DOCUMENT_COSINE and (c.source not in hits or dense[i] > hits[c.source][0]):
                hits[c.source] = (float(dense[i]), r, sentences(c.text)[0] if c.text.strip() else c.heading)
    ranked = sorted(hits.items(), key=lambda kv: -kv[1][0])
    items = [(src, _Line(_clean(sentence)[:ITEM_MAX_CHARS], chunks[r], r), "") for src, (_, r, sentence) in ranked]
    result = _result(DOCUMENTS, items, chunks, rows, scope)
    result.coverage.chunks_read = read
    result.coverage.documents_read = len({chunks[r].source for r in rows[:read]})
    result.coverage.documents_found = len(items)
    return result


def _summary(scope, chunks, rows, embed, budget):
    """One sentence per section of each document in scope (`_pick`), in the document's order; a
    summary of the whole collection quotes two of each document."""
    by_doc = _by_document(chunks, rows)
    items: list[tuple[str, _Line, str]] = []
    n = skipped_sections = 0
    for doc, pairs in by_doc.items():
        if budget.out_of_time():
            break
        lines = document_lines(pairs)
        sections = _sections(lines)
        if len(sections) < MIN_SECTIONS:  # text without titles: its chunks stand for sections
            sections = [("", [ln for ln in lines if ln.row == r and not ln.heading]) for r, _ in pairs]
            sections = [sec for sec in sections if sec[1]]
        per_section = 1
        if not scope.documents:  # the collection: each document is one section, quoted twice
            sections = [(PurePosixPath(doc).name, [line for _, body in sections for line in body])]
            per_section = 2
        if len(sections) > SUMMARY_SECTIONS:
            longest = sorted(range(len(sections)), key=lambda i: -len(sections[i][1]))[:SUMMARY_SECTIONS]
            sections = [sections[i] for i in sorted(longest)]
            skipped_sections += 1
        cands = [(name, [(s, line) for line in lines for s in _sentences_of(line)] or _longest_line(lines))
                 for name, lines in sections]
        for name, ss in cands:
            for sentence, line in _pick(ss, per_section, embed):
                items.append((sentence, line, name))
        n += 1
        if budget.due():
            yield Progress(f"Summarised {n:,} of {len(by_doc):,} documents")
    result = _result(SUMMARY, items, chunks, rows, scope, headed=True)
    result.coverage.documents_found = len({line.chunk.source for _, line, _ in items})
    if n < len(by_doc):
        done = list(by_doc.values())[:n]
        result.coverage.chunks_read = sum(len(p) for p in done)
        result.coverage.documents_read = n
    if skipped_sections:
        result.coverage.complete = False
        result.coverage.stopped = f"a summary quotes at most {SUMMARY_SECTIONS} sections of a document"
    return result


def _pick(ss: list[tuple[str, _Line]], k: int, embed) -> list[tuple[str, _Line]]:
    """The k sentences that stand for a section, in its order: its first (SUMMARY_PICK "first",
    no embedding), or those closest to the mean of its sentences' vectors ("central")."""
    if len(ss) <= k or SUMMARY_PICK == "first":
        return ss[:k]
    v = embed([s for s, _ in ss])
    return [ss[int(i)] for i in sorted(np.argsort(-(v @ v.mean(axis=0)))[:k])]


def _longest_line(lines: list[_Line]) -> list[tuple[str, _Line]]:
    """A section with no sentence of SUMMARY_MIN_WORDS words is stood for by its longest line."""
    best = max(lines, key=lambda ln: len(_clean(BULLET.sub("", ln.text))), default=None)
    text = _clean(BULLET.sub("", best.text)) if best is not None else ""
    return [(text, best)] if len(text.split()) >= 2 and not _URL_ONLY.match(text) else []


def _sections(lines: list[_Line]) -> list[tuple[str, list[_Line]]]:
    """A document's sections: split at its headings and, in plain text, at title lines."""
    out: list[tuple[str, list[_Line]]] = [("", [])]
    for i, line in enumerate(lines):
        if line.heading or _is_title(lines, i):
            out.append((_clean(line.text).rstrip(".") if not line.heading else line.text, []))
        else:
            out[-1][1].append(line)
    return [(name, body) for name, body in out if body]


def _sentences_of(line: _Line) -> list[str]:
    text = _clean(BULLET.sub("", line.text))
    if not text or _URL_ONLY.match(text) or text.lower().startswith(("image", "http")):
        return []
    # a line leading into a list ("Identify a model suited to our task:") says nothing alone
    return [s for s in sentences(text) if len(s.split()) >= SUMMARY_MIN_WORDS and not _URL_ONLY.match(s)
            and not s.endswith(":")]


def _result(kind: str, items: list[tuple[str, _Line, str]], chunks, rows, scope: Scope, *,
            headed: bool = False) -> Result:
    """The answer text and its citations: a chunk is one citation, numbered in reading order."""
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    found: list[FoundItem] = []
    support: list[SentenceSupport] = []
    lines: list[str] = []
    group = None
    for text, line, label in items:
        c = line.chunk
        if line.row not in numbers:
            numbers[line.row] = len(numbers) + 1
            citations.append(Citation(numbers[line.row], c.source, c.id, 1.0, line.text[:300],
                                      heading=c.heading, location=c.location))
        n = numbers[line.row]
        found.append(FoundItem(text=text, n=n, source=c.source, chunk_id=c.id))
        support.append(SentenceSupport(text=line.text, passage=n, support=1.0, verified=True))
        if kind == DOCUMENTS:
            lines.append(f"- {text}: “{line.text}” [{n}]")
        elif headed:
            label = label.rstrip(": ")
            # a title that ends a sentence ("Why bake at home?") takes no colon after it
            lines.append(f"- {label}{' ' if label.endswith(('?', '!')) else ': '}{text} [{n}]" if label
                         else f"- {text} [{n}]")
        else:
            if label and label != group:  # a list's lead line and file, once, above its entries
                lines.append(f"{label.rstrip(':')}:")
                group = label
            lines.append(f"- {text} [{n}]")
    coverage = Coverage(scope=kind, document=scope.documents[0] if len(scope.documents) == 1 else "",
                        chunks_read=len(rows), documents_read=len({chunks[r].source for r in rows}),
                        items=len(found))
    return Result(text="\n".join(lines), citations=citations, items=found, coverage=coverage, sentences=support)


def intro(scope: Scope, result: Result) -> str:
    """The answer's first line: which scope was read, in a reader's words."""
    where = ", ".join(scope.documents) if 0 < len(scope.documents) <= 3 else "your documents"
    if scope.kind == DOCUMENTS:
        c = result.coverage
        return f"{c.documents_found} of {c.documents_read} documents discuss {scope.topic or 'this'}:"
    if scope.kind == SUMMARY:
        if scope.documents:
            return f"Summary of {where}, one sentence per section, in order:"
        return "Summary of your documents, from the first sentences of each:"
    return f"Every entry of the lists on this in {where}:"
