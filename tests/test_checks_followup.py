"""The `followup` check: a follow-up question answered with the previous turn's fact."""
import pytest

from rag.checks.answer import check_answer
from rag.checks.followup import repeated_sentences
from rag.checks.profiles import policy
from rag.config import CHECKS, PROFILES, Settings
from rag.testing import HashEmbedder

pytestmark = pytest.mark.unit
embed = HashEmbedder().embed
SMALL = policy(Settings(guards="small", checks_off="citations,relevance,support"))
CAPABLE = policy(Settings(guards="capable"))

VALVE = ["The valve opens at 80 degrees and closes at 60 degrees."]
FIRST = "When does the valve open?"
OPENS = "The valve opens at 80 degrees [1]."
CLOSE = "And when does it close again?"


def _repeats(question, answer, previous_question=FIRST, previous=OPENS, sources=VALVE):
    return [s for s, repeats in repeated_sentences(question, answer, previous_question, previous, sources)
            if repeats]


def _check(question, answer, previous_question=FIRST, previous=OPENS, pol=SMALL, sources=VALVE):
    return check_answer(question, question, answer, sources, sources, pol=pol, embed=embed,
                        previous_question=previous_question, previous=previous)


def test_the_previous_answer_to_a_new_question_is_found():
    assert _repeats(CLOSE, OPENS) == [OPENS]
    # a rewording that says nothing the previous answer did not
    assert _repeats(CLOSE, "At 80 degrees the valve opens [1].") == ["At 80 degrees the valve opens [1]."]
    assert _repeats("When does the valve close?", OPENS) == [OPENS]


@pytest.mark.parametrize("question, answer, previous_question, previous", [
    (CLOSE, OPENS, FIRST, ""),  # no previous answer
    (FIRST, OPENS, FIRST, OPENS),  # the same question again
    ("At what temperature does the valve open?", OPENS, FIRST, OPENS),  # the question restated
    ("Tell me more again", OPENS, FIRST, OPENS),  # nothing new asked
    ("And when does it shut?", OPENS, FIRST, OPENS),  # the passages say it in other words
    # the previous answer already had the follow-up's answer: the repeat is the answer
    (CLOSE, "The valve opens at 80 degrees and closes at 60 degrees [1].", FIRST,
     "The valve opens at 80 degrees and closes at 60 degrees [1]."),
    (CLOSE, "It closes at 60 degrees [1].", FIRST, OPENS),  # a new answer
    (CLOSE, "At 80 degrees [1].", FIRST, OPENS),  # too terse to tell
])
def test_what_answers_the_follow_up_is_kept(question, answer, previous_question, previous):
    assert _repeats(question, answer, previous_question, previous) == []


def test_check_answer_abstains_when_only_the_repeat_is_left():
    v = _check(CLOSE, OPENS)
    assert v.code == "repeats_previous_answer"
    assert v.reason == "the answer repeats the previous answer and does not address the follow-up question"


def test_check_answer_drops_the_repeat_and_keeps_the_rest():
    v = _check(CLOSE, "The valve opens at 80 degrees [1]. It closes at 60 degrees [1].")
    assert not v.code and v.text == "It closes at 60 degrees [1]."


@pytest.mark.parametrize("question, answer, previous_question, previous", [
    (CLOSE, OPENS, "", ""),  # a first question
    (FIRST, OPENS, FIRST, OPENS),
    (CLOSE, "The valve opens at 80 degrees and closes at 60 degrees [1].", FIRST,
     "The valve opens at 80 degrees and closes at 60 degrees [1]."),
])
def test_check_answer_keeps_answers_to_the_follow_up(question, answer, previous_question, previous):
    v = _check(question, answer, previous_question, previous)
    assert not v.code and v.text == answer


def test_capable_flags_instead_of_cutting():
    v = _check(CLOSE, OPENS, pol=CAPABLE)
    assert not v.code and "80 degrees" in v.text
    [sentence] = v.sentences
    assert "repeats the previous answer and does not address the follow-up question" in sentence["flags"]
    assert not sentence["verified"]


def test_the_check_has_a_switch_in_both_answering_profiles():
    assert "followup" in CHECKS and "followup" in PROFILES["small"] and "followup" in PROFILES["capable"]
    assert "followup" not in PROFILES["off"]
    off = policy(Settings(guards="small", checks_off="citations,relevance,support,followup"))
    v = _check(CLOSE, OPENS, pol=off)
    assert not v.code and v.text == OPENS
