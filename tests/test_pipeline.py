"""The pipeline with stand-in components (rag.testing): every gate, check, abstain code, guard
profile, history and error path, without a model."""
import dataclasses

import pytest

from rag import RAG
from rag.errors import ConfigError, QueryError
from rag.checks.figures import asks_quantity
from rag.prompts import ABSTAIN_TEXT
from rag.testing import HashEmbedder, MemoryStore, ScriptedGenerator
from rag.types import DraftText, Turn

pytestmark = pytest.mark.unit

DOCS = {
    "lora.md": "# LoRA\n\nUse LoRA instead of full fine-tuning when you have limited GPU memory and a small "
               "dataset. LoRA freezes the base model and trains small low-rank matrices. The peft library "
               "implements LoRA adapters for many models.\n",
    "peft.md": "# Adapters\n\nHugging Face maintains the peft library of adapters. Adapters are small "
               "modules added to a frozen model. They train quickly. They save memory. They can be "
               "swapped per task. They are stored as small files. They merge into the base weights.\n",
    "bread.md": "# Bread\n\nBake the sourdough loaf at 230 degrees for 40 minutes after an overnight rise.\n",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def store(corpus):
    """One index of the corpus, shared: building it is the slowest step here."""
    store = MemoryStore()
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store, corpus=str(corpus))
    assert rag.index().n_chunks >= 3
    return store


EMBEDDER = HashEmbedder(dim=512)  # wide enough that unrelated words rarely share a bucket


def make(store, outputs, **settings):
    settings.setdefault("min_score", 0.05)  # hashed words are no semantic embedding
    settings.setdefault("best_last", False)  # block [1] is the best passage
    settings.setdefault("compress", False)  # whole passages: support is read off the text as written
    gen = ScriptedGenerator(outputs, n_params=settings.pop("n_params", None))
    return RAG(embedder=EMBEDDER, generator=gen, store=store, **settings), gen


def ask(store, question, output, **settings):
    rag, _ = make(store, [output], **settings)
    return rag.ask(question)


# ---------------------------------------------------------------- capable models' answers pass intact

# (question, answer with {n} for the block of the source it quotes, that source)
CAPABLE_CASES = [
    ("When should I use LoRA instead of full fine-tuning?",
     "When you have limited GPU memory and a small dataset [{n}].", "lora.md"),
    ("What year was LoRA introduced?",
     "The passages do not mention the exact year, but LoRA freezes the base model and trains small "
     "low-rank matrices [{n}].", "lora.md"),
    ("What are the adapters Hugging Face maintains?",
     "Adapters are small modules added to a frozen model [{n}]. They train quickly [{n}]. They save memory "
     "[{n}]. They can be swapped per task [{n}]. They are stored as small files [{n}]. They merge into the "
     "base weights [{n}].", "peft.md"),
    ("Which library implements LoRA?", "In PyTorch, the peft library by Hugging Face implements it [{n}].",
     "peft.md"),
    ("Which company maintains the peft library?", "Hugging Face [{n}].", "peft.md"),
]


def case(store, i):
    """Question i of CAPABLE_CASES and its answer, marked with the block of its source."""
    question, template, source = CAPABLE_CASES[i]
    rag, _ = make(store, [])
    n = [h.chunk.source for h in rag.search(question)].index(source) + 1
    return question, template.format(n=n)


@pytest.mark.parametrize("i", range(len(CAPABLE_CASES)))
def test_capable_profile_keeps_good_answers_intact(store, i):
    question, output = case(store, i)
    answer = ask(store, question, output, guards="capable")
    assert not answer.abstained, answer.abstain_reason
    assert answer.guards == "capable"
    assert answer.text == output
    assert answer.citations and all(c.source == CAPABLE_CASES[i][2] for c in answer.citations)
    flags = [f for s in answer.sentences for f in s.flags]
    assert answer.sentences and all(s.verified for s in answer.sentences) == (i != 3)
    # the claim is kept, and marked: the peft notes it cites name neither PyTorch nor LoRA
    assert flags == ([] if i != 3 else [f"cites [{answer.citations[0].n}], which does not mention PyTorch, LoRA"])


