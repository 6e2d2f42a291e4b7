"""An `Answer` and what is kept of it: the saved turn of a conversation (`rag.history`) and
back, and the structured answer the chat's API returns."""
from __future__ import annotations

from .errors import RagError
from .history import TurnRecord
from .types import Answer, Chunk, Citation, Coverage, Hit, SentenceSupport
from .viewer import source_view


def live_version(rag):
    """The index version `rag` answers from (for the passages' neighbours), None if it has none."""
    try:
        return rag.store
    except (RagError, AttributeError):
        return None


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
                      abstain_code=answer.abstain_code, abstain_reason=answer.abstain_reason,
                      reasoning=answer.reasoning, citations=citations,
                      sentences=d["sentences"], template=answer.template, model=rag.llm.name,
                      collection=collection, index_version=version, timings=d["timings"],
                      scope=answer.scope, coverage=d["coverage"])


def stored_answer(t: TurnRecord) -> Answer:
    """A saved turn as an `Answer` again (its cited passages as hits), to be shown again."""
    fields = Citation.__dataclass_fields__
    citations = [Citation(**{k: v for k, v in c.items() if k in fields}) for c in t.citations]
    hits = [Hit(Chunk(id=c["chunk_id"], source=c["source"], title="", headings=(), text=c.get("text", "")),
                float(c.get("score") or 0), dense=float(c.get("score") or 0)) for c in t.citations]
    sentences = [SentenceSupport(x["text"], x["passage"], x["support"], x["verified"], tuple(x.get("flags", ())))
                 for x in t.sentences]
    return Answer(question=t.question, text=t.answer, citations=citations, hits=hits, abstained=t.abstained,
                  abstain_code=t.abstain_code, abstain_reason=t.abstain_reason, reasoning=t.reasoning,
                  template=t.template,
                  sentences=sentences, scope=t.scope,
                  coverage=Coverage(**{k: v for k, v in t.coverage.items() if k in Coverage.__dataclass_fields__})
                  if t.coverage else None)


def answer_json(answer: Answer, rag) -> dict:
    """The structured answer for API clients: `Answer.to_dict()` with each citation's and hit's
    passage text, and each citation's source view (page, text before and after, the sentences
    that support the answer), from the index version `rag` answers from."""
    d = answer.to_dict()
    texts = {h.chunk.id: h.chunk.text for h in answer.hits}
    for item in d["citations"] + d["hits"]:
        item["text"] = texts.get(item["chunk_id"], item.get("snippet", ""))
    version = live_version(rag)
    for item, c in zip(d["citations"], answer.citations):  # the source viewer's data
        view = source_view(answer, c, version)
        item.update(page=view.page, before=view.before, after=view.after,
                    supporting=[view.passage[a:b] for a, b in view.highlights])
    return d
