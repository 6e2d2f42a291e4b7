"""The `auto` template's rule: explanations and notes get few_shot, facts over prose extract."""
from rag.choose import asks_explanation, choose, prose_share
from rag.types import Chunk, Hit

PROSE = ("The Normans were the people who in the 10th and 11th centuries gave their name to "
         "Normandy, a region in France. They were descended from Norse raiders.")
NOTES = "Deep learning requires:\n- Multiple processing layers\n- Non-linearity\n## Models\n- Decision trees"


def _hits(*texts):
    return [Hit(Chunk(f"d#{i}", "d.md", "d", (), t), 0.5, 0.5, 0.5) for i, t in enumerate(texts)]


def test_explanations_want_sentences_of_their_own():
    assert asks_explanation("Why does dropout help?") and asks_explanation("How does tanh differ from sigmoid?")
    assert asks_explanation("What is the difference between LoRA and QLoRA?")
    assert not asks_explanation("How many parameters does GPT-4 have?")
    assert not asks_explanation("Who wrote the Deep Learning Book?")


def test_prose_share_counts_the_text_in_paragraphs():
    assert prose_share([PROSE]) == 1.0
    assert prose_share([NOTES]) == 0.0
    long_item = "- " + "word " * 60  # a long list item is still a note
    assert prose_share([PROSE + "\n" + long_item]) == len(PROSE) / (len(PROSE) + len(long_item))
    assert prose_share([]) == 0.0


def test_choose_reads_the_question_and_the_top_passages():
    assert choose("In what country is Normandy?", _hits(PROSE), grammar=True).template == "extract"
    assert choose("In what country is Normandy?", _hits(NOTES, PROSE), grammar=True).template == "few_shot"
    assert choose("Why did the Normans come?", _hits(PROSE), grammar=True).template == "few_shot"
    no_grammar = choose("In what country is Normandy?", _hits(PROSE), grammar=False)
    assert no_grammar.template == "few_shot" and "grammar" in no_grammar.reason


def test_a_model_of_half_a_billion_parameters_reasons_where_the_default_takes_examples():
    # few_shot's examples teach the 0.5B model mostly to refuse; cot is its best free-form template
    assert choose("Why did the Normans come?", _hits(PROSE), grammar=True, n_params=494_000_000).template == "cot"
    assert choose("Why did the Normans come?", _hits(PROSE), grammar=True, n_params=135_000_000).template == "few_shot"
    assert choose("In what country is Normandy?", _hits(NOTES), grammar=False, n_params=None).template == "few_shot"
    # a factual question over prose still gets extract, whatever the size
    assert choose("In what country is Normandy?", _hits(PROSE), grammar=True, n_params=7_000_000_000).template == "extract"
