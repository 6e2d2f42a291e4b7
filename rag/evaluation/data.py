"""Evaluation datasets: JSONL question sets, SQuAD v2 files and BEIR folders, read into `EvalSet`s.

SQuAD and BEIR bring their own corpus. Its documents are written out as small text files in a
cache folder (one file per paragraph or document) and indexed with the normal incremental
indexer, so an unchanged dataset costs nothing the second time and the evaluation exercises
exactly the code path users run.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "squad", "beir")
# questions about a whole document or collection, answered from every relevant chunk (rag/survey.py):
# "list all ...", "which files mention ...", "summarise <document>"
KINDS = ("list", "documents", "summary")
# a question tuned on (dev) must never be the one a result is reported on (test)
SPLITS = ("dev", "test")
SPLIT_CHOICES = (*SPLITS, "all")


@dataclass(frozen=True)
class EvalItem:
    """One question with what counts as a right answer and where the answer lives."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # gold document ids as the index names them (file names)
    answerable: bool = True
    group: str = ""  # article or topic, used to stratify samples
    where: str = ""  # "file line N", for messages about this item
    split: str = ""  # "dev" (tune on it), "test" (report it) or "" (unassigned)
    evidence: tuple[str, ...] = ()  # verbatim sentences of a source that support the answer
    # "list": the answer must name every entry of `items`; "documents": `items` are the file names of
    # every document about the topic; "summary": `items` hold one phrase per section of the document
    kind: str = ""
    items: tuple[tuple[str, ...], ...] = ()  # each entry's alternative spellings (documents: one file name)
    topic: tuple[str, ...] = ()  # documents questions: spellings of the topic a cited passage must mention


@dataclass
class EvalSet:
    """A parsed dataset: its questions, and for self-contained formats the corpus to index."""

    name: str
    format: str
    path: str
    items: list[EvalItem]
    docs_dir: str | None = None  # materialised corpus (SQuAD, BEIR); None: use the existing index
    any_source: bool = True  # True: each gold source holds the whole answer, finding one is enough
    retrieval_only: bool = False  # no reference answers (BEIR)
    doc_ids: dict[str, str] = field(default_factory=dict)  # file name -> the dataset's own doc id
    index_home: str | None = None  # folder of the cached named index; None: next to docs_dir
    paragraph_docs: bool = False  # every document is one paragraph: citing a gold source cites the evidence
    split: str = "all"  # the split kept by `select_split`


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return "beir"
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    if p.suffix.lower() == ".json":
        return "squad"
    raise DatasetError(f"{p}: cannot tell the dataset format from the name; pass --format jsonl|squad|beir")


def load_dataset(path: str | Path, *, format: str | None = None, cache_root: str | Path) -> EvalSet:
    """Read a dataset of any supported format. SQuAD and BEIR corpora go under `cache_root`."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}")
    fmt = format or detect_format(p)
    if fmt == "jsonl":
        return load_jsonl(p, cache_root=cache_root)
    if fmt == "squad":
        return load_squad(p, cache_root=cache_root)
    if fmt == "beir":
        return load_beir(p, cache_root=cache_root)
    raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------ reading helpers

def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None


def _json_lines(path: Path):
    """(line number, object) for every non-blank line; bad JSON names its line."""
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path} line {n}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"{path} line {n}: expected a JSON object, got {type(obj).__name__}")
        yield n, obj


def _strings(value, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DatasetError(f"{where}: {what!r} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


# ------------------------------------------------------------------ JSONL

def _split(value, where: str) -> str:
    if value is None:
        return ""
    if value not in SPLITS:
        raise DatasetError(f"{where}: 'split' must be one of {', '.join(SPLITS)}, got {value!r}")
    return value


_ITEMS_NEEDED = {
    "list": "a list question needs 'items', a list of lists of alternative strings",
    "documents": "a documents question needs 'items', the file names of every document about the topic",
    "summary": "a summary question needs 'items', one phrase (or a list of alternatives) per section",
}


def _list_items(value, where: str, kind: str = "list") -> tuple[tuple[str, ...], ...]:
    """A scope question's entries: each a list of alternative strings (a bare string is one)."""
    if not isinstance(value, list) or not value:
        raise DatasetError(f"{where}: {_ITEMS_NEEDED[kind]}")
    entries = tuple(_strings(v, "items", where) for v in value)
    if not all(entries):
        raise DatasetError(f"{where}: every entry of 'items' needs at least one alternative string")
    if kind == "documents" and any(len(e) != 1 for e in entries):
        raise DatasetError(f"{where}: every entry of 'items' of a documents question is one file name")
    return entries