def test_small_profile_still_cuts_what_a_135m_model_gets_wrong(store):
    # the names check: PyTorch and Hugging Face are nowhere near the LoRA notes... or anywhere
    names = ask(store, *case(store, 3), guards="small")
    assert names.abstained and names.abstain_code == "made_up_names" and "PyTorch" in names.abstain_reason
    # a terse answer is read in the passage sentence it comes from: "Hugging Face" alone is far
    # from the question, "Hugging Face maintains the peft library of adapters." answers it
    question, output = case(store, 4)
    rag, _ = make(store, [output, output], guards="small", extract_passages=0)
    terse = rag.ask(question, template="extract")
    assert not terse.abstained and terse.relevance > 0.25, terse.abstain_reason
    # only a span is known to be copied: the same words written freely are judged alone
    free = rag.ask(question, template="few_shot")
    assert free.abstained and free.abstain_code == "off_topic"
    # and a span from a sentence about something else is still turned away
    n = [h.chunk.source for h in rag.search("What does LoRA freeze?")].index("bread.md") + 1
    rag, _ = make(store, [f"an overnight rise [{n}]"], guards="small", extract_passages=0, checks_off="claims")
    off = rag.ask("What does LoRA freeze?", template="extract")
    assert off.abstained and off.abstain_code == "off_topic"
    # the length check: a rambling answer is cut to five sentences
    long = ask(store, *case(store, 2), guards="small", checks_off="relevance")
    assert len(long.sentences) == 5 and long.text == case(store, 2)[1].split(" They merge")[0]
    # a refusal phrase anywhere makes a refusal
    partial = ask(store, *case(store, 1), guards="small")
    assert partial.abstained and partial.abstain_code == "refused"


def test_when_questions_ask_for_a_date_only_when_they_ask_when_something_was(store):
    assert not asks_quantity("When should I use LoRA instead of full fine-tuning?")
    assert asks_quantity("When was LoRA introduced?") and asks_quantity("When did the war end?")
    question, output = case(store, 0)
    answer = ask(store, question, output, guards="small", checks_off="relevance")
    assert not answer.abstained and answer.text == output


def test_each_check_can_be_switched_off_on_its_own(store):
    answer = ask(store, "Which company maintains the peft library?", "Hugging Face [1].", guards="small",
                 checks_off="relevance")
    assert not answer.abstained and answer.text == "Hugging Face [1]."
    with pytest.raises(ConfigError, match="unknown check"):
        make(store, [], checks_off="relevance,vibes")
    with pytest.raises(ConfigError, match="guards profile"):
        make(store, [], guards="paranoid")


def test_auto_profile_reads_the_model_size(store):
    for n_params, profile in ((135_000_000, "small"), (1_500_000_000, "capable"), (None, "capable")):
        rag, _ = make(store, ["Hugging Face [1]."], n_params=n_params)
        assert rag.policy().profile == profile
        assert rag.ask("Which company maintains the peft library?").guards == profile


def test_off_profile_passes_the_text_as_written(store):
    raw = "Bread is baked at 999 degrees by Nicki Minaj [7]."
    answer = ask(store, "How hot is the oven for bread?", raw, guards="off")
    assert not answer.abstained and answer.text == raw and answer.guards == "off"
    assert answer.citations == []  # [7] names no context block
    # the abstain text the prompt asks for is an abstention under any profile
    assert ask(store, "How hot is the oven for bread?", ABSTAIN_TEXT, guards="off").abstain_code == "refused"


# ---------------------------------------------------------------- flags, sentence support

