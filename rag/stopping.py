"""Stopping generation once the answer the checks will keep is complete (`stop_early`).

The 135M default ran 6 of 8 corpus answers to the 256-token limit while the checks kept at
most five sentences of them: most decoding was thrown away. Each condition below reads the
text generated so far and says where the kept answer ends; the generator then stops and hands
the checks exactly that text, with `finish_reason` "stop" (it is complete, not cut off by the
token limit, so `cut_unfinished` does not shorten it further).

Conditions, each named (`Generation.stopped_by` says which fired) and tied to the check or
template whose output it predicts, so switching the check off switches its condition off:

- `abstain`: the answer opens with the abstain text, and the strict refusal check (`small`)
  would read anything after it as a refusal anyway;
- `echo`: the model starts copying the prompt's scaffolding, which the `echo` check cuts;
- `sentences`: the `length` check's `max_sentences` are complete and the next has begun;
- `final_answer`: chain-of-thought wrote its "Answer:" line and a line break after it;
- `span_end`: an extract span got its "[n]" marker (the grammar allows nothing after it);
- `repeats`: the model loops: three sentences in a row it had already written, or one stretch
  of words repeated three times over (the `repeats` check keeps each sentence once). A run of
  symbols is no loop: "&&&&" in a formula went on to a citation marker the answer kept.

Where the answer is cut, the checks give the same result as on the full generation, greedy
decoding being the same up to that point: what follows would have been cut by them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .checks.output import ECHO as _ECHO  # the echo check's own pattern: both must agree on where it starts
from .prompts import ABSTAIN_TEXT
from .text import CITE, normalise, stop_spans, strip_markers

CONDITIONS = {
    "abstain": "the answer opens with the abstain text (strict refusal check)",
    "echo": "the model copies the prompt's scaffolding (echo check)",
    "sentences": "max_sentences complete sentences and the next begun (length check)",
    "final_answer": "chain-of-thought's Answer: line is complete",
    "span_end": "an extract span carries its [n] marker",
    "repeats": "the model loops over text it already wrote (repeats check)",
}
# the last stretch repeated this many times in a row is a loop; stretches from MIN to MAX chars
LOOP_TIMES, LOOP_MIN, LOOP_MAX = 3, 12, 240
_ANSWER_MARK = re.compile(r"(?:final\s+)?answer\s*:", re.I)
_WORDS = re.compile(r"[^\W\d_]{3,}")
_WHOLE_WORD = re.compile(r"[^\W\d_]\w*[^\w\[]")
_SPAN_END = re.compile(rf"\s{CITE.pattern}\s*$")


@dataclass(frozen=True)
class Stop:
    """Where generation stops: the condition that fired and how many characters are kept."""

    condition: str
    at: int


class EarlyStop:
    """Called with the text generated so far; a `Stop` once the kept answer is complete."""

    def __init__(self, conditions: frozenset[str] | set[str], *, max_sentences: int = 0,
                 reasoning: bool = False, abstain: str = ABSTAIN_TEXT) -> None:
        unknown = set(conditions) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"unknown stop condition(s): {', '.join(sorted(unknown))}")
        self.conditions = frozenset(conditions)
        self.max_sentences = max_sentences
        self.reasoning = reasoning
        self._abstain_key = normalise(abstain)

    def __call__(self, text: str) -> Stop | None:
        start = 0
        if self.reasoning:  # only the final answer is checked; the reasoning is kept whole
            marks = list(_ANSWER_MARK.finditer(text))
            if not marks:
                return None
            start = marks[-1].end()
        body = text[start:]
        for name in ("abstain", "echo", "span_end", "final_answer", "sentences", "repeats"):
            if name in self.conditions:
                at = getattr(self, "_" + name)(body)
                if at is not None:
                    return Stop(name, start + at)
        return None

    # each returns the characters of `body` kept, or None

    def _abstain(self, body: str) -> int | None:
        lead = len(body) - len(body.lstrip())
        head = body[lead:lead + len(ABSTAIN_TEXT) + 8]
        if normalise(head).startswith(self._abstain_key):
            # the abstain text is whole once its full stop is there
            end = body.find(".", lead + len(ABSTAIN_TEXT) - 1)
            return end + 1 if end >= 0 else None
        return None

    def _echo(self, body: str) -> int | None:
        m = _ECHO.search(body)
        return m.start() if m else None

    def _span_end(self, body: str) -> int | None:
        m = _SPAN_END.search(body)
        return m.end() if m and strip_markers(body[:m.start()]) else None

    def _final_answer(self, body: str) -> int | None:
        if not self.reasoning:
            return None
        lead = len(body) - len(body.lstrip())
        end = body.find("\n", lead)
        return end if end > lead else None

    def _sentences(self, body: str) -> int | None:
        if not self.max_sentences:
            return None
        spans = stop_spans(body)
        if len(spans) <= self.max_sentences:
            return None
        # the next sentence has a whole word (not just a marker that may belong to the last one),
        # so the last kept sentence's end can no longer move
        if not _WHOLE_WORD.search(CITE.sub(" ", body[spans[self.max_sentences][0]:])):
            return None
        return spans[self.max_sentences - 1][1]

    def _repeats(self, body: str) -> int | None:
        spans = stop_spans(body)[:-1]  # the last piece may still be growing
        seen: set[str] = set()
        run: list[int] = []
        for s, e in spans:
            key = normalise(body[s:e])
            if key and key in seen:
                run.append(s)
                if len(run) == 3:
                    return run[0]
            else:
                run = []
            seen.add(key)
        tail = body.rstrip()
        n = len(tail)
        for size in range(LOOP_MIN, min(LOOP_MAX, n // LOOP_TIMES) + 1):
            piece = tail[n - size:]
            # words looping, not a run of symbols ("&&&&" in a formula went on to a marker)
            if tail.endswith(piece * LOOP_TIMES) and _WORDS.search(piece):
                return n - size * (LOOP_TIMES - 1)
        return None


def early_stop(template, pol) -> EarlyStop | None:
    """The stop conditions for `template` under the checks of `pol` (None: none applies)."""
    names = set()
    if pol.on("refusal") and pol.strict_refusal:
        names.add("abstain")
    if pol.on("echo"):
        names.add("echo")
    if pol.on("length") and pol.max_sentences:
        names.add("sentences")
    if pol.on("repeats"):
        names.add("repeats")
    if template.reasoning:
        names.add("final_answer")
    if template.extractive:
        names = {n for n in names if n == "abstain"} | {"span_end"}
    if not names:
        return None
    return EarlyStop(names, max_sentences=pol.max_sentences if "sentences" in names else 0,
                     reasoning=template.reasoning)
