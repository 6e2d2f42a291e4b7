"""The checks after generation, run in order on the model's answer (`check_answer`).

Each check is a small function of one `Draft`: the answer as the checks before it left it, and
what they found. It changes the draft, or returns the (code, reason) of an abstention, which
ends the run. `ORDER` lists them in the order they run, each under the switch (a name in
`rag.config.CHECKS`) that turns it on; the order matters: the tidying checks come first so that
the figures and names checks read what will be shown, and relevance is measured on the answer
the citation check left.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np

from ..prompts import cut_instructions
from ..text import cited_numbers, content_words, normalise, sentences, states_quantity, strip_markers
from .claims import Vocabulary
from .expansions import made_up_expansions
from .figures import asks_quantity, made_up_figures
from .followup import repeated_sentences
from .ground import SentenceCheck, check_citations
from .made_up_names import drop_made_up_names
from .output import cut_echo, drop_repeats, refused, trim
from .profiles import Policy
from .relevance import terse_relevance
from .subjects import check_subjects
from .verdict import (INSTRUCTIONS, LOW_COVERAGE, LOW_SUPPORT, MADE_UP_EXPANSIONS, MADE_UP_FIGURES,
                      MADE_UP_NAMES, MISSING_FIGURE, NO_TEXT, OFF_TOPIC, OTHER_SUBJECT, REFUSED, REPEATS_PREVIOUS,
                      UNBACKED, Verdict)

log = logging.getLogger(__name__)

Abstain = tuple[str, str] | None  # what a check returns: (code, reason) to abstain, None to go on


@dataclasses.dataclass
class Draft:
    """One answer going through the checks: what they read (the question, the passages, the
    policy) and what they change (`text`, the flags per sentence, the `Verdict` being built).

    `blocks` are the context passages as numbered in the prompt, `sources` the retrieved passages
    in full (what a figure may come from), `unknown` tells which names the documents never
    mention, `relevance` the blocks' retrieval scores, `passages` each block's whole chunk with
    its headings (what a cited passage is about) and `vocabulary` the embedder's, which tells
    rare terms from common words. `span`: the answer was copied from a passage (the extract
    template). `previous_question` and `previous`: the conversation's last turn, "" for none."""

    question: str
    query: str
    text: str
    blocks: list[str]
    sources: list[str]
    pol: Policy
    embed: Callable[[list[str]], "object"]
    unknown: Callable[[list[str]], list[str]] | None = None
    relevance: list[float] | None = None
    passages: list[str] | None = None
    vocabulary: Vocabulary | None = None
    span: bool = False
    previous_question: str = ""
    previous: str = ""
    flags: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # by normalised sentence
    checked: list[SentenceCheck] | None = None  # per sentence, once the citation check has run
    out: Verdict = dataclasses.field(default_factory=Verdict)


# ---------------------------------------------------------------- tidying what the model wrote

def _echo(d: Draft) -> Abstain:
    d.text = cut_echo(d.text)


def _length(d: Draft) -> Abstain:
    d.text = trim(d.text, d.pol.max_sentences)


def _repeats(d: Draft) -> Abstain:
    d.text = drop_repeats(d.text)


def _injection(d: Draft) -> Abstain:
    # what the filter held back as instructions is no answer either
    d.text, repeated = cut_instructions(d.text, d.sources)
    if repeated:
        log.info("left out answer sentences repeating instructions from the documents: %s", repeated)
        if not strip_markers(d.text):
            return INSTRUCTIONS, "the answer repeats instructions found in the documents"


def _refusal(d: Draft) -> Abstain:
    if refused(d.text, strict=d.pol.strict_refusal):
        return REFUSED, "the model found no answer in the passages"


def _has_text(d: Draft) -> Abstain:
    if not strip_markers(d.text):
        return NO_TEXT, ("the answer holds citation markers and no text" if d.text.strip()
                         else "the model wrote nothing")


# ---------------------------------------------------------------- what the answer states

_REPEATS = "repeats the previous answer and does not address the follow-up question"


def _flag(d: Draft, sent: str, why: str) -> None:
    """Flag a sentence instead of cutting it (capable), under the key `_sentences` reads."""
    d.flags.setdefault(normalise(strip_markers(sent)), []).append(why)


def _followup(d: Draft) -> Abstain:
    """Sentences repeating the previous turn's answer to a follow-up that asks something else."""
    per_sentence = repeated_sentences(d.question, d.text, d.previous_question, d.previous, d.sources)
    if not any(repeats for _, repeats in per_sentence):
        return None
    if d.pol.flag_figures:  # capable: flagged, as a made-up figure is
        for sent, repeats in per_sentence:
            if repeats:
                _flag(d, sent, _REPEATS)
        return None
    log.info("left out sentences repeating the previous answer")
    d.text = " ".join(sent for sent, repeats in per_sentence if not repeats)
    if not strip_markers(d.text):
        return REPEATS_PREVIOUS, "the answer " + _REPEATS


