"""Extractive answering: a GBNF grammar that lets the model write only a span copied from a passage.

A 135M model asked to answer in its own words paraphrases and invents ("the country was France"
where the passage says "the Dutch Republic"). Constrained decoding removes that freedom: the
answer is a run of consecutive words of one passage sentence followed by the citation of that
passage, or the abstain text. What the model still chooses is where the span starts and stops.

Rules are one per word position, `wN-I-J ::= "word" (" " wN-I-J+1)?` for word J of sentence I of
passage N, so the grammar grows linearly with the context (a rule per start/end pair would grow
quadratically). Spans never cross a sentence; words are the passage's whitespace-separated
pieces, kept as written.

With `sentences_kept=N` only the N sentences sharing the most content words with the question may be
copied from (`answer_sentences`). A question is mostly worded after the sentence that answers
it: on the SQuAD sample that sentence ranked first by shared words for 33 of the 37 answerable
questions and within the first three for all of them, while 9 of the 135M model's 18 misses
had been spans copied from a passage holding the answer, but not the answer.
"""
from __future__ import annotations

import re
from typing import Callable

from .checks.ground import lexical_support
from .text import content_words, sentences, states_quantity

# words a heading may hold in lower case ("Tools of the Trade", "Pros & Cons")
_MINOR = frozenset("a an and & of the to in on for with vs or by at from as".split())


def is_heading(line: str) -> bool:
    """A line that titles what follows: a Markdown heading, or a short line with no closing
    punctuation whose words all start with a capital letter or a digit (minor words aside)."""
    line = line.strip()
    if line.startswith("#"):
        return True
    words = [w for w in re.findall(r"[^\s()\[\]:\-–—/]+", line) if w.lower() not in _MINOR]
    return (bool(words) and len(line.split()) <= 10 and line[-1:] not in ".!?;,"
            and all(w[0].isupper() or w[0].isdigit() or not w[0].isalnum() for w in words))


_ESCAPE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    return '"' + "".join(_ESCAPE.get(ch, ch) for ch in text) + '"'


def _start(word: str, rule: str, tail: str) -> str:
    """`rule`, or when `word` is lower case the same with the first letter in either case
    ("the Dutch" -> "The Dutch"), `tail` being what follows the word in `rule`."""
    if not word[:1].islower():
        return rule
    first = f"[{word[0].upper()}{word[0]}]"
    return f"{first} {literal(word[1:])}{tail}" if word[1:] else f"{first}{tail}"


