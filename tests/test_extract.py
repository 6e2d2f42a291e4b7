import re

import pytest

from rag.extract import answer_sentences, best_sentence, is_heading, literal, span_grammar, tidy_span
from rag.testing import HashEmbedder
from rag.prompts import ABSTAIN_TEXT, TEMPLATES


def rules(grammar: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())


def test_literal_escapes_quotes_backslashes_and_newlines():
    assert literal('say "hi"') == r'"say \"hi\""'
    assert literal("a\\b\nc") == r'"a\\b\nc"'
    assert literal("Bogotá") == '"Bogotá"'


def test_root_offers_the_abstain_text_and_one_span_per_passage():
    g = rules(span_grammar(["Tea is green.", "Rice grows in water."], abstain=ABSTAIN_TEXT))
    assert g["root"] == f'"{ABSTAIN_TEXT}" | p1 | p2'
    assert g["p1"].endswith('" [1]"') and g["p2"].endswith('" [2]"')


def test_each_word_continues_only_to_the_next_word_of_its_sentence():
    g = rules(span_grammar(["The Dutch Republic won. Peace followed."], abstain="No."))
    assert g["w1-0-0"] == '"The" (" " w1-0-1)?'
    assert g["w1-0-1"] == '"Dutch" (" " w1-0-2)?'
    assert g["w1-0-3"] == '"won."'  # a sentence's last word ends the span: no crossing into the next
    assert g["w1-1-0"] == '"Peace" (" " w1-1-1)?'
    assert g["w1-1-1"] == '"followed."'
    # every word position is a possible start, so the span can begin anywhere
    starts = g["p1"].removesuffix(' " [1]"')[1:-1].split(" | ")
    # ... though not stop on a word that carries nothing: "The" must go on to "Dutch"
    assert starts == ["nw1-0-0", "w1-0-1", "w1-0-2", '[Ww] "on."', "w1-1-0", '[Ff] "ollowed."']
    assert g["nw1-0-0"] == '"The" " " w1-0-1'


def test_a_lower_case_start_may_be_capitalised_and_then_continues_verbatim():
    g = rules(span_grammar(["the engineer Maria Lopez"], abstain="No."))
    assert g["p1"] == ('([Tt] "he" " " w1-0-1 | [Ee] "ngineer" (" " w1-0-2)? | w1-0-2 | w1-0-3)'
                       ' " [1]"')
    assert g["w1-0-0"] == '"the" (" " w1-0-1)?'


def test_empty_passages_add_no_alternative():
    assert rules(span_grammar(["", "  "], abstain="No."))["root"] == '"No."'


def test_grammar_grows_linearly_with_the_words():
    passage = " ".join(f"word{i}" for i in range(300)) + "."
    g = span_grammar([passage], abstain="No.")
    assert len(g.splitlines()) == 1 + 300 + 1  # root, one rule per word, one per passage


def test_a_span_that_must_hold_a_figure_cannot_stop_before_one():
    g = rules(span_grammar(["Built in 1932 by Lopez.", "No figures here."], abstain="No.", need_figure=True))
    assert g["root"] == '"No." | p1'  # the passage without a figure offers no span at all
    assert g["nw1-0-0"] == '"Built" " " nw1-0-1'  # no way to stop before the figure
    assert g["nw1-0-1"] == '"in" " " w1-0-2'  # the figure's own rule may stop anywhere after it
    assert g["w1-0-2"] == '"1932" (" " w1-0-3)?'
    assert g["p1"] == '(nw1-0-0 | [Ii] "n" " " w1-0-2 | w1-0-2) " [1]"'  # no start past the figure
    assert "nw1-0-3" not in g


def test_number_words_count_as_figures():
    g = rules(span_grammar(["It has eight legs."], abstain="No.", need_figure=True))
    assert g["p1"] == '(nw1-0-0 | [Hh] "as" " " w1-0-2 | [Ee] "ight" (" " w1-0-3)?) " [1]"'


def test_tidy_span_drops_the_dangling_comma_before_the_citation():
    assert tidy_span("the Dutch Republic, [1]") == "the Dutch Republic [1]"
    assert tidy_span("in 1932. [2]") == "in 1932 [2]"
    assert tidy_span("U.S. presidents [2]") == "U.S. presidents [2]"
    assert tidy_span(ABSTAIN_TEXT) == ABSTAIN_TEXT


def test_extract_template_examples_answer_with_spans_of_their_own_passages():
    tmpl = TEMPLATES["extract"]
    assert tmpl.extractive and not TEMPLATES["few_shot"].extractive
    for user, answer in tmpl.examples:
        if answer == ABSTAIN_TEXT:
            continue
        span, n = re.fullmatch(r"(.+) \[(\d)\]", answer).groups()
        passage = re.search(rf"\[{n}\] \([^)]*\)\n(.+)", user).group(1)
        assert span.lower() in passage.lower()


