"""The answer checks, one by one (the guard profiles as a whole are in test_pipeline.py)."""
import re

import pytest

from rag.config import Settings
from rag.checks.answer import check_answer
from rag.checks.figures import asks_quantity, drop_made_up_figures
from rag.checks.made_up_names import drop_made_up_names, unknown_names
from rag.checks.names import question_names
from rag.checks.profiles import policy
from rag.text import states_quantity
from rag.testing import HashEmbedder

embed = HashEmbedder().embed

pytestmark = pytest.mark.unit
SMALL_GATE = policy(Settings(guards="small", checks_off="citations,relevance,support"))


def _answer_gate(question, answer, sources, *, unknown=None):
    """(answer left, "") or (answer, why it abstains) under the small profile's answer gate."""
    v = check_answer(question, question, answer, sources, sources, pol=SMALL_GATE, embed=embed, unknown=unknown)
    return (answer, v.reason) if v.code else (v.text, "")


def test_made_up_figures_are_found():
    sources = ["Adam is an optimizer; we trained for 1,024 steps with batch size 32 on 7B models."]
    assert drop_made_up_figures("The default learning rate is 0.001 [1].", sources)[1] == ["0.001"]
    assert drop_made_up_figures("It ran 1024 steps with batch size 32 [1].", sources)[1] == []
    # list enumerators and citation markers are not figures; numbers the question gave are known
    assert drop_made_up_figures("1. LoRA [2]\n2. QLoRA [3]", sources)[1] == []
    # an inline list stays; a figure that merely ends a sentence is still a figure
    kept, made_up = drop_made_up_figures("Uses include: 1. Denoising. 2. Compression. It has 16. Done.", sources)
    assert made_up == ["16"] and kept == "Uses include: 1. Denoising. 2. Compression. Done."
    assert drop_made_up_figures("ResNet-50 is a CNN.", sources, "What is ResNet-50?")[1] == []


def test_quantity_questions_need_a_figure():
    for q in ("How many parameters does GPT-4 have?", "What dropout rate is recommended?",
              "Who invented the LSTM, and in which year?", "When did the war end?",
              "What is the top-1 accuracy of ResNet-50 on ImageNet?"):
        assert asks_quantity(q), q
    for q in ("What does GRU stand for?", "Which paper introduced the transformer?", "Who made PyTorch?"):
        assert not asks_quantity(q), q
    assert states_quantity("About three million.") and states_quantity("It is 0.5.")
    assert not states_quantity("A lower value than the number of neurons.")


def test_question_names_are_the_capitalised_words_past_the_first():
    assert question_names("How does the Mamba state-space model differ from transformers?") == ["Mamba"]
    assert question_names("What is the top-1 accuracy of ResNet-50 on ImageNet?") == ["ResNet-50", "ImageNet"]
    assert question_names("What does RLHF stand for?") == ["RLHF"]
    assert question_names("Which paper introduced the transformer architecture?") == []


def test_answer_gate_reads_made_up_figures_and_missing_ones():
    sources = ["Dropout randomly zeroes activations during training to reduce overfitting."]
    assert "0.5" in _answer_gate("What dropout rate is recommended?", "A rate of 0.5 [1].", sources)[1]
    assert "figure" in _answer_gate("What dropout rate is recommended?", "A lower rate than usual.", sources)[1]
    answer = "It zeroes activations during training [1]."
    assert _answer_gate("What does dropout do?", answer, sources) == (answer, "")


def _unknown_to(*texts):
    """An `unknown` for drop_made_up_names: names none of `texts` contains, case and a plural aside."""
    words = {w.rstrip("s") for t in texts for w in re.findall(r"[\w-]+", t.lower())}
    return lambda names: [n for n in names if n.lower().rstrip("s") not in words]


def test_made_up_names_are_cut_with_their_markers():
    unknown = _unknown_to("PyTorch: open source software, made initially by Meta AI.",
                          "Both TensorFlow & PyTorch are popular; TensorFlow was made mostly by Google.")
    kept, made_up = drop_made_up_names("PyTorch was made by Meta AI. [1] Its creator was Nicki Minaj. [2]",
                                       unknown=unknown)
    assert kept == "PyTorch was made by Meta AI. [1]" and made_up == ["Nicki", "Minaj"]
    answer = "TensorFlow and the PYTORCH libraries [2]; Software abounds."
    assert drop_made_up_names(answer, unknown=unknown) == (answer, [])
    # a list item's first word, bold or numbered, is a sentence start, not a name
    assert drop_made_up_names("1. **Visualization**: made by Google.", unknown=unknown)[1] == []
    # a coined abbreviation goes, and the sentence it sat in stays
    kept, made_up = drop_made_up_names("Search (DLAS) automates design [1]. Google (GOOG) made it.",
                                       unknown=_unknown_to("search automates design; made by Google"))
    assert kept == "Search automates design [1]. Google made it." and made_up == []