def test_capable_profile_flags_made_up_figures_instead_of_cutting(store):
    output = "Bake the loaf for 40 minutes [1]. Rest the sourdough loaf for 75 minutes after baking [1]."
    answer = ask(store, "How long is the sourdough bread baked?", output, guards="capable")
    assert not answer.abstained and answer.text == output
    first, second = answer.sentences
    assert first.verified and not first.flags
    assert second.verified is False and any("75" in f for f in second.flags)
    d = answer.to_dict()
    assert d["sentences"][1]["flags"] and d["sentences"][0]["support"] >= 0.5
    small = ask(store, "How long is the sourdough bread baked?", output, guards="small", checks_off="relevance")
    assert small.text == "Bake the loaf for 40 minutes [1]."


def test_unsupported_sentences_are_flagged_not_cut_under_capable(store):
    output = "LoRA freezes the base model [1]. Penguins live in Antarctica [1]."
    answer = ask(store, "What does LoRA freeze?", output, guards="capable")
    assert not answer.abstained
    assert answer.text == "LoRA freezes the base model [1]. Penguins live in Antarctica."  # marker moved off
    assert [s.verified for s in answer.sentences] == [True, False]
    assert answer.sentences[1].flags == ("no passage supports it",)


# ---------------------------------------------------------------- every abstain code

@pytest.mark.parametrize("question, output, settings, code", [
    ("What is a Zorblax?", "unused", {}, "unknown_names"),
    ("How do penguins swim underwater?", "unused", {"min_score": 0.9}, "low_retrieval_score"),
    ("What does LoRA freeze?", "I don't know.", {}, "refused"),
    ("What does LoRA freeze?", "[1]", {}, "markers_only"),
    ("What does LoRA freeze?", "", {}, "refused"),
    ("What does LoRA freeze?", "It freezes 12 layers [1].", {}, "made_up_figures"),
    ("What does LoRA freeze?", "Nicki Minaj froze it [1].", {}, "made_up_names"),
    ("How many minutes is the loaf baked?", "For a long while [1].", {"checks_off": "relevance"}, "missing_figure"),
    ("What does LoRA freeze?", "LoRA freezes the base model while penguins dance [1].",
     {"min_support": 0.9, "checks_off": "relevance"}, "low_support"),
    ("What does LoRA freeze?", "Sourdough bread [1].", {"checks_off": "claims"}, "off_topic"),
    # the citation goes to the bread note, which does not mention LoRA
    ("What does LoRA freeze?", "Sourdough bread [1].", {}, "other_subject"),
])
def test_abstain_codes(store, question, output, settings, code):
    answer = ask(store, question, output, guards="small", **settings)
    assert answer.abstained and answer.text == ABSTAIN_TEXT
    assert answer.abstain_code == code and answer.abstain_reason
    assert answer.citations == [] and answer.to_dict()["abstain_code"] == code


def test_a_rare_term_no_document_uses_is_turned_away_like_a_name(store):
    from rag.checks.claims import Vocabulary

    common = Vocabulary("how long does the last what lora freeze".split())
    rag, gen = make(store, ["Two years [1]."])
    rag._vocabulary = common
    answer = rag.ask("How long does the frobnitz warranty last?")
    assert answer.abstain_code == "unknown_names" and "'frobnitz'" in answer.abstain_reason
    assert gen.calls == []  # decided before the model ran
    rag, gen = make(store, ["Two years [1]."], checks_off="claims")
    rag._vocabulary = common
    assert rag.ask("How long does the frobnitz warranty last?").abstain_code != "unknown_names"
    assert len(gen.calls) == 1


def test_a_question_the_documents_cannot_answer_never_reaches_the_model(store):
    rag, gen = make(store, [], guards="small")
    answer = rag.ask("What is a Zorblax?")
    assert answer.abstain_code == "unknown_names" and gen.calls == []


def test_an_empty_index_abstains(tmp_path):
    store = MemoryStore()
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store, corpus=str(tmp_path))
    rag.index()
    assert rag.ask("What is LoRA?").abstain_code == "empty_index"


# ---------------------------------------------------------------- history, streaming, errors

