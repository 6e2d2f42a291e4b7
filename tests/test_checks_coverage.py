"""The `coverage` check: a quoted sentence on the question's topic whose passage does not answer it."""
import pytest

from rag.checks.answer import check_answer
from rag.checks.profiles import policy
from rag.config import CHECKS, PROFILES, Settings
from rag.testing import HashEmbedder

pytestmark = pytest.mark.unit
embed = HashEmbedder().embed
# the checks that read words only: the hashed embedder says nothing about meaning
SMALL = policy(Settings(guards="small", checks_off="relevance,support"))

LORA = ["Methods like LoRA and QLoRA allow adapting a 7B-70B model on a single GPU."]


def _check(question, answer, pol=SMALL):
    return check_answer(question, question, answer, LORA, LORA, pol=pol, embed=embed, span=True)


def test_a_passage_holding_few_of_the_question_words_is_no_answer():
    v = _check("What rank r is recommended for the adapters of low-rank fine-tuning?",
               "Methods like LoRA and QLoRA allow adapting a 7B-70B model on a single GPU [1].")
    assert v.code == "low_coverage"
    # the reason names words the passages really lack
    assert v.reason.startswith("the passages found do not mention ") and "rank" in v.reason
    assert "lora" not in v.reason.lower()


def test_a_passage_holding_the_question_words_answers():
    answer = "Methods like LoRA and QLoRA allow adapting a 7B-70B model on a single GPU [1]."
    v = _check("Which methods allow adapting a 7B-70B model on a single GPU?", answer)
    assert not v.code and v.text == answer


def test_the_threshold_and_the_switch():
    question = "What rank r is recommended for the adapters of low-rank fine-tuning?"
    answer = "Methods like LoRA and QLoRA allow adapting a 7B-70B model on a single GPU [1]."
    assert not _check(question, answer, pol=policy(Settings(guards="small", checks_off="relevance,support,coverage"))).code
    assert not _check(question, answer, pol=policy(Settings(guards="small", checks_off="relevance,support",
                                                            min_coverage=0.0))).code
    assert "coverage" in CHECKS and "coverage" in PROFILES["small"] and "coverage" not in PROFILES["capable"]
