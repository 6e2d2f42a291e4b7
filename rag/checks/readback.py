"""The last stages: the model's output read back into a checked `Answer`. A span is tidied, a
generation the token limit cut is shortened to its last whole sentence, the output is parsed
for its template, the policy's checks run on it (see `answer`), and what it cites becomes
`Citation`s."""
from __future__ import annotations

import logging
import re
from typing import Callable

from ..chunk import embed_text
from ..extract import tidy_span
from ..prompts import ABSTAIN_TEXT, parse_output
from ..quote import quote_sentence
from ..retrieve import Retriever
from ..text import CITE, normalise, strip_markers
from ..types import Answer, Citation, Generation, Hit, SentenceSupport, Usage
from .answer import check_answer
from .made_up_names import unknown_names
from .profiles import Policy

log = logging.getLogger(__name__)

SNIPPET_CHARS = 240


def read_back(question: str, query: str, gen: Generation, prompt, hits: list[Hit], retriever: Retriever,
              pol: Policy, *, embed, vocabulary, quote: bool = False, quote_previous: bool = False,
              quote_context: str = "none", overrule: Callable[[], str | None] | None = None,
              previous: str = "", previous_question: str = "") -> Answer:
    """Read the model's output back and run the policy's checks on it (see `check_answer`).
    With `quote`, a copied span is read as the whole sentence it was copied from (`quote`);
    `previous` and `previous_question` are the conversation's last turn ("" for none), which the
    follow-up check holds the answer against. `overrule`, called when the model gave the abstain
    text, gives the answer to check instead ("<sentence> [n]"), or None to let the refusal stand."""
    tmpl = prompt.template
    raw = tidy_span(gen.text) if tmpl.extractive else gen.text
    if gen.finish_reason == "length":
        raw = cut_unfinished(raw)  # the token limit stopped it mid-sentence, or mid-word
    parsed = parse_output(raw, template=tmpl, n_blocks=len(prompt.blocks))
    blocks = list(prompt.blocks)
    answer = Answer(question=question, text=ABSTAIN_TEXT, hits=hits, reasoning=parsed.reasoning,
                    draft=parsed.text, template=tmpl.name, guards=pol.profile,
                    usage=Usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens))
    text = parsed.text
    if normalise(parsed.text) == normalise(ABSTAIN_TEXT):  # the answer the prompt asks for
        text = overrule() if overrule is not None else None
        if text is None:
            answer.abstained, answer.abstain_code = True, "refused"
            answer.abstain_reason = "the model found no answer in the passages"
            return answer
        log.info("the model's refusal overruled: the best sentence matches the question well")
    if quote and tmpl.extractive:
        # the checks read the quote with the sentences around it (`quote_context`): on the dev
        # splits, checking the quoted sentence alone and adding them afterwards refused more
        # answerable questions (corpus 0.030 -> 0.061, Git 0.049 -> 0.086) and no more unanswerable ones
        text = quote_sentence(text, [b.chunk.text for b in blocks], with_previous=quote_previous,
                              context=quote_context)
    whole = {h.chunk.id: h.chunk for h in hits}  # a block's chunk before compression, headings too
    verdict = check_answer(question, query, text, [b.chunk.text for b in blocks],
                           [h.chunk.text for h in hits], pol=pol, embed=embed,
                           unknown=unknown_names(retriever, question) if pol.on("names") else None,
                           relevance=[b.score for b in blocks],
                           passages=[embed_text(whole.get(b.chunk.id, b.chunk)) for b in blocks],
                           vocabulary=vocabulary, span=tmpl.extractive,
                           previous_question=previous_question, previous=previous)
    answer.support, answer.relevance = round(verdict.support, 4), round(verdict.relevance, 4)
    if verdict.code:
        log.info("abstaining: %s", verdict.reason)
        answer.abstained, answer.abstain_code, answer.abstain_reason = True, verdict.code, verdict.reason
        return answer
    answer.text = verdict.text
    answer.citations = [citation(n, blocks[n - 1]) for n in verdict.cited]
    answer.citations += [citation(n, blocks[n - 1], inferred=True) for n in verdict.inferred]
    answer.sentences = [SentenceSupport(d["text"], d["passage"], d["support"], d["verified"], tuple(d["flags"]))
                        for d in verdict.sentences]
    return answer


_SENTENCE_END = re.compile(rf"[.!?](?:\s*{CITE.pattern})*[\"')\]]*(?=\s|$)")


def cut_unfinished(text: str) -> str:
    """A generation the token limit stopped: up to its last complete sentence, or, when there is
    none, up to its last whole word followed by "..."."""
    if not strip_markers(text):
        return text.strip()  # nothing was said: the checks read it as no answer
    ends = list(_SENTENCE_END.finditer(text))
    if ends and ends[-1].end() > len(text) // 3:
        return text[:ends[-1].end()]
    head = text.rsplit(None, 1)[0] if len(text.split()) > 1 else text
    return head.rstrip(" ,;:-") + " ..."


def citation(n: int, hit: Hit, *, inferred: bool = False) -> Citation:
    """Context block `n` (`hit`) as the answer cites it: its source, location and a snippet."""
    text = " ".join(hit.chunk.text.split())
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."
    return Citation(n=n, source=hit.chunk.source, chunk_id=hit.chunk.id, score=round(hit.dense, 4),
                    snippet=snippet, heading=hit.chunk.heading, inferred=inferred,
                    location=hit.chunk.location)