def test_follow_ups_retrieve_with_the_history_and_show_it_to_the_model(store):
    rag, gen = make(store, ["It trains small low-rank matrices [1]."], guards="capable")
    history = [Turn("What is LoRA?", "A way to fine-tune [1].")]
    answer = rag.ask("What does it train?", history=history)
    assert answer.hits[0].chunk.source == "lora.md"
    contents = [m.content for m in gen.calls[0]["messages"]]
    assert "Question: What is LoRA?" in contents and "A way to fine-tune [1]." in contents
    assert contents[-1].endswith("Question: What does it train?")


def test_stream_yields_only_the_checked_answer(store):
    rag, _ = make(store, ["LoRA freezes the base model [1]. Nicki Minaj made it [1]."], guards="small",
                  checks_off="relevance")
    stream = rag.stream("What does LoRA freeze?")
    pieces = list(stream)
    # the sentence the checks remove is never among the pieces a reader is shown
    assert "".join(pieces) == stream.answer.text == "LoRA freezes the base model [1]."
    assert not any(isinstance(p, DraftText) for p in pieces)
    assert stream.answer.timings.total >= stream.answer.timings.check > 0


def test_stream_with_drafts_marks_the_unchecked_text_as_draft(store):
    rag, _ = make(store, ["LoRA freezes the base model [1]. Nicki Minaj made it [1]."], guards="small",
                  checks_off="relevance")
    stream = rag.stream("What does LoRA freeze?", drafts=True)
    pieces = list(stream)
    drafts = [p for p in pieces if isinstance(p, DraftText)]
    checked = [p for p in pieces if not isinstance(p, DraftText)]
    assert "Minaj" in "".join(drafts)
    assert pieces[-1] is checked[-1] and "".join(checked) == "LoRA freezes the base model [1]."


def test_errors_reach_the_caller_as_they_are(store):
    rag, _ = make(store, [QueryError("the prompt is too long")])
    with pytest.raises(QueryError, match="too long"):
        rag.ask("What does LoRA freeze?")
    with pytest.raises(QueryError, match="empty"):
        rag.ask(" \x1b[31m \x00 ")


def test_control_characters_are_stripped_before_retrieval(store):
    rag, gen = make(store, ["LoRA freezes the base model [1]."], guards="capable")
    answer = rag.ask("What does \x1b[31mLoRA\x1b[0m freeze?\x07")
    assert answer.question == "What does LoRA freeze?"
    assert "\x1b" not in gen.calls[0]["messages"][-1].content


def test_extract_needs_a_generator_that_takes_a_grammar(store):
    rag, gen = make(store, ["small low-rank matrices [1]"], guards="capable", quote_context="none")
    answer = rag.ask("What does LoRA train?", template="extract")
    # the span is shown as the whole sentence it was copied from (answer_unit=sentence)
    assert gen.calls[0]["grammar"] and answer.text == "LoRA freezes the base model and trains small low-rank matrices [1]."
    gen.supports_grammar = False
    with pytest.raises(ConfigError, match="takes a grammar"):
        rag.ask("What does LoRA train?", template="extract")


def test_extract_reads_only_its_best_passages(store):
    rag, gen = make(store, ["small low-rank matrices [1]", "small low-rank matrices [1]",
                            "LoRA freezes the base model"], guards="capable", top_k=3, extract_sentences=0)
    rag.ask("What does LoRA train?", template="extract")
    rag.ask("What does LoRA train?", template="few_shot")
    shown = [gen.calls[i]["messages"][-1].content for i in (0, 1)]
    assert "[1]" in shown[0] and "[2]" in shown[0] and "[3]" not in shown[0]  # extract_passages=2
    assert "[3]" in shown[1]  # the other templates read all of top_k
    # a grammar span can come only from the passages shown
    assert "w3-" not in gen.calls[0]["grammar"] and "w2-" in gen.calls[0]["grammar"]
    every, gen_all = make(store, ["small low-rank matrices [1]"], guards="capable", top_k=3, extract_passages=0)
    every.ask("What does LoRA train?", template="extract")
    assert "[3]" in gen_all.calls[0]["messages"][-1].content
    with pytest.raises(ConfigError, match="extract_passages"):
        make(store, [], extract_passages=-1)


