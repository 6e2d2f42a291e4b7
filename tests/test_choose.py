"""The `auto` template's rule: a small model quotes, a capable one writes; the earlier rule by the question's wording."""
import pytest

from rag.choose import asks_explanation, choose


def test_explanations_want_sentences_of_their_own():
    assert asks_explanation("Why does dropout help?") and asks_explanation("How does tanh differ from sigmoid?")
    assert asks_explanation("What is the difference between LoRA and QLoRA?")
    assert not asks_explanation("How many parameters does GPT-4 have?")
    assert not asks_explanation("Who wrote the Deep Learning Book?")
    # what a term means is an explanation; what a term is of, in or for is a fact
    assert asks_explanation("What is LoRA?") and asks_explanation("What are autoencoders?")
    assert asks_explanation("what's a transformer network ?")
    assert not asks_explanation("What is the capital of Australia?")
    assert not asks_explanation("What is NEAT an example of?")
    assert not asks_explanation("What is the classic Word2Vec vector arithmetic example?")
    # what a thing is for, and when to use it
    assert asks_explanation("What can autoencoders be used for?")
    assert asks_explanation("When should I use a random forest instead of a neural network?")
    assert not asks_explanation("When was the transformer introduced?")


def test_the_earlier_rule_reads_the_question_and_the_model():
    q = dict(route="question")
    assert choose("In what country is Normandy?", grammar=True, n_params=135_000_000, **q).template == "extract"
    assert choose("Why did the Normans come?", grammar=True, n_params=135_000_000, **q).template == "few_shot"
    no_grammar = choose("In what country is Normandy?", grammar=False, **q)
    assert no_grammar.template == "few_shot" and "grammar" in no_grammar.reason
    # few_shot's examples teach the 0.5B model mostly to refuse; cot is its best free-form template
    assert choose("Why did the Normans come?", grammar=True, n_params=494_000_000, **q).template == "cot"
    assert choose("In what country is Normandy?", grammar=True, n_params=7_000_000_000, **q).template == "extract"


@pytest.mark.parametrize("question", ["In what country is Normandy?", "Why did the Normans come?",
                                      "How do I undo the last commit?"])
def test_a_small_model_quotes_and_a_capable_one_writes_whatever_the_question(question):
    assert choose(question, grammar=True, n_params=135_000_000).template == "extract"
    assert choose(question, grammar=True, n_params=494_000_000).template == "extract"
    writes = choose(question, grammar=True, n_params=1_540_000_000)
    assert writes.template == "few_shot" and "own words" in writes.reason
    # behind a server the size is unknown, and capable models are the norm there
    assert choose(question, grammar=False, n_params=None).template == "few_shot"


def test_a_small_model_without_a_grammar_writes_with_its_best_free_template():
    assert choose("Why?", grammar=False, n_params=135_000_000).template == "few_shot"
    no_grammar = choose("Why?", grammar=False, n_params=494_000_000)
    assert no_grammar.template == "cot" and "grammar" in no_grammar.reason