def _figures(d: Draft) -> Abstain:
    per_sentence = made_up_figures(d.text, d.sources, d.question,
                                   embed=d.embed if d.pol.on("claims") else None)
    made_up = [f for _, bad in per_sentence for f in bad]
    if made_up and d.pol.flag_figures:
        for sent, bad in per_sentence:
            if bad:
                _flag(d, sent, "states " + ", ".join(bad) + ", which no passage contains")
    elif made_up:
        log.info("left out answer sentences with figures no passage contains: %s", ", ".join(made_up))
        d.text = " ".join(s for s, bad in per_sentence if not bad)
        if not strip_markers(d.text):
            return MADE_UP_FIGURES, ("the answer states figures no passage contains: "
                                     + ", ".join(dict.fromkeys(made_up[:5])))


def _names(d: Draft) -> Abstain:
    if d.unknown is None:
        return None
    d.text, made_up = drop_made_up_names(d.text, unknown=d.unknown)
    if made_up:
        log.info("left out answer sentences naming what the documents never mention: %s", ", ".join(made_up))
    if not strip_markers(d.text):
        return MADE_UP_NAMES, "the answer names what the documents never mention: " + ", ".join(made_up[:5])


def _expansions(d: Draft) -> Abstain:
    """Acronyms expanded, or abbreviated in brackets, as no passage does; a made-up bracket
    alone is removed, keeping its sentence."""
    per_sentence = made_up_expansions(d.text, d.sources)
    made_up = [r for _, reasons, _ in per_sentence for r in reasons]
    if not made_up:
        return None
    if d.pol.flag_figures:  # capable: a reader sees the sentence and why it is doubtful
        for sent, reasons, _ in per_sentence:
            for why in reasons:
                _flag(d, sent, why)
        return None
    log.info("left out made-up expansions: %s", "; ".join(made_up))
    d.text = " ".join(kept for _, _, kept in per_sentence if kept)
    if not strip_markers(d.text):
        return MADE_UP_EXPANSIONS, ("the answer explains an abbreviation in a way no passage does: "
                                    + "; ".join(dict.fromkeys(made_up[:3])))


def _quantity(d: Draft) -> Abstain:
    if asks_quantity(d.question) and not states_quantity(d.text):
        return MISSING_FIGURE, "the question asks for a figure and no passage-backed one was given"


# ---------------------------------------------------------------- what backs it

def _citations(d: Draft) -> Abstain:
    checked = check_citations(d.text, d.blocks, embed=d.embed, relevance=d.relevance,
                              min_support=d.pol.citation_min_support, margin=d.pol.repoint_margin)
    if checked.dropped:
        log.info("dropped unsupported citations %s", list(checked.dropped))
    out = d.out
    out.text, out.cited, out.inferred, out.support = checked.text, checked.cited, checked.inferred, checked.support
    d.checked = list(checked.sentences)


def _subjects(d: Draft) -> Abstain:
    # read per sentence as the citation check left it, and only with a vocabulary to tell the
    # question's rare terms by
    if d.checked is None or d.vocabulary is None:
        return None
    d.checked, cut = check_subjects(d.question, d.checked, d.blocks, d.passages or d.blocks, d.flags,
                                    pol=d.pol, embed=d.embed, vocabulary=d.vocabulary)
    if not cut:
        return None
    out = d.out
    kept = [c.text for c in d.checked]
    if not kept:
        return OTHER_SUBJECT, "the passages the answer cites are about something else: " + "; ".join(cut[:3])
    out.text = " ".join(kept)
    out.cited = cited_numbers(out.text, len(d.blocks))
    out.inferred = tuple(n for n in out.inferred if n not in out.cited) if not out.cited else ()
    if out.inferred:
        out.text += "".join(f" [{n}]" for n in out.inferred)


def _sentences(d: Draft) -> Abstain:
    """The answer shown, sentence by sentence with its support and flags: as the citation check
    read it, or, with that check off, as written and citing what its markers say."""
    out = d.out
    if d.checked is not None:
        out.sentences = [_sentence(c, d.flags.get(normalise(strip_markers(c.text)), []), d.pol)
                         for c in d.checked]
        return None
    out.text, out.cited = d.text, cited_numbers(d.text, len(d.blocks))
    out.sentences = [{"text": s, "passage": 0, "support": None, "verified": None,
                      "flags": d.flags.get(normalise(strip_markers(s)), [])} for s in sentences(d.text)]


def _backed(d: Draft) -> Abstain:
    # a capable model's answer is kept sentence by sentence, flags and all; but one no sentence
    # of which any passage supports is the model's own knowledge or invention, and shown with a
    # flag on every line it still reads as an answer (1.5B, corpus dev set: "LSTM was invented by
    # ... in 1986" for a question the notes do not answer). Read only where the citation check
    # measured the support
    if d.checked and not any(c.supported(d.pol.citation_min_support) for c in d.checked):
        return UNBACKED, "no passage supports any sentence of the answer"


