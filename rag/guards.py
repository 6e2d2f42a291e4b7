"""The answer checks, as one policy: what is checked before the model runs and after it, each
check named, with a stable code for the abstentions it causes, a switch, and its thresholds in
the settings.

Checks tuned on a 135M model's failures damage a capable model's answers (a terse correct
"Hugging Face [4]" scored 0.08 on the question-to-answer cosine; "When should I ...?" read as a
date question), so they come in profiles:

- `small`: everything below; what SmolLM2-135M needs (it invents names, figures and dates,
  rambles and loops);
- `capable`: only what helps any model: the retrieval gate, the injection filter, citation
  support and made-up figures, which flag a sentence instead of cutting it;
- `off`: nothing; the model's text as written, its markers read as citations;
- `auto` (default): `small` under about 1B parameters (read from the GGUF), else `capable`.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Callable

from . import claims
from .config import PROFILES, checks_switched_off
from .ground import SentenceCheck, check_citations, lexical_support
from .prompts import cut_instructions
from .text import (ABBREVIATIONS, CITE, SPACED_CITE, cited_numbers, content_words, figures,
                   mask_enumerators, normalise, sentences, states_quantity, stop_spans, strip_markers)

log = logging.getLogger(__name__)

# under `auto`, models with fewer parameters than this get `small`
SMALL_MODEL_PARAMS = 1_000_000_000

# Abstain codes: stable strings for programs; `Answer.abstain_reason` is the sentence for people.
EMPTY_INDEX = "empty_index"
UNKNOWN_NAMES = "unknown_names"
LOW_RETRIEVAL = "low_retrieval_score"
REFUSED = "refused"
NO_TEXT = "markers_only"
MADE_UP_FIGURES = "made_up_figures"
MADE_UP_NAMES = "made_up_names"
OTHER_SUBJECT = "other_subject"
MISSING_FIGURE = "missing_figure"
LOW_SUPPORT = "low_support"
OFF_TOPIC = "off_topic"
INSTRUCTIONS = "repeats_instructions"


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which checks run and how; made from the settings by `policy()`."""

    profile: str
    enabled: frozenset[str]
    flag_figures: bool = False  # flag made-up figures and off-subject claims instead of cutting them
    strict_refusal: bool = True  # any refusal phrase, not only in an answer that cites nothing
    max_sentences: int = 5
    min_score: float = 0.2
    min_support: float = 0.0
    min_relevance: float = 0.25
    citation_min_support: float = 0.5
    repoint_margin: float = 0.1

    def on(self, check: str) -> bool:
        return check in self.enabled


def policy(settings, *, n_params: int | None = None) -> Policy:
    """The policy the settings ask for; `auto` reads the model's size `n_params` (None: unknown,
    as behind an LLM server, where capable models are the norm)."""
    off = checks_switched_off(settings.guards, settings.checks_off)
    name = settings.guards
    if name == "auto":
        name = "small" if n_params is not None and n_params < SMALL_MODEL_PARAMS else "capable"
    small = name == "small"
    return Policy(profile=name, enabled=PROFILES[name] - off, flag_figures=not small,
                  strict_refusal=small, max_sentences=settings.max_sentences, min_score=settings.min_score,
                  min_support=settings.min_support, min_relevance=settings.min_relevance,
                  citation_min_support=settings.citation_min_support,
                  repoint_margin=settings.repoint_margin)


# ---------------------------------------------------------------- before generation

_NAME = re.compile(r"(?<!^)(?<![.?!:]\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")


def question_names(question: str) -> list[str]:
    """The names a question is about: capitalised words past its first word, and acronyms."""
    return list(dict.fromkeys(m.group(0).strip("-") for m in _NAME.finditer(question.strip())))


