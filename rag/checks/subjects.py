"""The subject half of the `claims` check: what each answer sentence is about must be in the
passage it cites (`claims.subject`), else its citation moves to a passage that has it, else the
sentence is cut (small) or flagged (capable)."""
from __future__ import annotations

import dataclasses
import logging

from ..text import SPACED_CITE, cited_numbers, content_words, normalise, strip_markers
from . import claims
from .ground import SentenceCheck, lexical_support
from .profiles import Policy

log = logging.getLogger(__name__)


def check_subjects(question: str, sents: list[SentenceCheck], blocks: list[str], passages: list[str],
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
