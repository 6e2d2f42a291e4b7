"""The `followup` check: a follow-up question answered with the previous turn's fact.

After "When does the valve open?" → "The valve opens at 80 degrees [1].", the follow-up "And
when does it close again?" retrieves the same passages, and a small model writes the same
sentence again: grounded, cited, on topic, so every other check passes it. A sentence repeats
the previous answer when it is one of its sentences (normalised) or says nothing the previous
answer did not (its content words a subset of it); it is dropped when the follow-up asks about
something new that the passages speak of and the sentence does not mention.

It stays quiet when there is no previous answer, when the follow-up restates the previous
question (all of that question's content words in it: "At what temperature does the valve
open?"), when the follow-up's new words are all fillers ("again", "more") or in no passage (the
passages would say it in other words: "shut" for "close"), when the repeated sentence has the
new words (the previous answer already said "closes at 60 degrees": that is the answer), and for
a terse sentence (under `MIN_WORDS` content words: "Meta AI [1]" may answer both questions).
"""
from __future__ import annotations

from ..text import content_words, normalise, sentences, strip_markers

MIN_WORDS = 3  # content words a sentence needs before it counts as a repeated fact
# words a follow-up adds without asking anything new ("And again?", "Tell me more")
FILLERS = frozenset(content_words("again tell more please thank thanks ok okay actually exactly "
                                  "instead really else now explain"))


def repeated_sentences(question: str, answer: str, previous_question: str, previous: str,
                       sources: list[str]) -> list[tuple[str, bool]]:
    """Each sentence of `answer`, and whether it repeats the `previous` answer (to
    `previous_question`) without addressing the follow-up `question`; all False when the check
    has nothing to go on (see the module's docstring)."""
    parts = sentences(answer)
    new = _new_words(question, previous_question, sources)
    if not new or not strip_markers(previous):
        return [(s, False) for s in parts]
    before = {normalise(strip_markers(s)) for s in sentences(previous)}
    before_words = content_words(previous)
    out = []
    for sent in parts:
        words = content_words(sent)
        repeats = normalise(strip_markers(sent)) in before or words <= before_words
        out.append((sent, len(words) >= MIN_WORDS and repeats and not words & new))
    return out


def _new_words(question: str, previous_question: str, sources: list[str]) -> set[str]:
    """The follow-up's words beyond the previous question's that a passage uses: what it asks
    that the previous did not. Empty for a restated question, whose answer may well be the same."""
    asked, before = content_words(question), content_words(previous_question)
    if not before or before <= asked:
        return set()
    found = set().union(*map(content_words, sources)) if sources else set()
    return (asked - before - FILLERS) & found
