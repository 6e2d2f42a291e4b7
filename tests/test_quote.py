"""The answer unit `sentence`: a copied span shown as the whole sentence it came from."""
import pytest

from rag.quote import MAX_WORDS, quote_sentence

pytestmark = pytest.mark.unit

BLOCKS = ["Recurrent Neural Networks (RNNs) & LSTMs\n- LSTMs add gating to preserve long-range dependencies.\n"
          "- They are slow to train.",
          "Transformers replace the recurrent state with the self-attention mechanism. They scale well."]


def test_span_becomes_its_whole_sentence_with_the_marker():
    assert quote_sentence("gating to preserve [1]", BLOCKS) == \
        "LSTMs add gating to preserve long-range dependencies [1]."


def test_span_from_the_second_block_keeps_its_number():
    assert quote_sentence("the self-attention mechanism [2]", BLOCKS) == \
        "Transformers replace the recurrent state with the self-attention mechanism [2]."


def test_a_heading_line_gets_a_capital_and_a_full_stop_but_no_bullet():
    assert quote_sentence("slow to train [1]", BLOCKS) == "They are slow to train [1]."


def test_span_case_changed_at_its_start_is_still_found():
    # the grammar lets a span start with a capital where the passage has a small letter
    assert quote_sentence("Add gating [1]", BLOCKS).startswith("LSTMs add gating")


@pytest.mark.parametrize("answer", ["Not found in your documents.", "no marker at all",
                                    "words the passage does not hold [1]", "anything [7]"])
def test_what_was_not_copied_is_left_as_it_is(answer):
    assert quote_sentence(answer, BLOCKS) == answer


def test_an_overlong_line_is_cut_to_the_clause_around_the_span():
    words = ", ".join(f"item{i} value{i}" for i in range(MAX_WORDS))
    block = f"Options: {words}, target span here, more{words}"
    out = quote_sentence("target span here [1]", [block])
    assert "target span here" in out and len(out.split()) < 12


def test_an_answer_of_several_sentences_is_not_a_span():
    answer = "LSTMs add gating [1]. They are slow to train [1]."
    assert quote_sentence(answer, BLOCKS) == answer


TRANSFORMERS = ["Transformers use the self-attention mechanism. This replaces the recurrent state used in RNNs."]


def test_a_sentence_referring_back_comes_with_the_one_before_it():
    assert quote_sentence("replaces the recurrent state [1]", TRANSFORMERS, with_previous=True) == \
        "Transformers use the self-attention mechanism. This replaces the recurrent state used in RNNs [1]."
    # off: the sentence alone
    assert quote_sentence("replaces the recurrent state [1]", TRANSFORMERS) == \
        "This replaces the recurrent state used in RNNs [1]."


def test_a_heading_before_is_not_brought_along():
    block = ["Transformer Networks\nThey weigh every input against every other."]
    assert quote_sentence("weigh every input [1]", block, with_previous=True) == \
        "They weigh every input against every other [1]."


# a manual's definition list: the option's name, its description, its default
OPTION = ["rebase.missingCommitsCheck\nIf set to \"warn\", git rebase -i will print a warning if some "
          "commits are removed. Defaults to \"ignore\".\nrebase.updateRefs\nIf set to true enable "
          "--update-refs option by default."]


def test_the_next_sentence_comes_with_the_quoted_one():
    assert quote_sentence("print a warning [1]", OPTION, context="next") == \
        'If set to "warn", git rebase -i will print a warning if some commits are removed. Defaults to "ignore" [1].'


def test_a_window_brings_the_sentence_before_and_after():
    assert quote_sentence("print a warning [1]", OPTION, context="window") == \
        'rebase.missingCommitsCheck. If set to "warn", git rebase -i will print a warning if some commits ' \
        'are removed. Defaults to "ignore" [1].'
    # off: the sentence alone
    assert quote_sentence("print a warning [1]", OPTION) == \
        'If set to "warn", git rebase -i will print a warning if some commits are removed [1].'


def test_a_window_leaves_out_the_titles_around_the_sentence():
    block = ["Transformer Networks\nThey weigh every input against every other.\nPros and Cons\nFast."]
    assert quote_sentence("weigh every input [1]", block, context="window") == \
        "They weigh every input against every other [1]."


def test_a_title_quoted_leads_into_its_first_line_and_brings_nothing_from_above():
    notes = ["Retrieval-Augmented Generation (RAG)\nReduces hallucination in answers.\n"
             "Parameter-Efficient Fine-Tuning (PEFT / LoRA)\nFine-tune only a small set of parameters."]
    assert quote_sentence("Fine-Tuning (PEFT / LoRA) [1]", notes, context="window") == \
        "Parameter-Efficient Fine-Tuning (PEFT / LoRA): Fine-tune only a small set of parameters [1]."


def test_the_next_entrys_option_line_stays_out():
    manual = ["--reuse-message=<commit>\nTake an existing commit object, and reuse the log message.\n"
              "-c <commit>\nLike -C, but the editor is invoked."]
    assert quote_sentence("reuse the log message [1]", manual, context="window") == \
        "--reuse-message=<commit>. Take an existing commit object, and reuse the log message [1]."
    # a setting's line too; a default stated after the description comes along
    assert quote_sentence("print a warning [1]", OPTION, context="window").endswith('Defaults to "ignore" [1].')


def test_a_short_bullet_after_the_quote_is_no_option_line():
    notes = ["Benefits of pretrained models:\n- Fast training\n- Strong baselines"]
    assert quote_sentence("pretrained models [1]", notes, context="window") == \
        "Benefits of pretrained models: Fast training [1]."
