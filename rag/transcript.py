"""Answers as the chat shows them: text that displays exactly as written, and an `Answer` as
chat messages (reasoning, the answer with its unsupported sentences marked, its sources).

Documents are not trusted: a passage, heading or file name may hold HTML or Markdown that
would make the reader's browser fetch something (an <img> beacon, a Markdown image) or hide
what it says. The chat renders its messages as HTML (Markdown off), so every piece of text
from a document, the model or the user goes through `html_text`; the chat's own markup
(the bold "Sources" header, the italic hint) is the only HTML in it. Markdown components
(header, upload note) get `md_text`, which leaves no Markdown or HTML construct in place.
"""
from __future__ import annotations

import html
import os
import re

from .present import coverage_line
from .types import Answer
from .viewer import SourceView, source_view

# abstaining is an answer, not a failure, so it carries no warning sign
ABSTAIN_HINT = "<em>None of the indexed passages answers this{why}. Try rephrasing, or add documents.</em>"
SOURCES_HEADER = "<strong>Sources</strong> (open one to read the passage)"
UNSUPPORTED = '<u class="unsupported" title="{why}">{text}</u> <small>(not supported by the passages)</small>'
# what a whole-document or whole-collection answer read, small and muted under it
COVERAGE = '<small class="coverage">{line}</small>'


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


_GGUF_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/]+[\\/])*([^\s'\"\\/]+\.gguf)\b", re.I)


def public_text(text: str, *, folders: list[str] = ()) -> str:
    """`text` with the folders of model files taken out of it, and any other path of a .gguf
    file cut to its file name: users see which model, not where the operator keeps things."""
    for folder in sorted({f.rstrip("/\\") for f in folders if f.strip("/\\.")}, key=len, reverse=True):
        text = text.replace(folder + os.sep, "")
    return _GGUF_PATH.sub(r"\1", text)


def answer_messages(answer: Answer, version=None) -> list[dict]:
    """The finished answer as chat messages: reasoning (collapsed), the answer, its sources.

    Each source is a collapsed block titled with its [n] marker, file, heading and score; opened,
    it shows the passage in its document's context (`version`, the index version answered from,
    gives the neighbouring text) with the sentences that support the answer marked. Answer
    sentences the documents do not back are marked as such. An answer that read a whole
    document or collection says under it what it read (`present.coverage_line`), abstaining or
    not. All text is escaped (`html_text`): a passage or an answer quoting one shows its markup
    as text, and the browser fetches nothing it names; the marks are the app's own tags.
    """
    out: list[dict] = []
    if answer.reasoning:
        out.append({"role": "assistant", "content": html_text(answer.reasoning),
                    "metadata": {"title": "Reasoning (chain of thought)", "status": "done"}})
    covered = coverage_line(answer.coverage)
    covered = "\n" + COVERAGE.format(line=html_text(covered)) if covered else ""
    if answer.abstained:
        why = html_text(f" ({answer.abstain_reason})") if answer.abstain_reason else ""
        out.append({"role": "assistant",
                    "content": f"{html_text(answer.text)}\n\n{ABSTAIN_HINT.format(why=why)}{covered}"})
        return out
    out.append({"role": "assistant", "content": answer_html(answer) + covered})
    if answer.citations:
        out.append({"role": "assistant", "content": SOURCES_HEADER})
    for c in answer.citations:
        where = f"{c.source} › {c.where}" if c.where else c.source
        # a whole-document answer's entries are copied from their passage: no similarity ranks them
        score = "" if answer.scope else f" · similarity {c.score:.2f}"
        note = ", inferred" if c.inferred else ""
        out.append({"role": "assistant", "content": view_html(source_view(answer, c, version)),
                    "metadata": {"title": html_text(f"[{c.n}] {where}{score}{note}"), "status": "done"}})
    return out


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


def message_text(message: dict) -> str:
    """The text of a chat message as the page sends it back (a string, or a list of parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))



def question_index(messages: list[dict], index) -> int | None:
    """The position of the question whose answer holds message `index` (the chat's thumbs name
    an answer by its first message): the nearest user message at or before it; None if none."""
    if isinstance(index, (list, tuple)):
        index = index[0] if index else None
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(messages or []):
        return None
    for i in range(index, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None
