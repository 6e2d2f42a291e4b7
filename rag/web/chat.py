"""One exchange of the chat, streamed into its messages, and the answer its API returns: the
request checked against the chat's bounds, every failure turned into one line."""
from __future__ import annotations

import logging
from typing import Callable

from ..bounds import CHAT_MAX_ANSWER_CHARS, CHAT_MAX_HISTORY_TURNS
from ..errors import QueryError, RagError
from ..toolbox import indexed_document
from ..transcript import answer_messages, html_text, public_text
from ..turns import answer_json, live_version
from ..types import Answer, DraftText, Progress
from ..workspace import ChatService, check_request

log = logging.getLogger("rag.app")  # (the chat's log lines keep the name they always had)


DRAFT_LABEL = "Draft, being checked against your documents…"


def draft_html(text: str) -> str:
    """The model's unchecked text as the chat shows it: visibly a draft (greyed, under a label
    saying so), never looking like the answer the checks will give."""
    return (f'<span class="draft-label">{html_text(DRAFT_LABEL)}</span>\n'
            f'<span class="draft">{html_text(text)}</span>')


def progress_html(line: str) -> str:
    """How far a whole-document answer has read ("Scored 58 chunks in 5 documents"), shown in
    place of the draft: one line, replaced by the next and then by the answer."""
    return f'<span class="draft-label">{html_text(line)} …</span>'


def document_source(rag, document) -> str | None:
    """The chat's document pick (or an API client's `document`) as `RAG.stream`'s `source`: an
    indexed path or folder of the collection; None for all documents; QueryError, one line,
    when the collection has no such document (it was removed meanwhile)."""
    if document is None or document == "":
        return None
    return indexed_document(rag, document, where="this collection")


def error_message(e: Exception) -> dict:
    if isinstance(e, RagError):
        text = public_text(str(e))
    else:  # a bug: the log gets the traceback, the user one line
        log.exception("unexpected error while answering")
        text = f"unexpected {type(e).__name__}: {e}"
    return {"role": "assistant", "content": f"⚠️ {html_text(text)}"}


def respond(service: ChatService, question: str, chat: list[dict], turns: list[list[str]],
            template: str, top_k: float, *, shown: bool = False, collection: str | None = None,
            user: str | None = None, on_answer: Callable[[Answer], None] | None = None,
            document: str | None = None):
    """Stream one exchange: yields (textbox value, chat messages, turns) as the answer grows.

    `shown`: the question is already the last message of `chat` (the page shows it at once,
    while the answer waits in the queue). `document`: the indexed document the question is
    about ("Summarise this" reads all of it); None or "" for all documents. Closing this
    generator (the page's Stop) closes the answer's stream, which ends a whole-document survey
    or the model's generation at its next piece."""
    chat = list(chat or [])
    turns = list(turns or [])[-CHAT_MAX_HISTORY_TURNS:]
    if question and question.strip() and not shown:
        chat.append({"role": "user", "content": html_text(question)})
    yield "", chat, turns
    stream = None
    try:
        rag = service.get(collection, user=user)
        question, template, top_k, history = check_request(question, template, top_k, turns)
        source = document_source(rag, document)
        stream = rag.stream(question, template=template, top_k=top_k, history=history, drafts=True,
                            source=source)
        # the model's text shows greyed under a "checking" line while it is written (chain of
        # thought too: it only becomes a collapsed block at the end, because Gradio keeps a block
        # open that was first drawn open); the checked answer replaces it. A whole-document
        # answer's progress lines take the draft's place, one replacing the other
        live = {"role": "assistant", "content": ""}
        chat.append(live)
        draft = ""
        for piece in stream:
            if isinstance(piece, Progress):
                live["content"] = progress_html(piece)
            elif isinstance(piece, DraftText):
                draft += piece
                live["content"] = draft_html(draft)
            else:
                live["content"] = html_text(piece)
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
    finally:  # stopped (the page's Stop, a closed tab): the survey or the model stops now
        getattr(stream, "close", lambda: None)()


def api_ask(service: ChatService, question: str, template: str, top_k: int | None,
            history: list[list[str]] | None, collection: str | None = None, user: str | None = None,
            document: str | None = None) -> dict:
    """The structured answer for API clients; errors come back as gradio errors with one line.
    `document` names the indexed document (or folder) the question is about."""
    import gradio as gr

    try:
        question, template, top_k, turns = check_request(question, template, top_k, history)
        if collection is not None and not isinstance(collection, str):
            raise QueryError("collection must be a collection's name")
        rag = service.get(collection or None, user=user)
        source = document_source(rag, document)
        answer = rag.ask(question, template=template, top_k=top_k, history=turns, source=source)
    except RagError as e:
        raise gr.Error(" ".join(public_text(str(e)).split()), print_exception=False) from None
    except (TypeError, ValueError) as e:
        raise gr.Error(f"bad request: {e}", print_exception=False) from None
    return answer_json(answer, rag)


def api_call(fn, *args, **kwargs):
    """`fn(...)`, its RagError turned into the one-line error API clients get."""
    import gradio as gr

    try:
        return fn(*args, **kwargs)
    except RagError as e:
        raise gr.Error(" ".join(public_text(str(e)).split()), print_exception=False) from None