def retrieval_gate(retriever, query: str, hits, pol: Policy, *,
                   vocabulary: claims.Vocabulary | None = None) -> tuple[str, str]:
    """(code, reason) why the retrieved passages cannot answer `query`, or ("", "") when they may.

    With the embedder's `vocabulary` (and the `claims` check on), the question's rare terms
    ("frobnitz") count as names: a lower-case word the documents never use is as telling."""
    if not hits:
        from .retrieve import has_terms

        if len(retriever.store) and not has_terms(query):  # "???", "and the": retrieval returns nothing
            return LOW_RETRIEVAL, "the question has no words to search for"
        return EMPTY_INDEX, "the index is empty"
    if not pol.on("retrieval"):
        return "", ""
    names = question_names(query)
    if vocabulary and pol.on("claims"):
        names += [w for w in vocabulary.rare(query) if w not in {n.lower() for n in names}]
    unknown = retriever.unknown(names)
    if unknown:
        # the question is about something the documents never mention, however close its topic
        return UNKNOWN_NAMES, "the documents never mention " + ", ".join(repr(w) for w in unknown)
    best = max(h.dense for h in hits)
    # MiniLM embeds rare acronyms poorly ("What does RLHF stand for?" scores 0.16 against the
    # passage that spells it out), so passages naming everything the question names still count
    if best < pol.min_score and not (names and retriever.mentioned(names, hits)):
        return LOW_RETRIEVAL, f"no passage is close to the question (best cosine {best:.2f} < {pol.min_score:.2f})"
    return "", ""


def unknown_names(retriever, question: str) -> Callable[[list[str]], list[str]]:
    """Which of some names the indexed documents never mention (for `drop_made_up_names`)."""
    asked = set(re.findall(r"[\w-]+", question.lower()))

    def unknown(names: list[str]) -> list[str]:
        # names from the question count as known: the retrieval gate has already vetted them;
        # the stemmer keeps "GPUs" and "Google's" whole, so their singular is tried too
        # and no name the question did not use passes as a misspelling of one the documents
        # have ("DAGs" is not "GANs"): only people asking misspell, a model copies
        return [n for n in retriever.unknown(names, fuzzy=False) if n.lower() not in asked
                and retriever.unknown([re.sub(r"(?:'s|s)$", "", n)], fuzzy=False)]
    return unknown


# ---------------------------------------------------------------- reading the output

_REFUSAL = re.compile(
    r"not found in (?:your|the) (?:documents|passages|context)|\bI (?:do not|don't|cannot|can't) "
    r"(?:know|find|answer)|\b(?:passages|context|documents) (?:do(?:es)? not|don't) "
    r"(?:contain|mention|say|provide)|no (?:relevant )?information (?:about|on|in)", re.I)
# A small model that starts copying the prompt's scaffolding has stopped answering.
_ECHO = re.compile(r"\n?\[\d{1,3}\]\s*\([^)\n]*\)\s*\n|</?(?:context|pre|section|div|p|span)\b[^>]*>|"
                   r"\n\s*Question\s*:", re.I)


def refused(text: str, *, strict: bool = True) -> bool:
    """Whether `text` is a refusal. Strictly, any refusal phrase makes it one; otherwise only an
    answer that cites nothing ("The passages do not mention the year, but LoRA ... [1]" answers)."""
    if not strip_markers(text):
        return not text.strip()
    if not _REFUSAL.search(text):
        return False
    return strict or not CITE.search(text)


def cut_echo(text: str) -> str:
    m = _ECHO.search(text)
    return (text[:m.start()] if m else text).strip()


def drop_repeats(text: str) -> str:
    """Small models loop; keep each sentence once, the layout around the others as it was."""
    seen: set[str] = set()
    out, cursor, prev_end = [], 0, 0
    for start, end in stop_spans(text):
        key = normalise(text[start:end])
        if key and key in seen:  # the repeat goes with the space before it
            out.append(text[cursor:prev_end])
            cursor = end
        seen.add(key)
        prev_end = end
    out.append(text[cursor:])
    return "".join(out).strip()


def trim(text: str, max_sentences: int) -> str:
    """The first `max_sentences` sentences of `text` (0: all), the layout kept. "e.g." and
    initials end no sentence; a list item that ends in a full stop counts as one."""
    spans = stop_spans(text)
    if not max_sentences or len(spans) <= max_sentences:
        return text.strip()
    return text[:spans[max_sentences - 1][1]].strip()


# ---------------------------------------------------------------- figures and names