def test_extract_copies_only_from_the_sentences_closest_to_the_question(store):
    rag, gen = make(store, ["small low-rank matrices [1]"], guards="capable", top_k=3, extract_sentences=1)
    rag.ask("What does LoRA train?", template="extract")
    grammar = gen.calls[0]["grammar"]
    starts = [line for line in grammar.splitlines() if line.startswith("p")]
    assert len(starts) == 1  # one sentence kept, so one passage offers spans
    assert "LoRA" in grammar
    with pytest.raises(ConfigError, match="extract_sentences"):
        make(store, [], extract_sentences=-1)


def test_a_quoting_models_refusal_is_overruled_by_a_sentence_matching_the_question_well(store):
    question = "What does LoRA freeze and train?"
    rag, _ = make(store, [ABSTAIN_TEXT], guards="capable", refusal_overrule=0.5, quote_context="none")
    answer = rag.ask(question, template="extract")
    assert not answer.abstained
    assert answer.text == "LoRA freezes the base model and trains small low-rank matrices [1]."
    assert [c.source for c in answer.citations] == ["lora.md"]
    # the same refusal stands when the bar is higher than the best sentence's match, or off
    for floor in (1.9, 0.0):
        rag, _ = make(store, [ABSTAIN_TEXT], guards="capable", refusal_overrule=floor)
        refused = rag.ask(question, template="extract")
        assert refused.abstained and refused.abstain_code == "refused"
    with pytest.raises(ConfigError, match="refusal_overrule"):
        make(store, [], refusal_overrule=2.5)


def test_a_quote_comes_with_its_neighbouring_sentences_when_asked(store):
    rag, _ = make(store, ["trains small low-rank matrices [1]"], guards="capable", quote_context="window")
    answer = rag.ask("What does LoRA train?", template="extract")
    assert answer.text.startswith("Use LoRA instead of full fine-tuning") and answer.text.endswith(
        "The peft library implements LoRA adapters for many models [1].")
    assert "LoRA freezes the base model and trains small low-rank matrices." in answer.text
    # every sentence of the quote is read by the checks, and backed by its passage as written
    assert [s.text[:20] for s in answer.sentences] == ["Use LoRA instead of ", "LoRA freezes the bas",
                                                       "The peft library imp"]
    assert all(s.verified and s.passage == 1 for s in answer.sentences)
    with pytest.raises(ConfigError, match="quote_context"):
        make(store, [], quote_context="page")


def test_stand_ins_answer_end_to_end_with_citations(store, corpus):
    rag, _ = make(store, ["Bake it at 230 degrees for 40 minutes [1]."], guards="capable")
    answer = rag.ask("How hot should the oven be for the sourdough loaf?")
    assert answer.hits[0].chunk.source == "bread.md"
    assert [c.source for c in answer.citations] == ["bread.md"]
    assert answer.usage.completion_tokens > 0 and answer.sentences[0].verified


def test_an_answer_cut_by_the_token_limit_ends_at_its_last_whole_sentence(store):
    from rag.checks.readback import cut_unfinished

    assert cut_unfinished("LoRA freezes the base model [1]. It trains small matri") == \
        "LoRA freezes the base model [1]."
    assert cut_unfinished("LoRA freezes the base model and trai") == "LoRA freezes the base model and ..."
    # through the pipeline: the scripted model stops at max_tokens words
    rag, _ = make(store, ["LoRA freezes the base model [1]. It then trains small low-rank matrices on the task"],
                  guards="capable", max_tokens=12)
    answer = rag.ask("What does LoRA freeze?")
    assert answer.text == "LoRA freezes the base model [1]."