def _kind(obj: dict, where: str) -> tuple[str, tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """kind, items and topic of a question, each checked against the others."""
    kind = obj.get("kind", "")
    if kind not in ("", *KINDS):
        raise DatasetError(f"{where}: 'kind' must be \"list\", \"documents\" or \"summary\" when given, "
                           f"got {kind!r}")
    if not kind and "items" in obj:
        raise DatasetError(f"{where}: 'items' needs \"kind\": \"list\", \"documents\" or \"summary\"")
    topic = _strings(obj.get("topic"), "topic", where)
    if topic and kind != "documents":
        raise DatasetError(f"{where}: 'topic' belongs to \"kind\": \"documents\" questions")
    return kind, (_list_items(obj.get("items"), where, kind) if kind else ()), topic


def _header_corpus(path: Path, obj: dict, n: int) -> Path:
    folder = obj.get("corpus")
    if not isinstance(folder, str) or not folder.strip():
        raise DatasetError(f"{path} line {n}: 'corpus' must name a folder relative to the file")
    docs = (path.parent / folder.strip()).resolve()
    if not docs.is_dir():
        raise DatasetError(f"{path} line {n}: corpus folder {folder.strip()!r} not found (looked in {docs})")
    return docs


def load_jsonl(path: Path, *, cache_root: str | Path | None = None) -> EvalSet:
    """One object per line: question, answers, sources (an empty list: not known), answerable
    (default true), and optionally split, evidence, kind "list", "documents" or "summary" with
    items (documents: and topic). A first line {"corpus": "folder"} (no question) makes that
    folder, relative to the file, the set's own corpus, indexed like a SQuAD one."""
    items: list[EvalItem] = []
    docs_dir: Path | None = None
    for n, obj in _json_lines(path):
        where = f"{path} line {n}"
        if "question" not in obj and "corpus" in obj:
            if items or docs_dir is not None:
                raise DatasetError(f"{where}: the corpus header must be the first line")
            docs_dir = _header_corpus(path, obj, n)
            continue
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{where}: 'question' is missing or empty")
        answerable = obj.get("answerable", True)
        if not isinstance(answerable, bool):
            raise DatasetError(f"{where}: 'answerable' must be true or false, got {answerable!r}")
        kind, entries, topic = _kind(obj, where)
        answers = _strings(obj.get("answers"), "answers", where)
        sources = _strings(obj.get("sources"), "sources", where)
        if kind == "documents" and not sources:
            sources = tuple(e[0] for e in entries)  # the documents found are where the answer lives
        if kind == "summary" and answerable and len(sources) != 1:
            raise DatasetError(f"{where}: a summary question names its one document in 'sources'")
        evidence = _strings(obj.get("evidence"), "evidence", where)
        if answerable and not answers and not entries:
            raise DatasetError(f"{where}: an answerable question needs at least one entry in 'answers'")
        # "sources": [] says where the answer lives is not known (a correction given in the chat):
        # the retrieval and citation figures leave the question out, the answer figures judge it
        if answerable and not sources and obj.get("sources") != []:
            raise DatasetError(f"{where}: an answerable question needs at least one entry in 'sources' "
                               f"(or \"sources\": [] when where its answer lives is not known)")
        if not answerable and (answers or entries or evidence):
            raise DatasetError(f"{where}: an unanswerable question must not list 'answers', 'items' or 'evidence'")
        items.append(EvalItem(id=str(obj.get("id", f"line{n}")), question=question.strip(),
                              answers=answers, sources=sources, answerable=answerable,
                              group=sources[0] if sources else "", where=where,
                              split=_split(obj.get("split"), where), evidence=evidence,
                              kind=kind, items=entries, topic=topic))
    if not items:
        raise DatasetError(f"{path}: no questions in the file")
    out = EvalSet(name=path.stem, format="jsonl", path=str(path), items=items)
    if docs_dir is not None:
        if cache_root is None:
            from ..config import PROJECT_ROOT  # only here: reading a plain set imports no settings

            cache_root = PROJECT_ROOT / "indexes"
        out.docs_dir, out.index_home = str(docs_dir), str(_cache_dir(cache_root, path, "jsonl"))
    return out


def select_split(evalset: EvalSet, split: str) -> EvalSet:
    """The set with only the questions of `split` ("all": every question, marked or not)."""
    if split not in SPLIT_CHOICES:
        raise ConfigError(f"--split {split!r}: choose one of {', '.join(SPLIT_CHOICES)}")
    if split == "all":
        return dataclasses.replace(evalset, split=split)
    kept = [i for i in evalset.items if i.split == split]
    if not kept:
        counts = Counter(i.split or "unmarked" for i in evalset.items)
        have = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        raise DatasetError(f"{evalset.path}: no questions in split {split!r} (the file has: {have})")
    return dataclasses.replace(evalset, items=kept, split=split)


# ------------------------------------------------------------------ SQuAD v2

def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit] or "doc"


