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
          r"are\s+about|is\s+about|includes?|lists?|shows?|uses?|documents?)")
# each pattern is a hypothesis with a name, tested in tests/test_scope.py and measured on the
# whole-collection question set's dev split
PATTERNS: dict[str, tuple[str, re.Pattern]] = {
    # "which files talk about X", "which of my documents mention X", "in which pages is X"
    "which-documents": (DOCUMENTS, re.compile(
        rf"\b(?:which|what)\s+(?:of\s+(?:my|the|these)\s+)?(?:[\w'-]+\s+){{0,2}}?{_FILES}(?:\s+(?:of|in)\s+\S+)?\s+{_ABOUT}\b"
        rf"|\bin\s+which\s+{_FILES}\b|\b(?:list|name|show)\s+(?:all\s+|every\s+)?(?:the\s+)?{_FILES}\s+(?:that|which|where|about)\b",
        re.I)),
    # "where is X mentioned", "where are X discussed"
    "where-mentioned": (DOCUMENTS, re.compile(
        r"^\W*where\s+(?:is|are|do|does)\s+.{1,80}?\s+(?:mentioned|discussed|described|covered|explained|"
        r"referenced|defined|talked\s+about)\b", re.I)),
    # "summarise notes.md", "a summary of the report", "sum up ...", "tl;dr", "what does notes.md cover"
    "summarise": (SUMMARY, re.compile(
        r"^\W*(?:please\s+|can\s+you\s+|could\s+you\s+|would\s+you\s+)?(?:summari[sz]e|sum\s+up|tl;?dr|"
        r"(?:give|write|make)\s+(?:me\s+)?(?:a\s+|an\s+)?(?:short\s+|brief\s+)?summary)\b"
        rf"|\bsummary\s+of\s+(?:my|the|these|all|this)\s+(?:\w+\s+)?{_FILES}\b"
        r"|what\s+is\s+\S+\.\w{2,4}\s+about|what\s+(?:does|do)\s+\S+\.\w{2,5}\s+(?:cover|contain|discuss|describe)\b",
        re.I)),
    # "list the features of X", "enumerate ...", "name all ...", "give me all ...", "show every ..."
    "list-verb": (LIST, re.compile(
        r"^\W*(?:please\s+)?(?:list(?!\s+comprehensions?\b)|enumerate|name\s+all|name\s+every|give\s+(?:me\s+)?(?:a\s+)?list"
        r"|(?:give|show|tell)\s+(?:me\s+)?(?:all|every|each)\b)\b", re.I)),
    # "what are the possible modes of ...", "what are the main types of ..."
    "what-are-the-kinds": (LIST, re.compile(
        r"^\W*what\s+are\s+(?:the\s+)?(?:possible|available|different|various|main|key|common|valid|supported|"
        r"allowed|accepted)\s+\w+", re.I)),
    # "what activation functions come up across my notes", "... in all of the documents"
    "across-documents": (LIST, re.compile(
        rf"\b(?:across|throughout|in\s+all(?:\s+of)?)\s+(?:my|the|these|all|your)\s+(?:\w+\s+)?{_FILES}\b", re.I)),
    # "what are all the ...", "every example of ...", "all the kinds of ..."
    # (not a yes/no question: "Are all models trained with backpropagation?")
    "all-every": (LIST, re.compile(r"^(?!\W*(?:are|is|do|does|did|can|could|should|will|would|has|have|was|were)\b)"
                                   r".*?\b(?:all|every)\s+(?:the\s+|of\s+the\s+)?(?:\w+\s+){0,2}?"
                                   r"(?:kinds?|types?|examples?|items?|steps?|options?|features?|ways?|methods?|models?|"
                                   r"reasons?|advantages?|disadvantages?|benefits?|strategies|techniques?|tasks?|"
                                   r"commands?|uses?|applications?|requirements?|properties|categories|points)\b", re.I)),
    # "which merge strategies does git merge document", "what examples of X does Clarke give",
    # "which types of layers are described": a plural asked for is a list; when the documents
    # hold no list on it, the ordinary path answers (rag.survey finds none)
    "which-plural": (LIST, re.compile(
        r"^\W*(?:which|what)\s+(?!(?:do|does|did|is|are|was|were|can|could|should|will|would|has|have)\b)"
        r"(?:[\w'-]+\s+){0,4}?(?!(?:bias|alias|atlas|canvas|gas|news|lens|series|species|os|this|its|has|was|does|is)\b)"
        r"[\w-]*[^siu\W]s\s+(?:are|were|do|does|did|can|could|should|"
        r"must|may|might|will|would)\b", re.I)),
    # "which kinds of X do the notes list", "what examples does the manual give"
    "do-the-notes-list": (LIST, re.compile(
        rf"\b(?:do|does)\s+(?:the|my|these|this)\s+{_FILES}\s+(?:list|name|give|mention|enumerate|cover)\b", re.I)),
}
# "an overview of notes.md", "what is in notes.md": a summary, but only of a document named
OVERVIEW = re.compile(r"\b(?:overview|outline|gist|rundown|summary)\s+of\b|^\W*what(?:'s|\s+is)\s+in\b", re.I)
# words of the question that say its scope, not its topic
_SCOPE_WORDS = frozenset("""list lists listed enumerate name names named give given gives mention mentions mentioned
talk talks discuss discusses discussed describe describes described cover covers covered contain contains
say says summarise summarize summary sum up tl dr tldr please show every kinds kind types type examples
file files document documents doc docs page pages notes note sources source manual manuals chapter chapters
article articles report reports section sections explain explains explained refer refers referred
deal deals dealt include includes included show shows shown talked discussed across throughout where
come comes up overview""".split())


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
              documents: tuple[str, ...] = (), follow_up: bool = False,
              off: frozenset[str] | set[str] = frozenset()) -> Scope | None:
    """The question's scope, None for an ordinary question. `sources` are the indexed
    documents (to find those the question names); `documents` are named by the caller and win.
    `off` names patterns switched off (the `whole_off` setting). A `follow_up` ("Can you
    summarise that?", "List them all") that names no document and no topic refers to the
    conversation, not the collection: it is left to the ordinary path, which rewrites it."""
    kind = reason = ""
    for name, (k, pattern) in PATTERNS.items():
        if name not in off and pattern.search(question):
            kind, reason = k, name
            break
    named = tuple(documents) or named_documents(question, sources)
    if not kind and named and "overview-of-document" not in off and OVERVIEW.search(question):
        kind, reason = SUMMARY, "overview-of-document"
    if not kind:
        return None
    if kind == DOCUMENTS and not documents:
        # "which files mention git rebase": a file's name as the topic keeps the whole collection
        # in scope; only a full file name ("which pages of notes.md ...") narrows it, to a list
        named = named_documents(question, sources, full_only=True)
        if named:
            kind, reason = LIST, f"{reason} within a named document"
    topic = topic_of(question, named)
    if follow_up and not named and not topic:
        return None
    return Scope(kind=kind, documents=named, topic=topic, reason=reason)


