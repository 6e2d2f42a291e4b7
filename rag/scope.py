"""A question's scope: an ordinary question (top-k passages answer it) or one about a whole
document or collection, which top-k cannot answer: a list ("list all ...", "every ...", "which
kinds ... do the notes list"), the documents that discuss a topic ("which files mention ..."), or
a summary ("summarise notes.md").

`recognise` reads the wording only, by the named patterns below (the `whole` setting switches
it off); the documents a question names come from the index's file names, and a caller may
name them outright (`documents`), as the chat's documents panel, `rag ask --document` and the
API's `source` do. The survey that answers such a question is in `rag.survey`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .text import STOPWORDS

LIST, DOCUMENTS, SUMMARY = "list", "documents", "summary"
SCOPES = (LIST, DOCUMENTS, SUMMARY)

_FILES = r"(?:files?|documents?|docs|pages?|notes|sources|manuals?|chapters?|articles?|reports?|sections?)"
# what a document does with a topic: "which files *mention* X"
_ABOUT = (r"(?:talks?|mentions?|discuss(?:es)?|describes?|covers?|contains?|explains?|refers?|deals?|"
          r"are\s+about|is\s+about|includes?|lists?|shows?|uses?|say|says|documents?)")
# each pattern is a hypothesis with a name, tested in tests/test_scope.py and measured on the
# whole-collection question set's dev split
PATTERNS: dict[str, tuple[str, re.Pattern]] = {
    # "which files talk about X", "which of my documents mention X", "in which pages is X"
    "which-documents": (DOCUMENTS, re.compile(
        rf"\b(?:which|what)\s+(?:of\s+(?:my|the|these)\s+)?(?:[\w'-]+\s+){{0,2}}?{_FILES}(?:\s+(?:of|in)\s+\S+)?\s+{_ABOUT}\b"
        rf"|\bin\s+which\s+{_FILES}\b|\b(?:list|name|show)\s+(?:all\s+|every\s+)?(?:the\s+)?{_FILES}\s+(?:that|which|where|about)\b",
        re.I)),
    # "summarise notes.md", "a summary of the report", "sum up ...", "tl;dr"
    "summarise": (SUMMARY, re.compile(
        r"\b(?:summari[sz]e|summari[sz]ing|sum\s+up|tl;?dr|summary\s+of|(?:give|write|make)\s+(?:me\s+)?a\s+summary"
        r"|what\s+is\s+\S+\.\w{2,4}\s+about)\b", re.I)),
    # "list the features of X", "enumerate ...", "name all ..."
    "list-verb": (LIST, re.compile(r"^\W*(?:please\s+)?(?:list|enumerate|name\s+all|name\s+every|give\s+(?:me\s+)?(?:a\s+)?list)\b", re.I)),
    # "what are all the ...", "every example of ...", "all the kinds of ..."
    "all-every": (LIST, re.compile(r"\b(?:all|every)\s+(?:the\s+|of\s+the\s+)?(?:\w+\s+){0,2}?"
                                   r"(?:kinds?|types?|examples?|items?|steps?|options?|features?|ways?|methods?|models?|"
                                   r"reasons?|advantages?|disadvantages?|benefits?|strategies|techniques?|tasks?|"
                                   r"commands?|uses?|applications?|requirements?|properties|categories|points)\b", re.I)),
    # "which merge strategies does git merge document", "what examples of X does Clarke give",
    # "which types of layers are described": a plural asked for is a list; when the documents
    # hold no list on it, the ordinary path answers (rag.survey finds none)
    "which-plural": (LIST, re.compile(
        r"^\W*(?:which|what)\s+(?!(?:do|does|did|is|are|was|were|can|could|should|will|would|has|have)\b)"
        r"(?:[\w'-]+\s+){0,4}?[\w-]*[^s\W]s\s+(?:are|were|do|does|did|can|could|should|"
        r"must|may|might|will|would)\b", re.I)),
    # "which kinds of X do the notes list", "what examples does the manual give"
    "do-the-notes-list": (LIST, re.compile(
        rf"\b(?:do|does)\s+(?:the|my|these|this)\s+{_FILES}\s+(?:list|name|give|mention|enumerate|cover)\b", re.I)),
}
# words of the question that say its scope, not its topic
_SCOPE_WORDS = frozenset("""list lists listed enumerate name names named give given gives mention mentions mentioned
talk talks discuss discusses discussed describe describes described cover covers covered contain contains
say says summarise summarize summary sum up tl dr tldr please show every kinds kind types type examples
file files document documents doc docs page pages notes note sources source manual manuals chapter chapters
article articles report reports section sections explain explains explained refer refers referred
deal deals dealt include includes included show shows shown talked discussed""".split())


@dataclass(frozen=True)
class Scope:
    """How much a question is about: `kind` (list, documents or summary), the documents to read
    (empty: the whole collection), its `topic` (the question less its scope words) and which
    pattern decided (`reason`, said under the answer and in the logs)."""

    kind: str
    documents: tuple[str, ...] = ()
    topic: str = ""
    reason: str = ""


def recognise(question: str, *, sources: list[str] | tuple[str, ...] | set[str] = (),
              documents: tuple[str, ...] = ()) -> Scope | None:
    """The question's scope, None for an ordinary question. `sources` are the indexed
    documents (to find those the question names); `documents` are named by the caller and win."""
    kind = reason = ""
    for name, (k, pattern) in PATTERNS.items():
        if pattern.search(question):
            kind, reason = k, name
            break
    if not kind:
        return None
    named = tuple(documents) or named_documents(question, sources)
    if kind == DOCUMENTS and named and not documents:
        # "which pages of notes.md ..." is about sections of one document: a list from it
        kind, reason = LIST, f"{reason} within a named document"
    return Scope(kind=kind, documents=named, topic=topic_of(question, named), reason=reason)


def named_documents(question: str, sources) -> tuple[str, ...]:
    """The indexed documents the question names by file name ("notes.md") or by the name without
    its extension when that has two words or more ("the deep learning overview"); a full name
    wins over a stem that several files share."""
    q = question.lower()
    q_words = " " + re.sub(r"[^a-z0-9]+", " ", q) + " "
    full, stems = [], []
    for src in sorted(sources):
        name = PurePosixPath(src).name.lower()
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", q) or src.lower() in q:
            full.append(src)
            continue
        stem = re.sub(r"[^a-z0-9]+", " ", PurePosixPath(name).stem).strip()
        # a one-word stem ("lora") is as likely the topic as the file: it names the file only
        # after "in", "from", "according to" ... ("according to giteveryday"); two words always
        if (" " in stem and f" {stem} " in q_words) or (
                stem and re.search(rf"\b(?:in|from|according\s+to|file|page|document)\s+(?:the\s+)?{re.escape(stem)}\b",
                                   q_words)):
            stems.append(src)
    if full or stems:
        return tuple(full or stems)
    # a capitalised word of the question (not its first) that is a word of exactly one file's
    # name: "What examples does Clarke give?" names intro-to-deep-learning-clarke.txt
    names = re.findall(r"(?<!^)(?<![.?!]\s)\b([A-Z][a-z]{3,})\b", question.strip())
    for word in names:
        owners = [src for src in sources
                  if word.lower() in re.split(r"[^a-z0-9]+", PurePosixPath(src).stem.lower())]
        if len(owners) == 1:
            return (owners[0],)
    return ()


def topic_of(question: str, documents: tuple[str, ...] = ()) -> str:
    """The question less its scope and function words and the documents' names: what the
    survey looks for ("Which files talk about transfer learning?" -> "transfer learning")."""
    q = question
    for doc in documents:
        for name in (doc, PurePosixPath(doc).name, PurePosixPath(doc).stem):
            q = re.sub(re.escape(name), " ", q, flags=re.I)
    q = re.sub(r"\b\w+'(?=\s)", " ", q)  # "which commands' pages": whose pages, not the topic
    words = re.findall(r"[\w-][\w'+#.-]*[\w+#]|[\w]", q)
    kept = [w for w in words if w.lower() not in STOPWORDS and w.lower() not in _SCOPE_WORDS]
    return " ".join(kept)
