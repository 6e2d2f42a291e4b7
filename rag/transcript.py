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

from dataclasses import replace

from .checks.verdict import LOW_RETRIEVAL, LOW_SUPPORT, OFF_TOPIC
from .present import Numbered, coverage_line, marked_pieces, numbered
from .types import Answer, Citation
from .viewer import SourceView, source_view

# abstaining is an answer, not a failure, so it carries no warning sign
ABSTAIN_HINT = "<em>None of the indexed passages answers this{why}. Try rephrasing, or add documents.</em>"
SOURCES_HEADER = "<strong>Sources</strong> <small>(click a number or a source to read the passage)</small>"
# a sentence no passage backs: marked as such (not as a misspelling), the reason on hover
UNSUPPORTED = ('<span class="unbacked" title="Not backed by your documents: {why}">{text}</span>'
               ' <small class="unbacked-note">(not backed by your documents)</small>')
# a citation: a numbered chip right after what it backs; the chat's script opens its source
CHIP = '<sup class="cite" tabindex="0" role="button" title="{title}">{n}</sup>'
SOURCE_CHIP = '<sup class="cite source-n">{n}</sup>'  # the same number on its source's title
# what a whole-document or whole-collection answer read, small and muted under it
COVERAGE = '<small class="coverage">{line}</small>'
# the scores and check names behind a source or a refusal, for whoever wants them, last and small
DETAILS = '<small class="details">{text}</small>'
# refusal reasons whose own words are a score against a threshold, said for a reader; the
# check's own words go to the details line
_PLAIN_REASONS = {
    LOW_RETRIEVAL: "no passage is close enough to the question",
    LOW_SUPPORT: "the passages do not back what the model wrote",
    OFF_TOPIC: "what the model wrote does not answer the question",
}
_SCORE = re.compile(r"\d\.\d\d")


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

    Citations are numbered 1..n in reading order (`present.numbered`) and shown as chips after
    the sentence they back. Each source is a collapsed block titled with its number, file,
    place and heading; opened (or its chip clicked), it shows the passage in its document's
    context (`version`, the index version answered from, gives the neighbouring text) with the
    sentences that support the answer marked, and a small details line with its scores. Answer
    sentences the documents do not back are marked as such, the reason on hover. An answer that
    read a whole document or collection says under it what it read (`present.coverage_line`),
    abstaining or not. All text is escaped (`html_text`): a passage or an answer quoting one
    shows its markup as text, and the browser fetches nothing it names; the marks are the
    app's own tags.
    """
    out: list[dict] = []
    if answer.reasoning:
        out.append({"role": "assistant", "content": html_text(answer.reasoning),
                    "metadata": {"title": "Reasoning (chain of thought)", "status": "done"}})
    covered = coverage_line(answer.coverage)
    covered = "\n" + COVERAGE.format(line=html_text(covered)) if covered else ""
    if answer.abstained:
        reason, details = refusal_reason(answer)
        why = html_text(f" ({reason})") if reason else ""
        details = "\n" + DETAILS.format(text=html_text(details)) if details else ""
        out.append({"role": "assistant",
                    "content": f"{html_text(answer.text)}\n\n{ABSTAIN_HINT.format(why=why)}{covered}{details}"})
        return out
    shown = numbered(answer)
    out.append({"role": "assistant", "content": answer_html(answer, shown) + covered})
    if shown.citations:
        out.append({"role": "assistant", "content": SOURCES_HEADER})
    for c in shown.citations:
        block = shown.block_of[c.n]
        view = source_view(answer, replace(c, n=block), version)
        out.append({"role": "assistant", "content": view_html(view) + "\n" + DETAILS.format(
                        text=html_text(source_details(answer, c, block))),
                    "metadata": {"title": SOURCE_CHIP.format(n=c.n) + " " + html_text(source_title(c)),
                                 "status": "done"}})
    return out


def source_title(c: Citation) -> str:
    """A source as its block's title reads: "notes/lora.md › page 3 › Fine-tuning > LoRA"."""
    place = c.location.label if c.location else ""
    heading = " > ".join(h for h in c.heading.split(" > ") if h and h != place)
    return " › ".join(x for x in (c.source, place, heading) if x)


def source_details(answer: Answer, c: Citation, block: int) -> str:
    """The numbers behind a source, for its details line: how close it was to the question,
    which passage of the prompt it was, and whether the checks rather than the model cited it."""
    parts = [] if answer.scope else [f"similarity to the question {c.score:.2f}"]
    # (a whole-document answer's entries are copied from their passage: no similarity ranks them)
    parts.append(f"passage {block} of those read")
    if c.inferred:
        parts.append("cited by the checks: the answer's words are in it, though the model did not mark it")
    return "Details: " + " · ".join(parts)


def refusal_reason(answer: Answer) -> tuple[str, str]:
    """Why `answer` was refused, for a reader, and the check's own words when they differ (a
    score against a threshold), for the details line."""
    reason, code = answer.abstain_reason or "", answer.abstain_code or ""
    if not _SCORE.search(reason):
        return reason, ""
    # (a refusal saved before its code was kept has none: its scores go to the details all the same)
    plain = _PLAIN_REASONS.get(code, "the passages found do not answer it")
    return plain, f"Details: {code + ': ' if code else ''}{reason}"


def answer_html(answer: Answer, shown: Numbered | None = None) -> str:
    """The answer's text, escaped, its citation markers as chips numbered as `shown` (by
    default `present.numbered(answer)`) numbers them, and each sentence the checks found
    unsupported marked, its reason on hover."""
    shown = shown or numbered(answer)
    number = {b: n for n, b in shown.block_of.items()}
    titles = {c.n: f"Source {c.n}: {source_title(c)}" for c in shown.citations}

    def marked(piece: str) -> str:
        return "".join(html_text(p) if isinstance(p, str)
                       else "".join(CHIP.format(n=n, title=html.escape(titles.get(n, ""), quote=True))
                                    for n in p.numbers)
                       for p in marked_pieces(piece, number))

    text, out, pos = answer.text, [], 0
    for s in answer.sentences:
        if s.verified is not False:
            continue
        start = text.find(s.text, pos)
        if start < 0:
            continue
        why = "; ".join(s.flags) or "no passage supports it"
        out += [marked(text[pos:start]),
                UNSUPPORTED.format(why=html.escape(why, quote=True), text=marked(s.text))]
        pos = start + len(s.text)
    return "".join(out) + marked(text[pos:])


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