def named_documents(question: str, sources, *, full_only: bool = False) -> tuple[str, ...]:
    """The indexed documents the question names by file name ("notes.md"); unless `full_only`,
    also by the name without its extension when that has two words or more ("the deep learning
    overview"), by a one-word stem after "in", "from", "according to" ("according to
    giteveryday"), or by a capitalised word of exactly one file's name ("What examples does
    Clarke give?"). A full name wins over a stem that several files share."""
    q = question.lower()
    q_words = " " + re.sub(r"[^a-z0-9]+", " ", q) + " "
    pointed = {m.group(1) for m in re.finditer(r"\b(?:in|from|according to|file|page|document) (?:the )?([a-z0-9]+)\b",
                                               q_words)}
    full, stems = [], []
    for src in sorted(sources):
        name = PurePosixPath(src).name.lower()
        if name in q and (re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", q) or src.lower() in q):
            full.append(src)
            continue
        if full_only:
            continue
        stem = re.sub(r"[^a-z0-9]+", " ", PurePosixPath(name).stem).strip()
        # a one-word stem ("lora") is as likely the topic as the file: it names the file only
        # after "in", "from", "according to" ...; a stem of two words or more always
        if (" " in stem and f" {stem} " in q_words) or (stem and stem in pointed):
            stems.append(src)
    if full or stems or full_only:
        return tuple(full or stems)
    # a capitalised word of the question (not its first), a word of exactly one file's name
    capitals = {w.lower() for w in re.findall(r"(?<!^)(?<![.?!]\s)\b([A-Z][a-z]{3,})\b", question.strip())[:10]}
    owners: dict[str, list[str]] = {}
    for src in sources:
        for word in set(re.split(r"[^a-z0-9]+", PurePosixPath(src).stem.lower())) & capitals:
            owners.setdefault(word, []).append(src)
    for word in sorted(capitals):
        if len(owners.get(word, ())) == 1:
            return (owners[word][0],)
    return ()


def topic_of(question: str, documents: tuple[str, ...] = ()) -> str:
    """The question less its scope and function words and the documents' names: what the
    survey looks for ("Which files talk about transfer learning?" -> "transfer learning")."""
    q = question
    for doc in documents:
        for name in (doc, PurePosixPath(doc).name, PurePosixPath(doc).stem):
            if len(name) >= 3 and name.lower() in q.lower():
                q = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", " ", q, flags=re.I)
    q = re.sub(r"\b\w+'(?=\s)", " ", q)  # "which commands' pages": whose pages, not the topic
    words = re.findall(r"[\w-][\w'+#.-]*[\w+#]|[\w]", q)
    kept = [w for w in words if w.lower() not in STOPWORDS and w.lower() not in _SCOPE_WORDS]
    return " ".join(kept)
