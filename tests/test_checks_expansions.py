"""The `expansions` check: acronyms expanded, or terms abbreviated in brackets, as no passage does."""
import pytest

from rag.checks.answer import check_answer
from rag.checks.expansions import made_up_expansions
from rag.checks.profiles import policy
from rag.config import CHECKS, PROFILES, Settings
from rag.testing import HashEmbedder

pytestmark = pytest.mark.unit
embed = HashEmbedder().embed
# the answer checks that read words only: the hashed embedder says nothing about meaning
SMALL = policy(Settings(guards="small", checks_off="citations,relevance,support"))
CAPABLE = policy(Settings(guards="capable"))

CYCLEGAN = ["CycleGAN translates images between two domains without paired examples. It trains two "
            "generators and two discriminators with a cycle-consistency loss."]
LORA = ["Low-Rank Adaptation (LoRA) freezes the pretrained weights and trains small low-rank matrices."]
LORAWAN = ["LoRaWAN is a low-power wide-area network protocol for battery-powered devices."]


def _reasons(answer, sources):
    return [r for _, reasons, _ in made_up_expansions(answer, sources) for r in reasons]


def _check(question, answer, sources, pol=SMALL):
    return check_answer(question, question, answer, sources, sources, pol=pol, embed=embed)


@pytest.mark.parametrize("answer", [
    "CycleGAN, which stands for Condition the Generator for Unlabeled Data, translates images [1].",
    "CycleGAN stands for Condition the Generator for Unlabeled Data [1].",
    "CycleGAN is short for Condition the Generator for Unlabeled Data [1].",
    "CycleGAN (short for Condition the Generator for Unlabeled Data) translates images [1].",
    "CycleGAN is an acronym for Condition the Generator for Unlabeled Data [1].",
    "CycleGAN, i.e. Condition the Generator for Unlabeled Data, translates images [1].",
])
def test_an_expansion_no_passage_gives_is_found(answer):
    assert _reasons(answer, CYCLEGAN) == [
        "expands CycleGAN as 'Condition the Generator for Unlabeled Data', which no passage says"]


def test_a_made_up_bracket_goes_and_its_sentence_stays():
    [(_, reasons, kept)] = made_up_expansions("LoRaWAN (LOL-R) is a network protocol [1].", LORAWAN)
    assert reasons == ["abbreviates LoRaWAN as 'LOL-R', which no passage says"]
    assert kept == "LoRaWAN is a network protocol [1]."
    [(_, reasons, kept)] = made_up_expansions(
        "CycleGAN (Condition the Generator for Unlabeled Data) translates images [1].", CYCLEGAN)
    assert reasons and kept == "CycleGAN translates images [1]."
    [(_, reasons, kept)] = made_up_expansions(
        "CycleGAN (short for Condition the Generator for Unlabeled Data) translates images [1].", CYCLEGAN)
    assert reasons and kept == "CycleGAN translates images [1]."


@pytest.mark.parametrize("answer", [
    "LoRA stands for Low-Rank Adaptation [1].",
    "LoRA stands for Low-Rank Adaptation and freezes the pretrained weights [1].",
    "LoRA (Low-Rank Adaptation) freezes the pretrained weights [1].",
    "LoRA (short for low-rank adaptation) freezes the weights [1].",
    "LoRA, i.e. Low-Rank Adaptation, freezes the weights [1].",
    "Low-Rank Adaptation (LoRA) freezes the weights [1].",
    # ordinary brackets, markers and figures
    "LoRA freezes the weights (see below) [1].",
    "LoRA (Hu et al., 2021) trains small matrices [1, 2].",
    "Models of 7 billion parameters (7B) can be tuned with LoRA [1].",
    "The library (PyTorch) implements it [1].",
    "LLaMA (a model by Meta) can be tuned with LoRA [1].",
    "The optimiser, i.e. the one that updates the matrices, is Adam [1].",
])
def test_what_the_passages_give_or_no_expansion_passes(answer):
    assert _reasons(answer, LORA) == []


def test_an_expansion_in_other_passages_passes_when_its_initials_spell_the_acronym():
    sources = ["A generative adversarial network pits two models against each other.",
               "The first GAN was trained on faces."]
    assert _reasons("GAN stands for generative adversarial network [1].", sources) == []
    assert _reasons("GAN is an acronym for Generalised Array Notation [2].", sources) == [
        "expands GAN as 'Generalised Array Notation', which no passage says"]


def test_check_answer_cuts_the_sentence_and_abstains_when_nothing_is_left():
    answer = ("CycleGAN, which stands for Condition the Generator for Unlabeled Data, translates images [1]. "
              "It trains two generators and two discriminators [1].")
    v = _check("What is CycleGAN?", answer, CYCLEGAN)
    assert not v.code and v.text == "It trains two generators and two discriminators [1]."
    v = _check("What does CycleGAN stand for?",
               "CycleGAN stands for Condition the Generator for Unlabeled Data [1].", CYCLEGAN)
    assert v.code == "made_up_expansions"
    assert v.reason == ("the answer explains an abbreviation in a way no passage does: expands CycleGAN "
                        "as 'Condition the Generator for Unlabeled Data', which no passage says")
    v = _check("What is LoRaWAN?", "LoRaWAN (LOL-R) is a wide-area network protocol [1].", LORAWAN)
    assert not v.code and v.text == "LoRaWAN is a wide-area network protocol [1]."


def test_check_answer_keeps_an_expansion_the_passages_give():
    answer = "LoRA stands for Low-Rank Adaptation [1]."
    v = _check("What does LoRA stand for?", answer, LORA)
    assert not v.code and v.text == answer


def test_capable_flags_instead_of_cutting():
    answer = "CycleGAN stands for Condition the Generator for Unlabeled Data [1]."
    # (the `backed` check off: with it, an answer whose one sentence no passage supports is refused)
    v = _check("What does CycleGAN stand for?", answer, CYCLEGAN,
               pol=policy(Settings(guards="capable", checks_off="backed")))
    assert not v.code and "Condition the Generator" in v.text
    [sentence] = v.sentences
    assert "expands CycleGAN as 'Condition the Generator for Unlabeled Data', which no passage says" \
        in sentence["flags"] and not sentence["verified"]


def test_capable_refuses_when_the_made_up_expansion_is_all_there_is():
    answer = "CycleGAN stands for Condition the Generator for Unlabeled Data [1]."
    v = _check("What does CycleGAN stand for?", answer, CYCLEGAN, pol=CAPABLE)
    assert v.code == "unbacked" and v.reason == "no passage supports any sentence of the answer"


def test_the_check_has_a_switch_in_both_answering_profiles():
    assert "expansions" in CHECKS and "expansions" not in PROFILES["off"]
    assert "expansions" in PROFILES["small"] and "expansions" in PROFILES["capable"]
    off = policy(Settings(guards="small", checks_off="citations,relevance,support,expansions"))
    answer = "CycleGAN stands for Condition the Generator for Unlabeled Data [1]."
    v = _check("What does CycleGAN stand for?", answer, CYCLEGAN, pol=off)
    assert not v.code and v.text == answer
