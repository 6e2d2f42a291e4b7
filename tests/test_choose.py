"""The `auto` template's rule: explanations get the model's own words, every other question extract."""
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


def test_choose_reads_the_question_and_the_model():
    assert choose("In what country is Normandy?", grammar=True).template == "extract"
    assert choose("Why did the Normans come?", grammar=True).template == "few_shot"
    no_grammar = choose("In what country is Normandy?", grammar=False)
    assert no_grammar.template == "few_shot" and "grammar" in no_grammar.reason


def test_a_model_of_half_a_billion_parameters_reasons_where_the_default_takes_examples():
    # few_shot's examples teach the 0.5B model mostly to refuse; cot is its best free-form template
    assert choose("Why did the Normans come?", grammar=True, n_params=494_000_000).template == "cot"
    assert choose("Why did the Normans come?", grammar=True, n_params=135_000_000).template == "few_shot"
    assert choose("In what country is Normandy?", grammar=False, n_params=None).template == "few_shot"
    # a question for a fact gets extract, whatever the size
    assert choose("In what country is Normandy?", grammar=True, n_params=7_000_000_000).template == "extract"