def _sentence_rules(prefix: str, words: list[str], *, key: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """Rules for the spans of one sentence's `words`, and the alternatives that start a span.

    A span must hold a word for which `key` is true: before one, a word may only go on to the
    next (rules `n...`); from one on, the span may stop after any word."""
    rules: list[str] = []
    starts: list[str] = []
    answers = [key(w) for w in words]
    for j, word in enumerate(words):
        more = j + 1 < len(words)
        tail = f' (" " {prefix}-{j + 1})?' if more else ""
        rules.append(f"{prefix}-{j} ::= {literal(word)}{tail}")
        if answers[j]:
            starts.append(_start(word, f"{prefix}-{j}", tail))
        elif any(answers[j + 1:]):  # an answering word lies ahead: go on until it
            tail = f' " " {_need(prefix, j + 1, answers)}'
            rules.append(f"n{prefix}-{j} ::= {literal(word)}{tail}")
            starts.append(_start(word, f"n{prefix}-{j}", tail))
    return rules, starts


def _need(prefix: str, j: int, answers: list[bool]) -> str:
    """The rule that continues a span at word `j` while it still lacks an answering word."""
    return f"{prefix}-{j}" if answers[j] else f"n{prefix}-{j}"


def answer_sentences(passages: list[list[str]], question: str, n: int,
                     scores: list[float] | None = None, *, embed=None) -> set[tuple[int, int]]:
    """(passage, sentence) positions of the `n` sentences closest to `question`; every position
    when `n` is 0 or no sentence shares a word.

    Closeness is the share of the question's content words the sentence holds, ties going to
    the passage with the higher retrieval score in `scores`, then to the earlier one. With
    `embed` (the rank `words+meaning`), the question-to-sentence cosine and half the passage's
    retrieval score are added to it: a user's question is worded after the sentence less often
    than a SQuAD question is (Git manual dev set, sentence holding the answer ranked first: 0.19
    of questions by words alone, 0.28 with meaning; corpus dev set 0.73 and 0.70)."""
    every = [(p, i) for p, sents in enumerate(passages) for i in range(len(sents))]
    if not n:
        return set(every)
    ranked = _ranked(passages, question, scores, embed=embed)
    return {pos for pos, _, _ in ranked[:n]} if ranked else set(every)


def _ranked(passages: list[list[str]], question: str, scores: list[float] | None, *,
            embed=None) -> list[tuple[tuple[int, int], float, float | None]]:
    """Every (passage, sentence) position with its shared-word share and, with `embed`, its
    cosine with the question, closest first (see `answer_sentences`); [] when no sentence
    shares a word with the question."""
    every = [(p, i) for p, sents in enumerate(passages) for i in range(len(sents))]
    shared = {(p, i): lexical_support(question, passages[p][i]) for p, i in every}
    if not any(shared.values()):
        return []
    score = scores or [0.0] * len(passages)
    if embed is None:
        order = sorted(every, key=lambda pos: (-shared[pos], -score[pos[0]], pos))
        return [(pos, shared[pos], None) for pos in order]
    vecs = embed([question] + [passages[p][i] for p, i in every])
    cos = dict(zip(every, (vecs[1:] @ vecs[0]).tolist()))
    order = sorted(every, key=lambda pos: (-(shared[pos] + cos[pos] + 0.5 * score[pos[0]]), pos))
    return [(pos, shared[pos], cos[pos]) for pos in order]


def span_grammar(passages: list[str], *, abstain: str, need_figure: bool = False, question: str = "",
                 sentences_kept: int = 0, scores: list[float] | None = None, may_refuse: bool = True,
                 embed=None, skip_headings: bool = False) -> str:
    """GBNF for "<span of passage n> [n]" over the numbered `passages` (1-based), or `abstain`
    (with `may_refuse` False only when no sentence can carry an answer: the model must copy a
    span, and whether it answers is left to the retrieval gate and the checks).

    A span is one or more consecutive words of a single sentence of one passage, and one of them
    must carry the answer: with `need_figure` (the question asks how many, when, ...) a figure,
    otherwise a content word that `question` does not already use. The model, free to stop after
    any word, otherwise quoted "Autoencoders [4]" back to "What can autoencoders be used for?",
    or just "The". With `sentences_kept` (0: all), only that many sentences, those closest to
    `question` in words among the ones able to carry an answer, may be copied from; `scores`,
    the passages' retrieval scores, break ties.
    """
    key = _answering(question, need_figure)
    split = _quotable(passages, key, skip_headings)
    kept = answer_sentences(split, question, sentences_kept, scores, embed=embed)
    rules: list[str] = []
    alternatives = [literal(abstain)] if may_refuse else []
    for n, sents in enumerate(split, 1):
        starts: list[str] = []
        for i, sent in enumerate(sents):
            if (n - 1, i) not in kept:
                continue
            more_rules, more_starts = _sentence_rules(f"w{n}-{i}", sent.split(), key=key)
            rules += more_rules
            starts += more_starts
        if starts:
            rules.append(f"p{n} ::= ({' | '.join(starts)}) \" [{n}]\"")
            alternatives.append(f"p{n}")
    if not alternatives:  # no sentence can carry an answer: the abstain text is all there is
        alternatives = [literal(abstain)]
    return "\n".join([f"root ::= {' | '.join(alternatives)}"] + rules) + "\n"


def _answering(question: str, need_figure: bool) -> Callable[[str], bool]:
    """Whether a word can carry the answer: a figure when the question asks for one, otherwise a
    content word the question does not already use."""
    asked = content_words(question)

    def key(word: str) -> bool:
        return states_quantity(word) if need_figure else bool(content_words(word) - asked)
    return key


def _quotable(passages: list[str], key: Callable[[str], bool], skip_headings: bool) -> list[list[str]]:
    """Each passage's sentences that hold an answering word (`key`)."""
    # a sentence with no answering word gives no span, so it takes no place among those kept;
    # nor does a heading while the passages hold sentences ("What did LSTMs add to recurrent
    # networks?" -> the heading "Recurrent Neural Networks (RNNs) & LSTMs": it shares the
    # question's words and says nothing)
    split = [[sent for sent in sentences(p) if any(key(w) for w in sent.split())] for p in passages]
    if skip_headings and any(not is_heading(s) for sents in split for s in sents):
        split = [[s for s in sents if not is_heading(s)] for sents in split]
    return split


def best_sentence(passages: list[str], question: str, *, embed, need_figure: bool = False,
                  scores: list[float] | None = None, skip_headings: bool = False,
                  by_meaning: bool = True) -> tuple[int, str, float] | None:
    """The sentence the extract grammar ranks first for `question` (`answer_sentences`, with
    `embed` when `by_meaning`), as (passage number, 1-based; sentence; match), where the match
    is the share of the question's content words it holds plus its cosine with the question
    (0..2); None when no sentence can carry an answer or none shares a word with the question
    (the grammar then ranks none first)."""
    split = _quotable(passages, _answering(question, need_figure), skip_headings)
    ranked = _ranked(split, question, scores, embed=embed if by_meaning else None)
    if not ranked:
        return None
    (p, i), shared, cos = ranked[0]
    sent = split[p][i]
    if cos is None:  # ranked by words alone: the match still needs the meaning
        vecs = embed([question, sent])
        cos = float(vecs[1] @ vecs[0])
    return p + 1, sent, shared + cos


_LOOSE_PUNCT = re.compile(r"[,;:.]+(?=\s*\[\d+\]\s*$)")


def tidy_span(text: str) -> str:
    """Drop the punctuation a span ends on before its citation: "Republic, [1]" was cut
    mid-sentence, and "1066. [1]" would leave the marker as a sentence of its own."""
    return _LOOSE_PUNCT.sub("", text.strip())
