"""Early stopping (`stop_early`): each named condition on its own, then through the pipeline with
ScriptedGenerator: the answer kept is the one the full generation gives, for fewer tokens."""
import pytest

from rag import RAG
from rag.checks.profiles import policy
from rag.prompts import ABSTAIN_TEXT, get_template
from rag.stopping import CONDITIONS, EarlyStop, Stop, early_stop
from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator
from rag.types import Capabilities
from rag.config import Settings

pytestmark = pytest.mark.unit


def stop(names, text, **kw):
    return EarlyStop(set(names), **kw)(text)


def test_sentences_stops_once_the_limit_is_complete_and_the_next_has_begun():
    two = "LoRA trains adapters [1]. It saves memory [2]."
    assert stop({"sentences"}, two, max_sentences=2) is None
    assert stop({"sentences"}, two + " It", max_sentences=2) is None  # the word may still grow
    assert stop({"sentences"}, two + " [3] ", max_sentences=2) is None  # a marker alone is no sentence
    assert stop({"sentences"}, two + " It also ", max_sentences=2) == Stop("sentences", len(two))
    # "e.g." ends no sentence, as for the length check
    eg = "Use adapters, e.g. LoRA for big models. Then merge them."
    assert stop({"sentences"}, eg + " More ", max_sentences=2) == Stop("sentences", len(eg))


def test_abstain_stops_at_the_abstain_texts_full_stop():
    assert stop({"abstain"}, "Not found in your") is None
    assert stop({"abstain"}, " " + ABSTAIN_TEXT + " But") == Stop("abstain", len(ABSTAIN_TEXT) + 1)
    assert stop({"abstain"}, "LoRA is " + ABSTAIN_TEXT) is None  # only an answer that opens with it


def test_echo_stops_where_the_model_copies_the_prompt():
    head = "LoRA trains adapters [1]."
    assert stop({"echo"}, head + "\n[2] (notes.md > LoRA)\nmore") == Stop("echo", len(head))
    assert stop({"echo"}, head + " <context") is None


def test_final_answer_stops_at_the_end_of_the_answer_line():
    cot = "Reasoning: Passage [1] is about LoRA.\nAnswer: LoRA trains adapters [1]."
    assert stop({"final_answer"}, cot, reasoning=True) is None
    assert stop({"final_answer"}, cot + "\nReasoning", reasoning=True) == Stop("final_answer", len(cot))
    assert stop({"final_answer"}, "Reasoning: the passage says it.\n", reasoning=True) is None
    # the sentence limit counts the answer's sentences, not the reasoning's
    many = "Reasoning: One. Two. Three.\nAnswer: Four [1]. Five "
    assert stop({"sentences"}, many, reasoning=True, max_sentences=2) is None


def test_span_end_stops_after_the_marker():
    assert stop({"span_end"}, "six hours") is None
    assert stop({"span_end"}, "six hours [1]") == Stop("span_end", len("six hours [1]"))


def test_repeats_stops_at_a_loop():
    once = "LoRA trains adapters. It saves memory. "
    assert stop({"repeats"}, once + "LoRA trains adapters. Next ") is None  # one repeat is no loop
    looped = once + "LoRA trains adapters. It saves memory. LoRA trains adapters. Next "
    assert stop({"repeats"}, looped) == Stop("repeats", len(once))
    # a stretch without sentence ends, three times over
    bullet = "- the adapter layer weights\n"
    assert stop({"repeats"}, "Parts:\n" + bullet * 3) == Stop("repeats", len("Parts:\n" + bullet) - 1)
    assert stop({"repeats"}, "the loss is $$\\begin{aligned} &-" + "&" * 60) is None  # symbols, not words


def test_conditions_follow_the_checks_and_the_template():
    small, capable, off = (policy(Settings.load(guards=g)) for g in ("small", "capable", "off"))
    assert early_stop(get_template("few_shot"), small).conditions == {"abstain", "echo", "sentences", "repeats"}
    assert early_stop(get_template("few_shot"), capable).conditions == {"echo", "repeats"}
    assert early_stop(get_template("few_shot"), off) is None
    assert "final_answer" in early_stop(get_template("cot"), off).conditions
    assert early_stop(get_template("extract"), small).conditions == {"abstain", "span_end"}
    no_length = policy(Settings.load(guards="small", checks_off="length"))
    assert "sentences" not in early_stop(get_template("few_shot"), no_length).conditions
    assert set(CONDITIONS) == {"abstain", "echo", "sentences", "final_answer", "span_end", "repeats"}
    with pytest.raises(ValueError, match="unknown stop condition"):
        EarlyStop({"vibes"})


