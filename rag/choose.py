"""The `auto` template: which prompt template answers a question best, chosen from the model
(and, under the older rule, the question's wording) before the model runs.

The rule in force (`route="model"`) was chosen on the dev splits of the corpus and Git-manual
sets and confirmed on their test splits (docs/answers.md):

- a model of `WRITER_PARAMS` or more, or of unknown size (behind a server), writes every answer
  in its own words after worked examples (`few_shot`); the checks then hold each sentence
  against the passages, and an answer no passage supports is refused (the `backed` check);
- a smaller one answers through the grammar-constrained `extract` template, which copies a span
  from the passage sentence closest to the question (`extract.answer_sentences`), and the
  answer shown is that whole sentence, cited (`quote`): a small model's own sentences were
  where its fabrications came from, and its spans stopped short of the answer;
- a small model that takes no grammar (some servers) writes (`free_form`).

The earlier rule (`route="question"`) also sent every question worded as asking for an
explanation (`asks_explanation`: "why", "how does", "What is LoRA?", ...) to free writing, which
for the 135M default meant invented how-to steps on the Git manual ("use `git switch origin` to
rename the remote").

Which free-writing template suits a model depends on its size (`free_form`): the 135M default
writes its best sentences after worked examples (corpus set: few_shot 0.455 against cot 0.121),
the 0.5B Qwen2.5-Coder learns mostly the examples' refusal from them (few_shot 0.364 with 61%
false abstention, against cot 0.576 and 9%), so from `REASONING_PARAMS` on a model reasons first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

AUTO = "auto"
FALLBACK = "few_shot"
REASONING = "cot"
REASONING_PARAMS = 300_000_000  # between the 135M default (few_shot best) and the 0.5B (cot best)
EXTRACTIVE = "extract"
# from this size on a model writes every answer itself (`few_shot`): Qwen2.5-Coder-1.5B on the
# corpus dev set, contains 0.909 with no answerable question refused, against 0.758 and 0.061
# when fact questions went to extract; the 135M default and the 0.5B copy better than they write
WRITER_PARAMS = 1_000_000_000
WRITER = "few_shot"

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


def choose(question: str, *, grammar: bool, n_params: int | None = None, route: str = "model") -> Choice:
    """The template for `question`; `grammar`: whether the model can follow a grammar, which
    `extract` needs; `n_params`: the model's size (None: unknown, as behind most servers).

    `route` names the rule. `model` (default) goes by the model alone: one of `WRITER_PARAMS` or
    more, or of unknown size, writes every answer in its own words (`few_shot`), which the checks
    then read claim by claim; a smaller one quotes the passage sentence that answers (`extract`,
    shown whole: see `quote`). `question` is the earlier rule, which sent questions worded as
    asking for an explanation (`asks_explanation`) to free writing whatever the model."""
    own = free_form(n_params)
    if route == "question":
        if not grammar:
            return Choice(own, "the model takes no grammar, which extract needs")
        if asks_explanation(question):
            return Choice(own, "the question asks for an explanation")
        return Choice(EXTRACTIVE, "a question for a fact the passages state")
    if n_params is None or n_params >= WRITER_PARAMS:
        return Choice(WRITER, "a model of this size answers in its own words, checked claim by claim")
    if not grammar:
        return Choice(own, "the model takes no grammar, which extract needs")
    return Choice(EXTRACTIVE, "a small model quotes the passage sentence that answers")
