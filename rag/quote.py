"""Quoting the supporting sentence: an extractive answer shown as the whole passage sentence its
span was copied from, cited, instead of the span alone.

The grammar of the `extract` template (see `extract`) lets a small model choose only where a
copied span starts and stops, and the 135M default stops early or late: "Recurrent Neural
Networks (RNNs) & LSTMs [2]", "The recurrent state used in RNNs [2]". The sentence around the
span is what a reader can check against the document, it holds the answer whenever the span
came from the right sentence, and it never says more than the passage does, so no check has
anything new to find in it. This is the answer unit `sentence` (`Settings.answer_unit`); `span`
keeps the copied words as they were.
"""
from __future__ import annotations

import re

from .extract import is_heading
from .text import CITE, normalise, sentences


# what starts a line of notes without being part of what it says: bullets, enumerators, the
# hashes of a Markdown heading, a quote's ">"
_LEAD = re.compile(r"^\s*(?:[-*•>]+|#{1,6}|\d{1,3}[.)])\s+")
# a sentence opening with a word that refers to the one before
_REFERS = re.compile(r"(?:This|These|That|Those|It|Its|They|Their|Them|Such|He|She|His|Her)\b")
# the extract grammar's output: one span, one marker (`extract.span_grammar`)
_SPAN = re.compile(r"(.+?)\s*" + CITE.pattern)
# a sentence opening with an ordinary word, which takes a capital letter
_WORD_FIRST = re.compile(r"[a-z]+(?=[\s,;:!?]|\.(?:\s|$)|$)")
# a sentence this long is a paragraph the splitter could not break (a table row, a long list
# line); quoting it whole would bury the answer, so only the clause around the span is kept
MAX_WORDS = 60


def quote_sentence(answer: str, blocks: list[str], *, with_previous: bool = False, context: str = "none") -> str:
    """The whole sentence of the cited block that `answer` ("<span> [n]") was copied from, with
    its marker; `answer` unchanged when it cites nothing or no sentence holds it
    (the abstain text, or a span the model did not copy). With `with_previous`, a sentence that
    opens by referring back ("This", "It", "They", ...) comes with the sentence before it.

    `context` (`config.QUOTE_CONTEXTS`) brings the block's sentences next to it along, titles
    left out: a manual gives an option's name on the line before its description and its
    default after it, so the sentence that best matches a question is often next to the one
    that answers it. The block is what the checks read, so they read every sentence quoted."""
    cited = _SPAN.fullmatch(answer.strip())
    if cited is None:  # not the grammar's one span and one marker: left as the model wrote it
        return answer
    span = normalise(cited.group(1))
    numbers = [int(n) for n in cited.group(2).split(",")]
    if not span or not 1 <= numbers[0] <= len(blocks):
        return answer
    sents = sentences(blocks[numbers[0] - 1])
    for i, sent in enumerate(sents):
        if f" {span} " in f" {normalise(sent)} ":
            text = _tidy(sent, span)
            before = sents[i - 1] if i else ""
            if with_previous and before and _REFERS.match(text) and not is_heading(before) \
                    and not before.rstrip().endswith(":"):
                # "This replaces the recurrent state used in RNNs." names its subject in the
                # sentence before ("... the self-attention mechanism."): quoted alone it says nothing
                text = f"{_tidy(before, '')} {text}"
            elif context == "window" and before and not is_heading(before) and not is_heading(sent):
                text = f"{_tidy(before, '')} {text}"  # (a title quoted starts its section)
            after = sents[i + 1] if i + 1 < len(sents) else ""
            # a title after it starts the next section, an option's line the next entry
            if context in ("next", "window") and after and not is_heading(after) and not _names_option(after):
                # a title or a lead-in quoted leads into its first line: "... (PEFT / LoRA): Fine-tune ..."
                leads = is_heading(sent) or sent.rstrip().endswith(":")
                text = f"{text.rstrip('.')}: " if leads else f"{text} "
                text += _tidy(after, "")
            # the marker goes before the full stop, as the model's own sentences place it
            end = text[-1] if text[-1] in ".!?" else ""
            return f"{text[:len(text) - len(end)]} [{numbers[0]}]{end}"
    return answer


def _names_option(line: str) -> bool:
    """A manual's entry line: an option ("-c <commit>", "--reuse-message=<commit>") or a
    setting ("rebase.updateRefs") alone on its line, before the text that describes it."""
    words = line.split()
    return bool(words) and len(words) <= 4 and line[-1] not in ".!?:" and \
        (bool(re.match(r"--?\w", words[0])) or (len(words) == 1 and bool(re.search(r"\w[.=_]\w", line))))


def _tidy(sentence: str, span: str) -> str:
    """`sentence` as an answer: without a leading bullet or heading mark, with a capital first
    letter, ending on a full stop, and cut to the clause around `span` when it is too long."""
    text = _LEAD.sub("", sentence).strip()
    if len(text.split()) > MAX_WORDS:
        text = _clause(text, span)
    text = text.rstrip(" ,;:-")
    if _WORD_FIRST.match(text):  # not a name written in lower case: "rebase.updateRefs", "--all"
        text = text[0].upper() + text[1:]
    if text and text[-1] not in ".!?\"')]":
        text += "."
    return text


def _clause(text: str, span: str) -> str:
    """The part of an overlong `text` between the separators (; : and commas) around `span`."""
    parts = re.split(r"(?<=[;:,])\s+", text)
    for i, part in enumerate(parts):
        window = " ".join(parts[max(0, i - 1):i + 2])
        if f" {span} " in f" {normalise(window)} ":
            return window
    return text
