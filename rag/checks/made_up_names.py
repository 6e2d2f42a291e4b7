"""The `names` check: sentences naming what the indexed documents never mention are cut, and
abbreviations the model coined in brackets are removed. What counts as a name: `names`."""
from __future__ import annotations

import re
from typing import Callable

from ..text import CITE, sentences, strip_markers
from .names import ANSWER_NAME, COINED, TITLES, name_body

_LEAD_CITE = re.compile(rf"(?:{CITE.pattern})*\s*")


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
        here = set(unknown([m.group(1) for m in COINED.finditer(sent)]))
        coined |= here
        sent = COINED.sub(lambda m: "" if m.group(1) in here else m.group(0), sent)
        names = list(dict.fromkeys(m.group(0) for m in ANSWER_NAME.finditer(name_body(sent))
                                   if len(m.group(0)) > 1 and m.group(0) not in TITLES))
        missing = unknown(names) if names else []
        made_up += [n for n in missing if n not in made_up]
        dropped = bool(missing)
        if not dropped:
            kept.append(sent)
    if made_up:
        return " ".join(kept), made_up
    # nothing cut: the answer keeps its layout (lists, line breaks), less the coined abbreviations
    return COINED.sub(lambda m: "" if m.group(1) in coined else m.group(0), answer), []