def _coverage(d: Draft) -> Abstain:
    # a small model's quoted sentence is always backed by its passage, so the backing checks
    # cannot tell a sentence on the question's topic from one that answers it ("What rank is
    # recommended for LoRA adapters?" -> "Methods like LoRA and QLoRA allow adapting a 7B-70B
    # model on a single GPU"); a passage holding few of the question's words rarely answers it
    cited = [*d.out.cited, *d.out.inferred]
    asked = content_words(d.question)
    if not cited or not asked:
        return None
    texts = d.passages or d.blocks
    held = asked & content_words(" ".join(texts[n - 1] for n in cited))
    if len(held) / len(asked) < d.pol.min_coverage:
        missing = ", ".join(sorted(asked - held)[:5])
        return LOW_COVERAGE, (f"the passages found do not mention {missing}, which the question asks about")


# ---------------------------------------------------------------- whether it answers

def _measure_relevance(d: Draft) -> Abstain:
    """The answer's cosine to the question, which both `relevance` and `support` report."""
    if not (d.pol.on("relevance") or d.pol.on("support")):
        return None
    out = d.out
    q_vec, a_vec = d.embed([d.query, strip_markers(out.text)])
    out.relevance = float(q_vec @ a_vec)
    if d.span and out.relevance < d.pol.min_relevance and d.pol.on("relevance"):
        out.relevance = max(out.relevance,
                            terse_relevance(q_vec, out.text, (*out.cited, *out.inferred), d.blocks, d.embed))


def _relevance(d: Draft) -> Abstain:
    # grounded or not, text about something else is no answer (and its sources mislead)
    if d.out.relevance < d.pol.min_relevance:
        return OFF_TOPIC, (f"the answer does not address the question (cosine "
                           f"{d.out.relevance:.2f} < {d.pol.min_relevance:.2f})")


def _support(d: Draft) -> Abstain:
    # nothing retrieved backs what the model wrote: a made-up answer is worse than none
    if d.out.support < d.pol.min_support:
        return LOW_SUPPORT, f"answer support {d.out.support:.2f} is below {d.pol.min_support:.2f}"


# The checks in the order they run, each under its switch (None: always runs).
ORDER: tuple[tuple[str | None, Callable[[Draft], Abstain]], ...] = (
    ("echo", _echo),
    ("length", _length),
    ("repeats", _repeats),
    ("injection", _injection),
    ("refusal", _refusal),
    (None, _has_text),
    ("followup", _followup),
    ("figures", _figures),
    ("names", _names),
    ("expansions", _expansions),
    ("quantity", _quantity),
    ("citations", _citations),
    ("claims", _subjects),
    (None, _sentences),
    ("backed", _backed),
    (None, _measure_relevance),
    ("relevance", _relevance),
    ("support", _support),
    ("coverage", _coverage),
)


def check_answer(question: str, query: str, text: str, blocks: list[str], sources: list[str], *,
                 pol: Policy, embed: Callable[[list[str]], "object"],
                 unknown: Callable[[list[str]], list[str]] | None = None,
                 relevance: list[float] | None = None, passages: list[str] | None = None,
                 vocabulary: Vocabulary | None = None, span: bool = False,
                 previous_question: str = "", previous: str = "") -> Verdict:
    """Run the policy's checks, in `ORDER`, on the model's answer `text` (reasoning
    already split off); the arguments are those of `Draft`. The claims check reads subjects only
    with a `vocabulary`; with `span`, a terse answer is judged relevant by the sentence it was
    copied from; `previous_question` and `previous` (the last turn) let a follow-up's answer be
    told from the previous one."""
    draft = Draft(question, query, text, blocks, sources, pol,
                  embed=_memo(embed),  # the checks embed the same sentences and passages more than once
                  unknown=unknown, relevance=relevance, passages=passages, vocabulary=vocabulary, span=span,
                  previous_question=previous_question, previous=previous)
    for switch, check in ORDER:
        if switch is None or pol.on(switch):
            stop = check(draft)
            if stop:
                return draft.out.abstain(*stop)
    return draft.out


def _memo(embed: Callable[[list[str]], "object"]) -> Callable[[list[str]], "object"]:
    cache: dict[str, object] = {}

    def embed_once(texts: list[str]):
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            cache.update(zip(todo, embed(todo)))
        return np.stack([cache[t] for t in texts]) if texts else embed(texts)
    return embed_once


def _sentence(check: SentenceCheck, flags: list[str], pol: Policy) -> dict:
    supported = check.supported(pol.citation_min_support)
    if not supported:
        flags = [*flags, "no passage supports it"]
    return {"text": check.text, "passage": check.passage, "support": check.support,
            "verified": supported and not flags, "flags": flags}