def _cache_dir(cache_root: str | Path, path: Path, fmt: str) -> Path:
    return Path(cache_root) / f"eval-{fmt}-{_slug(path.stem if path.is_file() else path.name)}"


def _materialise(docs: dict[str, str], folder: Path) -> None:
    """Make `folder` hold exactly `docs` (file name -> text), rewriting only what changed."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        if old.name not in docs:
            old.unlink()
    for name, text in docs.items():
        target = folder / name
        data = text.encode("utf-8")
        if target.is_file() and target.read_bytes() == data:
            continue
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


def load_squad(path: Path, *, cache_root: str | Path) -> EvalSet:
    """SQuAD v2: every paragraph becomes a document; a question's gold source is its paragraph."""
    raw = _read_text(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetError(f"{path}: not a SQuAD file (expected an object with a 'data' list)")
    # a top-level "split" (not part of SQuAD itself) marks every question of the file
    split = _split(data.get("split"), f"{path}")
    docs: dict[str, str] = {}
    items: list[EvalItem] = []
    for a, article in enumerate(data["data"]):
        where_a = f"{path} data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DatasetError(f"{where_a}: expected an object with a 'paragraphs' list")
        title = str(article.get("title") or f"article {a}")
        for p, para in enumerate(article["paragraphs"]):
            where_p = f"{where_a}.paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise DatasetError(f"{where_p}: expected an object with 'context' text and a 'qas' list")
            name = f"{a:03d}-{_slug(title)}-p{p:03d}.txt"
            docs[name] = f"{title.replace('_', ' ')}\n\n{para['context'].strip()}\n"
            for q, qa in enumerate(para["qas"]):
                where = f"{where_p}.qas[{q}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) \
                        or not qa["question"].strip():
                    raise DatasetError(f"{where}: 'question' is missing or empty")
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise DatasetError(f"{where}: 'is_impossible' must be true or false")
                answers = qa.get("answers") or []
                if not isinstance(answers, list) or not all(
                        isinstance(x, dict) and isinstance(x.get("text"), str) for x in answers):
                    raise DatasetError(f"{where}: 'answers' must be a list of objects with 'text'")
                texts = tuple(dict.fromkeys(x["text"].strip() for x in answers if x["text"].strip()))
                if not impossible and not texts:
                    raise DatasetError(f"{where}: an answerable question has no answers")
                items.append(EvalItem(
                    id=str(qa.get("id") or f"{a}.{p}.{q}"), question=qa["question"].strip(),
                    answers=() if impossible else texts, sources=() if impossible else (name,),
                    answerable=not impossible, group=title, where=where, split=split))
    if not items:
        raise DatasetError(f"{path}: no questions in the file")
    folder = _cache_dir(cache_root, path, "squad") / "docs"
    _materialise(docs, folder)
    return EvalSet(name=path.stem, format="squad", path=str(path), items=items, docs_dir=str(folder),
                   paragraph_docs=True)


# ------------------------------------------------------------------ BEIR

def _doc_file(doc_id: str) -> str:
    # ids may hold any character; the short hash keeps two ids that slug alike apart
    return f"{_slug(doc_id, 60)}-{hashlib.sha1(doc_id.encode()).hexdigest()[:8]}.txt"


def load_beir(folder: Path, *, cache_root: str | Path) -> EvalSet:
    """BEIR: corpus.jsonl, queries.jsonl and qrels/test.tsv. Retrieval metrics only."""
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"
    for f in (corpus, queries, qrels):
        if not f.is_file():
            raise DatasetError(f"{folder}: not a BEIR folder ({f.relative_to(folder)} is missing)")
    docs: dict[str, str] = {}
    doc_ids: dict[str, str] = {}
    for n, obj in _json_lines(corpus):
        doc_id, text = obj.get("_id"), obj.get("text")
        if not isinstance(doc_id, (str, int)) or str(doc_id) == "" or not isinstance(text, str):
            raise DatasetError(f"{corpus} line {n}: needs '_id' and 'text'")
        name = _doc_file(str(doc_id))
        title = obj.get("title") if isinstance(obj.get("title"), str) else ""
        docs[name] = f"{title.strip()}\n\n{text.strip()}\n" if title.strip() else f"{text.strip()}\n"
        doc_ids[name] = str(doc_id)
    texts: dict[str, tuple[str, str]] = {}
    for n, obj in _json_lines(queries):
        qid, text = obj.get("_id"), obj.get("text")
        if not isinstance(qid, (str, int)) or not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{queries} line {n}: needs '_id' and non-empty 'text'")
        texts[str(qid)] = (text.strip(), f"{queries} line {n}")
    known = {v: k for k, v in doc_ids.items()}
    relevant: dict[str, list[str]] = {}
    with qrels.open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (n == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid")):
                continue
            if len(row) < 3:
                raise DatasetError(f"{qrels} line {n}: expected query-id, corpus-id and score")
            qid, did, score = (c.strip() for c in row[:3])
            try:
                rel = float(score)
            except ValueError:
                raise DatasetError(f"{qrels} line {n}: score {score!r} is not a number") from None
            if qid not in texts:
                raise DatasetError(f"{qrels} line {n}: query {qid!r} is not in queries.jsonl")
            if did not in known:
                raise DatasetError(f"{qrels} line {n}: document {did!r} is not in corpus.jsonl")
            if rel > 0:  # binary relevance: graded scores above zero all count as relevant
                relevant.setdefault(qid, []).append(known[did])
    items = [EvalItem(id=qid, question=texts[qid][0], sources=tuple(dict.fromkeys(srcs)),
                      where=texts[qid][1]) for qid, srcs in relevant.items()]
    if not items:
        raise DatasetError(f"{qrels}: no relevant (query, document) pairs")
    out = _cache_dir(cache_root, folder, "beir") / "docs"
    _materialise(docs, out)
    return EvalSet(name=folder.name, format="beir", path=str(folder), items=items, docs_dir=str(out),
                   any_source=False, retrieval_only=True, doc_ids=doc_ids)


# ------------------------------------------------------------------ sampling

def sample(items: list[EvalItem], n: int | None, *, seed: int = 0) -> list[EvalItem]:
    """A deterministic sample of `n` items that keeps the mix of groups and answerability.

    Items are shuffled within each (group, answerable) stratum with a fixed seed, each gets a
    position in [0, 1) along its stratum, and the n lowest positions win: every stratum is
    represented in proportion to its size. The sample keeps the dataset's order.
    """
    if n is None or n >= len(items):
        return list(items)
    if n < 1:
        raise DatasetError(f"--limit must be at least 1, got {n}")
    strata: dict[tuple[str, bool], list[int]] = {}
    for i, item in enumerate(items):
        strata.setdefault((item.group, item.answerable), []).append(i)
    rng = random.Random(seed)
    ranked: list[tuple[float, float, int]] = []
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        offset = rng.random()  # breaks ties between strata without favouring the first
        ranked.extend(((j + 0.5) / len(members), offset, i) for j, i in enumerate(members))
    chosen = sorted(i for _, _, i in sorted(ranked)[:n])
    return [items[i] for i in chosen]
