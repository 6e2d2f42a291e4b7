"""The `auto` template: which prompt template answers a question best, chosen per question from
the question and the model, before the model runs.

The grammar-constrained `extract` template copies a span from the passage sentence closest to
the question (`extract.answer_sentences`). With that, it is the best template for both measured
models on both shipped sets, prose (SQuAD's paragraphs) and notes (the corpus's list items and
headings): 135M corpus set 0.545 against 0.455 for few_shot, 0.5B 0.727 against 0.576 for cot.
Before a span was limited to that one sentence, extract lost to few_shot on notes (0.121
against 0.455), which is why an earlier rule sent notes to few_shot.

A question asking for an explanation (`asks_explanation`: "why", "how does", "explain",
"describe", "what is the difference" ..., "What is LoRA?", "What is X used for?", "When should
I ...") wants sentences of its own, not a copied span, and so does a model that takes no
grammar (some LLM servers). Which template writes them best depends
on the model (`free_form`). The 135M default writes its best sentences after worked examples
(corpus set: few_shot 0.455 against cot 0.121), while the 0.5B Qwen2.5-Coder learns mostly the
examples' refusal from them (few_shot 0.364 with 61% false abstention, against cot 0.576 and 9%;
SQuAD sample 0.278 against 0.500), so a model of `REASONING_PARAMS` or more reasons first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

AUTO = "auto"
FALLBACK = "few_shot"
REASONING = "cot"
REASONING_PARAMS = 300_000_000  # between the 135M default (few_shot best) and the 0.5B (cot best)
EXTRACTIVE = "extract"

_EXPLAIN = re.compile(
    r"^\s*(?:why\b|how (?:does|do|did|is|are|can|could|should|would|to)\b|explain\b|describe\b|"
    r"compare\b|summari[sz]e\b|discuss\b|what (?:is|are) the (?:difference|differences|advantages?|"
    r"disadvantages?|benefits?|pros|role|purpose|idea)\b|what happens\b|in what way)", re.I)


@dataclass(frozen=True)
class Choice:
    """The template `auto` picked and why, in words (shown as `Answer.template_reason`)."""

    template: str
    reason: str


# what a thing is for, or when to use it, is answered across sentences: on the corpus set
# "What can autoencoders be used for?" got a heading's span from extract ("Autoencoder (VAE):
# probability distribution used for the code [1]") and "compression, denoising" in own words
_PURPOSE = re.compile(r"\b(?:used|useful|good) for\s*\?\s*$|^\s*(?:when )?should (?:i|we|you|one)\b|"
                      r"^\s*when (?:should|would|do|can) (?:i|we|you|one)\b", re.I)
# "What is LoRA?" asks what a term means: a copied span gives a heading ("(PEFT / LoRA) [2]").
# At most three words after the article, none relating it to something else ("What is the
# capital of Australia?" asks for a fact)
_DEFINE = re.compile(r"^\s*what(?:'s| is| are) (?:an? |the )?([\w\-/.+]+(?: [\w\-/.+]+){0,2})\s*\?\s*$", re.I)
_RELATING = frozenset("of in on for between by to with from at about than as".split())


def asks_explanation(question: str) -> bool:
    """Whether the question asks for an explanation, what a term means, what a thing is for or
    when to use it, rather than for a fact."""
    if _EXPLAIN.search(question) or _PURPOSE.search(question):
        return True
    term = _DEFINE.match(question)
    return bool(term) and not _RELATING & set(term.group(1).lower().split())


def free_form(n_params: int | None) -> str:
    """The template a model of `n_params` parameters answers best in its own words (None: a
    server that does not say, which keeps the long-standing default)."""
    return REASONING if n_params is not None and n_params >= REASONING_PARAMS else FALLBACK


def choose(question: str, *, grammar: bool, n_params: int | None = None) -> Choice:
    """The template for `question`; `grammar`: whether the model can follow a grammar, which
    `extract` needs; `n_params`: the model's size."""
    own = free_form(n_params)
    if not grammar:
        return Choice(own, "the model takes no grammar, which extract needs")
    if asks_explanation(question):
        return Choice(own, "the question asks for an explanation")
    return Choice(EXTRACTIVE, "a question for a fact the passages state")