def test_indexing_without_a_terminal_prints_progress_lines(tmp_path, capsys, monkeypatch):
    """A log or a pipe hears from a build on a clock, even while one slow file is being read."""
    import time

    from rag import build_progress, ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\nZebras number {i}.\n")
    monkeypatch.setattr(build_progress, "LINE_EVERY", 0.05)
    load = ingest.load

    def slow_load(path, **kw):  # a big PDF, in miniature
        time.sleep(0.3)
        return load(path, **kw)

    monkeypatch.setattr(ingest, "load", slow_load)
    RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=MemoryStore(), corpus=str(docs)).index(
        progress="lines")
    lines = capsys.readouterr().err.splitlines()
    reading_first = [x for x in lines if x.startswith("indexing: file 1/3 (n0.md, ")]
    assert len(reading_first) >= 2  # several lines while the first file alone was read
    assert "MB" in reading_first[0] and "chunks embedded" in reading_first[0]
    assert any("left" in x for x in lines)  # an estimate once some bytes are done
    assert lines[-1].startswith("indexing: 3/3 files") and "3 chunks embedded" in lines[-1]


def test_a_cut_answer_with_no_words_is_no_answer(store):
    rag, _ = make(store, ["\n\n\n\n"], guards="capable", max_tokens=1)
    answer = rag.ask("What does LoRA freeze?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT


def test_a_document_that_becomes_unreadable_leaves_the_index(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nAardvarks eat ants.\n")
    (docs / "b.md").write_text("# B\n\nBadgers dig setts.\n")
    store = MemoryStore()
    rag = RAG(embedder=EMBEDDER, generator=ScriptedGenerator([]), store=store, corpus=str(docs))
    rag.index()
    (docs / "b.md").write_bytes(b"\x00\x01binary\x00" * 20)
    report = rag.index()
    assert report.removed == ["b.md"] and report.skipped
    assert {c.source for c in store.open().chunks} == {"a.md"} and "b.md" not in store.manifest()["documents"]


def test_auto_template_is_the_default_and_says_what_it_chose(store):
    rag, gen = make(store, ["LoRA freezes the base model [1]."])
    answer = rag.ask("What does LoRA freeze?")
    assert answer.template in ("few_shot", "extract") and answer.template_reason.startswith("auto: ")
    assert answer.to_dict()["template_reason"] == answer.template_reason
    named = make(store, ["LoRA freezes the base model [1]."])[0].ask("What does LoRA freeze?", template="zero_shot")
    assert named.template == "zero_shot" and named.template_reason == ""


def test_a_sibling_answers_with_the_model_its_owner_switched_to(store):
    owner, _ = make(store, ["x"])
    sibling = owner.sibling(owner.settings)
    assert sibling.generator is owner.generator
    owner._generator = ScriptedGenerator(["y"])  # what use_model does, under the model's lock
    assert sibling.generator is owner.generator and sibling._model_lock is owner._model_lock


# ---------------------------------------------------------------- one settings object per question

def test_every_stage_reads_the_questions_own_settings(store):
    """`top_k` given to `ask` reaches retrieval and the context the prompt shows, and a change of
    the RAG's settings while a question is under way (`use_model` replaces them) reaches no stage
    of that question: retrieval, the passages shown and their compression all read the settings
    the question started with."""
    question, output = "What are adapters?", "Adapters are small modules added to a frozen model [1]."

    def prompt_of(rag, gen) -> tuple[str, int]:
        answer = rag.ask(question, template="few_shot", top_k=3)
        return gen.calls[0]["messages"][-1].content, len(answer.hits)

    compressed, n = prompt_of(*make(store, [output], guards="capable", top_k=1, compress=True))
    whole, _ = prompt_of(*make(store, [output], guards="capable", top_k=1, compress=False))
    assert n == 3 and "[3]" in compressed and compressed != whole

    class Switching(HashEmbedder):  # the settings change as retrieval embeds the question
        def embed(self, texts, **kw):
            switched.settings = dataclasses.replace(switched.settings, compress=False, top_k=1)
            return super().embed(texts, **kw)

    gen = ScriptedGenerator([output])
    switched = RAG(embedder=Switching(dim=512), generator=gen, store=store, min_score=0.05, best_last=False,
                   compress=True, top_k=1, guards="capable")
    assert prompt_of(switched, gen) == (compressed, 3)
    assert not switched.settings.compress  # the switch did happen during the question
