"""An off-topic answer gets one extractive retry: the real embedder and index, a scripted model."""
import re

import pytest

from rag import RAG
from rag.llm import Generation

pytestmark = pytest.mark.e2e
OFF_TOPIC = "Bananas are a yellow fruit rich in potassium."


class ScriptedLLM:
    """The real model's tokenizer and context size; answers come from `replies` in turn."""

    def __init__(self, real, replies):
        self.real = real
        self.replies = list(replies)
        self.grammars: list[str | None] = []

    def warm_up(self):
        return self.real.warm_up()

    def count_tokens(self, messages):
        return self.real.count_tokens(messages)

    @property
    def n_ctx(self):
        return self.real.n_ctx

    def stream(self, messages, *, grammar=None, **kwargs):
        self.grammars.append(grammar)
        reply = self.replies.pop(0)
        text = reply(messages[-1].content) if callable(reply) else reply
        yield text
        yield Generation(text=text, prompt_tokens=100, completion_tokens=5, cached_tokens=0, ttft=0.1,
                         total=0.2, finish_reason="stop")

    def generate(self, messages, **kwargs):
        return [x for x in self.stream(messages, **kwargs) if isinstance(x, Generation)][0]


QUESTION = "What is the key feature of transformer networks?"


def quote(context: str) -> str:
    """A span the grammar allows: words of the context sentence that answers QUESTION, with its number."""
    for n, body in re.findall(r"\[(\d+)\] \([^)\n]*\)\n(.*?)(?=\n\n\[\d+\] \(|\n</context>)", context, re.S):
        for sent in re.split(r"(?<=[.!?])\s+", " ".join(body.split())):
            if "key feature of transformer networks is the self-attention" in sent:
                return sent[sent.index("the self-attention"):].split(",")[0] + f" [{n}]"
    raise AssertionError("no passage sentence names the key feature of transformers")


def scripted(real_rag, replies, **settings) -> tuple[RAG, ScriptedLLM]:
    rag = RAG(index=real_rag.settings.index, n_ctx=2048, **settings)
    llm = ScriptedLLM(real_rag.llm, replies)
    rag._embedder, rag._llm = real_rag.embedder, llm
    return rag, llm


def test_off_topic_answer_is_retried_as_a_quote(real_rag):
    rag, llm = scripted(real_rag, [OFF_TOPIC, quote])
    answer = rag.ask(QUESTION)
    assert llm.grammars[0] is None and llm.grammars[1] and "root ::=" in llm.grammars[1]
    assert not answer.abstained, answer.abstain_reason
    assert answer.template == "extract"
    assert answer.text.startswith("the self-attention mechanism") and "Bananas" not in answer.text
    assert answer.citations and answer.relevance >= rag.settings.min_relevance
    assert answer.usage.prompt_tokens == 200  # both calls are counted


def test_retry_that_fails_too_abstains_with_the_first_reason(real_rag):
    rag, llm = scripted(real_rag, [OFF_TOPIC, OFF_TOPIC])
    answer = rag.ask(QUESTION)
    assert len(llm.grammars) == 2
    assert answer.abstained and "does not address the question" in answer.abstain_reason
    assert answer.template == "few_shot"


def test_retry_can_be_turned_off(real_rag):
    rag, llm = scripted(real_rag, [OFF_TOPIC], extract_retry=False)
    answer = rag.ask(QUESTION)
    assert len(llm.grammars) == 1
    assert answer.abstained and "does not address the question" in answer.abstain_reason


def test_refusal_is_not_retried(real_rag):
    rag, llm = scripted(real_rag, ["Not found in your documents."])
    answer = rag.ask(QUESTION)
    assert len(llm.grammars) == 1
    assert answer.abstained and "no answer" in answer.abstain_reason