def made_up_figures(answer: str, sources: list[str], question: str = "", *,
                    embed: Callable[[list[str]], "object"] | None = None) -> list[tuple[str, list[str]]]:
    """Each sentence of the answer with the figures in it that no source contains ([] if none).

    A figure the passages do not contain is the surest sign of a made-up answer: a small model
    asked for a learning rate or a year it cannot find will still write one, often around a
    grounded sentence that is worth keeping. Figures the question gave count as known. With
    `embed` (the `claims` check), a sentence's figures must be in the passage sentences that
    back it (`claims.evidence`), not anywhere in the passages: "listens on 80" is not backed by
    "serves on port 8000" because another sentence mentions port 80."""
    asked = figures(question)
    # Enumerators are told apart in the whole answer: split into sentences, "including: 1. Image"
    # leaves "1." at a sentence end, where it reads like "has 16.". Masking them keeps every
    # sentence boundary where it was, so both splits line up.
    pairs = list(zip(sentences(answer), sentences(mask_enumerators(answer)), strict=True))
    backing: list[list[str]] = [sources] * len(pairs)
    if embed is not None:
        candidates = claims.passage_sentences(sources)
        with_figures = [i for i, (_, plain) in enumerate(pairs) if figures(plain) - asked]
        cos = claims.cosine_rows(embed, [pairs[i][1] for i in with_figures], candidates)
        for row, i in enumerate(with_figures):
            claim = strip_markers(pairs[i][1])
            if not claims.has_words(claim):
                continue  # a bare figure ("8000 [1]") has no words to find its sentence by
            ev = claims.evidence(claim, candidates, cosines=cos[row])
            if ev:  # no sentence backs it at all: the citation check speaks for it
                backing[i] = [candidates[j] for j in ev]
    out = []
    for (sent, plain), back in zip(pairs, backing):
        found = figures(plain) - asked
        unbacked = claims.unbacked_figures(plain, back, question)
        # "on the 14th of October 1066" with 1066 in the passage is grounded where it matters
        out.append((sent, unbacked if found and len(unbacked) == len(found) else []))
    return out


def drop_made_up_figures(answer: str, sources: list[str], question: str = "") -> tuple[str, list[str]]:
    """The answer without its sentences whose figures no source contains, and those figures."""
    kept, made_up = [], []
    for sent, bad in made_up_figures(answer, sources, question):
        made_up += [f for f in bad if f not in made_up]
        if not bad:
            kept.append(sent)
    return (" ".join(kept) if made_up else answer), made_up


_LEAD_CITE = re.compile(rf"(?:{CITE.pattern})*\s*")
# what may come before a sentence's first word: "- Whisper", "1. **Visualization**:", "## Summary"
_ITEM_START = re.compile(r"^[\s\"'“‘(#*_>•-]*(?:\d{1,2}[.)])?[\s\"'“‘(*_]*")
# in an answer already split into sentences, any capitalised word but the first may be a name
# ("e.g. DeepMind", "J. Minaj"); one after a semicolon is a sentence start in all but name
_ANSWER_NAME = re.compile(r"(?<!;\s)\b[A-Z][\w-]*|\b[A-Z]{2,}[\w-]*")
_TITLES = frozenset(ABBREVIATIONS)
# an abbreviation in brackets after the words it shortens: small models coin these ("(DLAS)")
_COINED = re.compile(r"(?<=\w)\s*\(([A-Z][A-Z0-9-]+s?)\)")