def test_a_span_must_add_a_word_the_question_does_not_already_use():
    g = rules(span_grammar(["Autoencoders are used for compression and denoising."], abstain="No.",
                           question="What can autoencoders be used for?"))
    # "Autoencoders", "are", "used", "for" only echo the question: the span runs on to "compression"
    assert g["nw1-0-0"] == '"Autoencoders" " " nw1-0-1'
    assert g["nw1-0-2"] == '"used" " " nw1-0-3'
    assert g["nw1-0-3"] == '"for" " " w1-0-4'
    assert g["w1-0-4"] == '"compression" (" " w1-0-5)?'
    starts = g["p1"].removesuffix(' " [1]"')[1:-1].split(" | ")
    assert starts[0] == "nw1-0-0" and "w1-0-0" not in starts and "w1-0-4" not in starts
    assert '[Cc] "ompression" (" " w1-0-5)?' in starts


def test_a_sentence_that_only_repeats_the_question_offers_no_span():
    g = rules(span_grammar(["Autoencoders are used."], abstain="No.", question="What are autoencoders used for?"))
    assert g["root"] == '"No."'


def test_answer_sentences_keep_those_sharing_most_words_with_the_question():
    passages = [["Tea grows on hills.", "The harbour opened in 1932."], ["The harbour of Oslo opened late."]]
    q = "When did the harbour of Oslo open?"
    assert answer_sentences(passages, q, 1) == {(1, 0)}
    assert answer_sentences(passages, q, 2) == {(1, 0), (0, 1)}
    assert answer_sentences(passages, q, 0) == {(0, 0), (0, 1), (1, 0)}  # 0: every sentence
    assert answer_sentences(passages, "Who sings?", 1) == {(0, 0), (0, 1), (1, 0)}  # nothing shared
    # a tie goes to the passage retrieval scored higher
    tie = [["The harbour opened."], ["The harbour closed."]]
    assert answer_sentences(tie, "harbour?", 1, [0.2, 0.9]) == {(1, 0)}
    assert answer_sentences(tie, "harbour?", 1) == {(0, 0)}


def test_span_grammar_offers_spans_only_from_the_kept_sentences():
    g = rules(span_grammar(["Tea grows on hills. The harbour opened in 1932.", "Rice grows in water."],
                           abstain="No.", question="When did the harbour open?", sentences_kept=1))
    assert g["root"] == '"No." | p1'
    assert "w1-1-0" in g and "w1-0-0" not in g
    # a sentence that cannot answer (no figure for a "when" question) takes no place among them
    g = rules(span_grammar(["The harbour was busy.", "It opened in 1932."], abstain="No.",
                           need_figure=True, question="When did the harbour open?", sentences_kept=1))
    assert g["root"] == '"No." | p2'


@pytest.mark.parametrize("line, heading", [
    ("Recurrent Neural Networks (RNNs) & LSTMs", True), ("## Tools of the trade", True),
    ("Vision Transformers (ViT)", True), ("OPTIONS", True),
    ("Key features:", False), ("LSTMs add gating to preserve long-range dependencies.", False),
    ("Open Source software, made initially by Meta AI", False), ("--soft", False),
])
def test_is_heading(line, heading):
    assert is_heading(line) is heading


def test_headings_are_no_candidates_while_sentences_are():
    passage = "Recurrent Neural Networks (RNNs) & LSTMs\nLSTMs add gating to preserve long-range dependencies."
    q = "What did LSTMs add to recurrent networks?"
    kept = rules(span_grammar([passage], abstain="No.", question=q, sentences_kept=1, skip_headings=True))
    assert any(r.startswith("w1-0-") for r in kept) and '"gating"' in " ".join(kept.values())
    assert '"Neural"' not in " ".join(kept.values())


def test_best_sentence_is_the_grammars_first_with_how_well_it_matches():
    passages = ["Tea grows on hills. The harbour opened in 1932.", "The harbour of Oslo opened late in the year."]
    embed = HashEmbedder(dim=512).embed
    n, sent, match = best_sentence(passages, "When did the harbour of Oslo open?", embed=embed)
    assert (n, sent) == (2, "The harbour of Oslo opened late in the year.")
    assert 1.0 < match <= 2.0  # every content word of the question, and a close cosine
    # a figure asked for: only a sentence holding one can answer
    assert best_sentence(passages, "When did the harbour of Oslo open?", embed=embed, need_figure=True)[:2] == \
        (1, "The harbour opened in 1932.")
    assert best_sentence(["Tea grows."], "Does tea grow?", embed=embed) is None  # nothing new to say
    # no sentence shares a word with the question: none is ranked first, none is the best
    assert best_sentence(["Tea grows on hills."], "Who sings opera?", embed=embed) is None