# ---------------------------------------------------------------- through the pipeline

DOC = ("# Adapters\n\nHugging Face maintains the peft library of adapters. Adapters are small modules "
       "added to a frozen model. They train quickly. They save memory. They can be swapped per task. "
       "They are stored as small files. They merge into the base weights.\n")
EMBEDDER = HashEmbedder(dim=512)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    (root / "peft.md").write_text(DOC)
    store = MemoryStore()
    RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store, corpus=str(root)).index()
    return store


def run(store, output, *, template="few_shot", **settings):
    gen = ScriptedGenerator([output])
    rag = RAG(embedder=EMBEDDER, generator=gen, store=store, min_score=0.05, compress=False,
              guards="small", checks_off="relevance", **settings)
    return rag.ask("What are adapters?", template=template), gen


RAMBLE = ("Adapters are small modules added to a frozen model [1]. They train quickly [1]. They save "
          "memory [1]. They can be swapped per task [1]. They are stored as small files [1]. They merge "
          "into the base weights [1]. They are also popular. They are cheap to keep.")


@pytest.mark.parametrize("output", [
    RAMBLE,
    ABSTAIN_TEXT + " Adapters are small modules added to a frozen model [1].",
    "Adapters are small modules added to a frozen model [1].\n[1] (peft.md > Adapters)\nHugging Face",
    "Adapters are small modules [1]. They train quickly [1]. " * 4,
])
def test_the_kept_answer_is_the_one_the_full_generation_gives(store, output):
    full, _ = run(store, output, stop_early=False)
    early, gen = run(store, output)
    assert gen.calls[-1]["stop_when"] is not None
    assert (early.text, early.abstained, early.abstain_code) == (full.text, full.abstained, full.abstain_code)
    assert early.citations == full.citations
    assert early.usage.completion_tokens < full.usage.completion_tokens


def test_stop_early_off_generates_to_the_end(store):
    answer, gen = run(store, RAMBLE, stop_early=False)
    assert gen.calls[-1]["stop_when"] is None
    assert answer.usage.completion_tokens == len(RAMBLE.split())


def test_a_stopped_answer_is_not_read_as_cut_off_by_the_token_limit(store):
    # the answer line ends without a full stop; stopped on its last allowed token, it is whole
    output = "Reasoning: Passage [1] is about adapters.\nAnswer: small modules added to a frozen model [1]\nReasoning: more"
    limit = len("Reasoning: Passage [1] is about adapters.\nAnswer: small modules added to a frozen model [1]".split())
    early, _ = run(store, output, template="cot", max_tokens=limit)
    assert early.text == "small modules added to a frozen model [1]"
    # without the stop, the token limit cut it back to its last full stop, in the reasoning
    cut, _ = run(store, output, template="cot", max_tokens=limit, stop_early=False)
    assert cut.text == "Passage [1] is about adapters."


def test_a_generator_without_stop_when_still_answers(store):
    class Plain(ScriptedGenerator):
        capabilities = Capabilities(grammar=True)  # declares no stop_when

        def stream(self, messages, *, max_tokens=256, temperature=0.0, stop=(), grammar=None):
            return super().stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                  grammar=grammar)

    gen = Plain([RAMBLE])
    rag = RAG(embedder=EMBEDDER, generator=gen, store=store, min_score=0.05, compress=False,
              guards="small", checks_off="relevance")
    answer = rag.ask("What are adapters?")
    assert len(answer.sentences) == 5 and answer.usage.completion_tokens == len(RAMBLE.split())


def test_retrieval_and_the_policy_do_not_wait_for_another_questions_generation(store):
    import threading

    release = threading.Event()

    class Slow(ScriptedGenerator):
        def stream(self, messages, **kw):
            for item in super().stream(messages, **kw):
                release.wait(30)  # a long generation holding the model's lock
                yield item

    gen = Slow([RAMBLE, RAMBLE], n_params=135_000_000)
    rag = RAG(embedder=EMBEDDER, generator=gen, store=store, min_score=0.05, compress=False,
              checks_off="relevance")  # guards=auto: the policy reads the model's size
    rag.policy()
    first = threading.Thread(target=rag.ask, args=("What are adapters?",))
    first.start()
    while not rag._model_lock.locked():
        threading.Event().wait(0.005)
    done = []
    second = threading.Thread(target=lambda: done.append((rag.search("adapters"), rag.policy())))
    second.start()
    second.join(10)
    held = rag._model_lock.locked()
    release.set()
    first.join(10)
    assert done and held, "retrieval or the policy waited for the model's lock"
    assert done[0][1].profile == "small"