def drop_made_up_names(answer: str, *, unknown: Callable[[list[str]], list[str]]) -> tuple[str, list[str]]:
    """The answer without its sentences naming what the documents never mention, and those names.

    The counterpart of `drop_made_up_figures` for names: a small model asked who made PyTorch
    wrote a pop singer, and "NEAT" became a game "by DeepMind". A name is a capitalised word past
    a sentence's (or list item's) start, or an acronym; `unknown` returns those of a list that
    are nowhere in the documents. An abbreviation the model coined in brackets ("neural
    architecture search (DLAS)") is removed and the sentence kept: the words it shortens are
    what the sentence says."""
    kept, made_up, coined = [], [], set()
    dropped = False
    for sent in sentences(answer):
        # "engineer. [4] It ..." splits after the full stop: the marker goes with its sentence
        lead = _LEAD_CITE.match(sent).group(0)
        if lead.strip() and kept:
            if not dropped:
                kept[-1] += " " + lead.strip()
            sent = sent[len(lead):]
        if not strip_markers(sent):
            continue
        here = set(unknown([m.group(1) for m in _COINED.finditer(sent)]))
        coined |= here
        sent = _COINED.sub(lambda m: "" if m.group(1) in here else m.group(0), sent)
        body = strip_markers(sent)
        body = body[_ITEM_START.match(body).end():]
        body = re.sub(r"^[\w'’-]+", "", body)  # the first word is capitalised as a sentence start
        names = list(dict.fromkeys(m.group(0) for m in _ANSWER_NAME.finditer(body)
                                   if len(m.group(0)) > 1 and m.group(0) not in _TITLES))
        missing = unknown(names) if names else []
        made_up += [n for n in missing if n not in made_up]
        dropped = bool(missing)
        if not dropped:
            kept.append(sent)
    if made_up:
        return " ".join(kept), made_up
    # nothing cut: the answer keeps its layout (lists, line breaks), less the coined abbreviations
    return _COINED.sub(lambda m: "" if m.group(1) in coined else m.group(0), answer), []