def test_names_after_abbreviations_are_checked_and_layout_kept():
    unknown = _unknown_to("PyTorch was made initially by Meta AI; Google made TensorFlow.")
    assert drop_made_up_names("It was made by Dr. J. Minaj.", unknown=unknown)[1] == ["Minaj"]
    assert drop_made_up_names("Labs made it, e.g. DeepMind.", unknown=unknown)[1] == ["DeepMind"]
    # a marker before the first sentence stays with it
    kept, _ = drop_made_up_names("[1] Meta AI made PyTorch. Its singer was Nicki Minaj. [2]", unknown=unknown)
    assert kept == "[1] Meta AI made PyTorch."
    # with nothing cut, a list keeps its lines, less a coined abbreviation
    assert drop_made_up_names("Made by:\n- Meta AI [1]\n- Google (GOOGL) [2]", unknown=unknown) == \
        ("Made by:\n- Meta AI [1]\n- Google [2]", [])
    # a quoted or headed first word is still a sentence start
    for answer in ('"Overall, Google made it." [2]', "### Summary\nMeta AI made PyTorch."):
        assert drop_made_up_names(answer, unknown=unknown) == (answer, [])


def test_unknown_names_look_past_plurals_and_at_the_question_words():
    class Retriever:
        def unknown(self, names, *, fuzzy=True):
            return [n for n in names if n.lower() not in {"gpu", "pytorch", "meta"}]

    unknown = unknown_names(Retriever(), "Who maintains PyTorch at Toda?")
    assert unknown(["GPUs", "Meta", "Toda", "Tor", "Nicki"]) == ["Tor", "Nicki"]


def test_answer_gate_abstains_when_only_made_up_names_are_left():
    sources = ["PyTorch: open source software, made initially by Meta AI."]
    unknown = _unknown_to(*sources)
    text, reason = _answer_gate("Who initially made PyTorch?", "The creator was Nicki Minaj, at Google. [1]",
                                sources, unknown=unknown)
    assert "Nicki" in reason and "Google" in reason
    assert _answer_gate("Who made PyTorch?", "Meta AI made it [1].", sources, unknown=unknown) == \
        ("Meta AI made it [1].", "")
    assert "no text" in _answer_gate("Who made PyTorch?", "[1]", sources, unknown=unknown)[1]


def test_made_up_figures_are_cut_and_the_grounded_rest_kept():
    sources = ["Neural architecture search automates the design of network architectures."]
    text, why = _answer_gate("What does neural architecture search automate?",
                             "It automates the design of network architectures [1]. It was invented in 2014.", sources)
    assert (text, why) == ("It automates the design of network architectures [1].", "")
    text, why = _answer_gate("How many parameters does GPT-4 have?", "GPT-4 has 16 parameters [1].", sources)
    assert "16" in why


def test_a_sentence_with_one_grounded_figure_stays():
    sources = ["William defeated Harold at Hastings in 1066."]
    kept, made_up = drop_made_up_figures("It was fought on 14 October 1066 [1]. It lasted 9 hours.", sources)
    assert kept == "It was fought on 14 October 1066 [1]." and made_up == ["9"]


def test_refusals_repeats_and_length():
    from rag.checks.output import drop_repeats, refused, trim
    from rag.prompts import ABSTAIN_TEXT

    assert refused(ABSTAIN_TEXT) and refused("I don't know.") and refused("")
    assert not refused("LoRA adds low-rank weights [2][1].")
    assert drop_repeats("A [1]. A [1]. B.") == "A [1]. B."
    # a refusal phrase inside an answer that cites its passage is no refusal for capable models
    partial = "The passages do not mention the exact year, but LoRA freezes the base model [1]."
    assert refused(partial) and not refused(partial, strict=False)
    assert refused("The passages do not mention it.", strict=False)
    # the cut counts sentences as the splitter does: "e.g." ends none, and line breaks stay
    # a list's lines without a full stop belong to the sentence that introduces them
    text = "One (e.g. this). Two. Three:\n- a\n- b\nFour. Five. Six. Seven."
    assert trim(text, 5) == "One (e.g. this). Two. Three:\n- a\n- b\nFour. Five. Six."
    assert trim(text, 0) == text
    assert trim("Dr. J. Smith said so. A. B. C. D. E.", 2) == "Dr. J. Smith said so. A. B. C. D. E."
    assert drop_repeats("- Oil it.\n- Oil it.\n- Wipe it.") == "- Oil it.\n- Wipe it."


def test_a_terse_span_is_read_with_the_line_before_it_in_notes():
    # the line holding "Meta AI" does not name PyTorch; the line above it does
    notes = ("TensorFlow : An end-to-end platform.\nOpen Source software, made mostly by Google\n"
             "PyTorch : A machine-learning framework.\nOpen Source software, made initially by Meta AI")
    # the hashed embedder sees shared words only: a low bar shows the line alone misses it
    pol = policy(Settings(guards="small", checks_off="support", min_relevance=0.1))
    question = "Who created PyTorch?"
    alone = float(embed([question])[0] @ embed(["Open Source software, made initially by Meta AI"])[0])
    v = check_answer(question, question, "Meta AI [1]", [notes], [notes], pol=pol, embed=embed, span=True)
    assert not v.code, v.reason
    assert v.relevance > max(alone, pol.min_relevance)
    # free text is still judged alone, and a span whose lines are about something else still fails
    other = "Bread : A loaf.\nBake at 230 degrees for 40 minutes"
    v = check_answer(question, question, "40 minutes [1]", [other], [other], pol=pol, embed=embed, span=True)
    assert v.code == "off_topic"


def test_every_answer_check_runs_under_a_known_switch():
    from rag.checks.answer import ORDER
    from rag.config import CHECKS

    switches = [s for s, _ in ORDER if s is not None]
    assert set(switches) <= set(CHECKS) and len(switches) == len(set(switches))