# "When should I use LoRA?" asks for a condition; "When was/did ...?" for a date
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|old|often|far|big|large|fast|high|tall)\b|\bwhat (?:\w+[ -]){0,4}?"
    r"(?:rate|size|number|percentage|percent|year|date|accuracy|score|amount|count|price|cost|"
    r"temperature|speed|length|population)\b|\b(?:which|what) (?:year|decade|century)\b|"
    r"\bin which year\b|^when (?:was|were|did)\b", re.I)


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number or a date ("How many ...", "In which year ...")."""
    return bool(_QUANTITY.search(question.strip()))


# ---------------------------------------------------------------- after generation

@dataclasses.dataclass
class Verdict:
    """What the checks made of one generation: the answer to show, or the code and reason why
    there is none; per-sentence support and flags for the answer shown."""

    text: str = ""
    code: str = ""
    reason: str = ""
    cited: tuple[int, ...] = ()
    inferred: tuple[int, ...] = ()
    sentences: list[dict] = dataclasses.field(default_factory=list)
    support: float = 0.0
    relevance: float = 0.0

    def abstain(self, code: str, reason: str) -> "Verdict":
        self.code, self.reason = code, reason
        return self


def check_answer(question: str, query: str, text: str, blocks: list[str], sources: list[str], *,
                 pol: Policy, embed: Callable[[list[str]], "object"],
                 unknown: Callable[[list[str]], list[str]] | None = None,
                 relevance: list[float] | None = None, passages: list[str] | None = None,
                 vocabulary: claims.Vocabulary | None = None, span: bool = False) -> Verdict:
    """Run the policy's checks on the model's answer `text` (reasoning already split off).

    `blocks` are the context passages as numbered in the prompt, `sources` the retrieved passages
    in full (what a figure may come from), `unknown` tells which names the documents never
    mention, `relevance` the blocks' retrieval scores, `passages` each block's whole chunk with
    its headings (what a cited passage is about) and `vocabulary` the embedder's, which tells
    rare terms from common words (the `claims` check reads subjects only with one). `span`: the
    answer was copied from a passage (the extract template), so a terse one is judged relevant
    by the sentence it comes from."""
    embed = _memo(embed)  # the checks embed the same sentences and passages more than once
    out = Verdict()
    if pol.on("echo"):
        text = cut_echo(text)
    if pol.on("length"):
        text = trim(text, pol.max_sentences)
    if pol.on("repeats"):
        text = drop_repeats(text)
    if pol.on("injection"):  # what the filter held back as instructions is no answer either
        text, repeated = cut_instructions(text, sources)
        if repeated:
            log.info("left out answer sentences repeating instructions from the documents: %s", repeated)
            if not strip_markers(text):
                return out.abstain(INSTRUCTIONS, "the answer repeats instructions found in the documents")
    if pol.on("refusal") and refused(text, strict=pol.strict_refusal):
        return out.abstain(REFUSED, "the model found no answer in the passages")
    if not strip_markers(text):
        return out.abstain(NO_TEXT, "the answer holds citation markers and no text" if text.strip()
                           else "the model wrote nothing")
    flags: dict[str, list[str]] = {}
    if pol.on("figures"):
        per_sentence = made_up_figures(text, sources, question, embed=embed if pol.on("claims") else None)
        made_up = [f for _, bad in per_sentence for f in bad]
        if made_up and pol.flag_figures:
            for sent, bad in per_sentence:
                if bad:
                    flags.setdefault(normalise(strip_markers(sent)), []).append(
                        "states " + ", ".join(bad) + ", which no passage contains")
        elif made_up:
            log.info("left out answer sentences with figures no passage contains: %s", ", ".join(made_up))
            text = " ".join(s for s, bad in per_sentence if not bad)
            if not strip_markers(text):
                return out.abstain(MADE_UP_FIGURES, "the answer states figures no passage contains: "
                                   + ", ".join(dict.fromkeys(made_up[:5])))
    if pol.on("names") and unknown is not None:
        text, made_up = drop_made_up_names(text, unknown=unknown)
        if made_up:
            log.info("left out answer sentences naming what the documents never mention: %s", ", ".join(made_up))
        if not strip_markers(text):
            return out.abstain(MADE_UP_NAMES, "the answer names what the documents never mention: "
                               + ", ".join(made_up[:5]))
    if pol.on("quantity") and asks_quantity(question) and not states_quantity(text):
        return out.abstain(MISSING_FIGURE, "the question asks for a figure and no passage-backed one was given")
    if pol.on("citations"):
        checked = check_citations(text, blocks, embed=embed, relevance=relevance,
                                  min_support=pol.citation_min_support, margin=pol.repoint_margin)
        if checked.dropped:
            log.info("dropped unsupported citations %s", list(checked.dropped))
        out.text, out.cited, out.inferred, out.support = checked.text, checked.cited, checked.inferred, checked.support
        sents = list(checked.sentences)
        if pol.on("claims") and vocabulary is not None:
            sents, cut = _check_subjects(question, sents, blocks, passages or blocks, flags, pol=pol,
                                         embed=embed, vocabulary=vocabulary)
            if cut:
                kept = [c.text for c in sents]
                if not kept:
                    return out.abstain(OTHER_SUBJECT, "the passages the answer cites are about something "
                                       "else: " + "; ".join(cut[:3]))
                out.text = " ".join(kept)
                out.cited = cited_numbers(out.text, len(blocks))
                out.inferred = tuple(n for n in out.inferred if n not in out.cited) if not out.cited else ()
                if out.inferred:
                    out.text += "".join(f" [{n}]" for n in out.inferred)
        out.sentences = [_sentence(c, flags.get(normalise(strip_markers(c.text)), []), pol)
                         for c in sents]
    else:
        out.text, out.cited = text, cited_numbers(text, len(blocks))
        out.sentences = [{"text": s, "passage": 0, "support": None, "verified": None,
                          "flags": flags.get(normalise(strip_markers(s)), [])} for s in sentences(text)]
    if pol.on("relevance") or pol.on("support"):
        q_vec, a_vec = embed([query, strip_markers(out.text)])
        out.relevance = float(q_vec @ a_vec)
        if span and out.relevance < pol.min_relevance and pol.on("relevance"):
            out.relevance = max(out.relevance, _terse_relevance(q_vec, out, blocks, embed))
    if pol.on("relevance") and out.relevance < pol.min_relevance:
        # grounded or not, text about something else is no answer (and its sources mislead)
        return out.abstain(OFF_TOPIC, f"the answer does not address the question (cosine "
                                      f"{out.relevance:.2f} < {pol.min_relevance:.2f})")
    if pol.on("support") and out.support < pol.min_support:
        # nothing retrieved backs what the model wrote: a made-up answer is worse than none
        return out.abstain(LOW_SUPPORT, f"answer support {out.support:.2f} is below {pol.min_support:.2f}")
    return out


TERSE_WORDS = 4  # an answer of at most this many content words is read in its passage sentence


def _terse_relevance(q_vec, out: Verdict, blocks: list[str], embed) -> float:
    """The question's cosine to the passage sentence a terse copied span comes from, or 0.

    "ReLU [2]" or "SHAP values [2]" says too little on its own to embed near "Which activation
    function helps with the vanishing gradient problem?" (cosine 0.12), yet the sentence it was
    copied from answers it (0.62): the 0.5B model lost 6 right extract answers on the corpus
    set to the relevance check that way. A sentence counts when it mentions every content word
    of the answer; among the cited passages' (all passages' when none is cited), the closest to
    the question. In notes a line's subject is often the line before ("PyTorch : A framework."
    then "Open Source software, made initially by Meta AI"), so each sentence is also read
    joined to the one before it in its passage."""
    answer = strip_markers(out.text)
    if not 0 < len(content_words(answer)) <= TERSE_WORDS:
        return 0.0
    cited = [n for n in (*out.cited, *out.inferred) if 1 <= n <= len(blocks)] or range(1, len(blocks) + 1)
    homes = []
    for n in cited:
        sents = sentences(blocks[n - 1])
        for i, sent in enumerate(sents):
            if claims.mentions(content_words(sent), answer):
                homes += [sent] + ([f"{sents[i - 1]} {sent}"] if i else [])
    if not homes:
        return 0.0
    return max(float(v @ q_vec) for v in embed(homes))


def _memo(embed: Callable[[list[str]], "object"]) -> Callable[[list[str]], "object"]:
    import numpy as np

    cache: dict[str, object] = {}

    def embed_once(texts: list[str]):
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            cache.update(zip(todo, embed(todo)))
        return np.stack([cache[t] for t in texts]) if texts else embed(texts)
    return embed_once


def _check_subjects(question: str, sents: list[SentenceCheck], blocks: list[str], passages: list[str],
                    flags: dict[str, list[str]], *, pol: Policy, embed, vocabulary: claims.Vocabulary
                    ) -> tuple[list[SentenceCheck], list[str]]:
    """Each sentence's subject (`claims.subject`) against the passages it cites. A citation to a
    passage that lacks it moves to a block that has it and supports the sentence; failing that
    the sentence is cut (small) or flagged (capable). Returns the sentences kept and, for each
    cut one, why."""
    asked = claims.key_terms(question, vocabulary, question=True)
    words = [content_words(p) for p in passages]
    most = claims.specific(asked, words)
    kept, cut = [], []
    for check in sents:
        subject = claims.subject(check.text, asked, most)
        cited = cited_numbers(check.text, len(blocks)) or ((check.passage,) if check.passage else ())
        if not (subject.own or subject.asked) or not cited:
            kept.append(check)
            continue
        missing = {n: subject.missing(words[n - 1]) for n in cited}
        if any(not m for m in missing.values()):
            kept.append(check)
            continue
        claim = strip_markers(check.text)
        fits = [j for j in range(1, len(blocks) + 1) if j not in cited and not subject.missing(words[j - 1])]
        if fits:
            cos = claims.cosine_rows(embed, [claim], [blocks[j - 1] for j in fits])[0]
            score = {j: max(lexical_support(claim, blocks[j - 1]), float(c)) for j, c in zip(fits, cos)}
            best = max(fits, key=lambda j: score[j])
            # the new passage must back the claim about as well as the one it cited: "Two years" moved
            # from the gizmo note to the frobnitz one (five years) would read as checked
            if score[best] >= max(pol.citation_min_support, check.support - pol.repoint_margin):
                text = SPACED_CITE.sub("", check.text).rstrip()
                text = (text[:-1] + f" [{best}]" + text[-1]) if text[-1:] in ".!?" else f"{text} [{best}]"
                kept.append(dataclasses.replace(check, text=text, passage=best, support=round(score[best], 4)))
                continue
        n = cited[0]
        why = f"cites [{n}], which does not mention {', '.join(missing[n])}"
        if pol.flag_figures:  # the capable profile flags what the small one cuts
            flags.setdefault(normalise(claim), []).append(why)
            kept.append(check)
        else:
            log.info("left out an answer sentence that %s", why)
            cut.append(why)
    return kept, cut


def _sentence(check: SentenceCheck, flags: list[str], pol: Policy) -> dict:
    supported = check.supported(pol.citation_min_support)
    if not supported:
        flags = [*flags, "no passage supports it"]
    return {"text": check.text, "passage": check.passage, "support": check.support,
            "verified": supported and not flags, "flags": flags}
