"""Citation checks: markers kept, moved or removed by how well their passage supports them."""
import pytest

from rag.checks.ground import check_citations, lexical_support
from rag.testing import HashEmbedder

embed = HashEmbedder().embed
BLOCKS = [
    "LoRA fine-tunes only a small set of added low-rank parameters rather than the full model.",
    "Bake the loaf at 230 degrees Celsius for about 40 minutes.",
]

pytestmark = pytest.mark.unit


def test_supported_citations_stay_and_wrong_ones_go():
    c = check_citations("LoRA fine-tunes a small set of low-rank parameters [1][2].", BLOCKS, embed=embed)
    assert c.cited == (1,) and c.dropped == (2,)
    assert c.text == "LoRA fine-tunes a small set of low-rank parameters [1]."


def test_uncited_answer_gets_its_best_source():
    c = check_citations("Bake it at 230 degrees for 40 minutes.", BLOCKS, embed=embed)
    assert c.cited == () and c.inferred == (2,)
    assert c.text.endswith("[2]") and c.support > 0.5


def test_unsupported_answer_gets_no_source():
    c = check_citations("Penguins live in Antarctica [1].", BLOCKS, embed=embed)
    assert c.cited == c.inferred == () and c.dropped == (1,)
    assert "[1]" not in c.text and c.support < 0.5


def test_out_of_range_and_misplaced_markers_move_to_the_supporting_passage():
    c = check_citations("LoRA adds low-rank parameters [7].", BLOCKS, embed=embed)
    assert c.text == "LoRA adds low-rank parameters [1]." and c.cited == (1,)
    c = check_citations("LoRA adds low-rank parameters [2]. Bake at 230 degrees [2].", BLOCKS, embed=embed)
    assert c.text == "LoRA adds low-rank parameters [1]. Bake at 230 degrees [2]." and c.cited == (1, 2)


def test_lexical_support_ignores_stopwords_and_markers():
    assert lexical_support("The loaf is baked at 230 degrees [2].", BLOCKS[1]) == 1.0
    assert lexical_support("the of and [1]", BLOCKS[0]) == 0.0


def test_equal_support_goes_to_the_passage_ranked_first_for_the_question():
    blocks = ["CNNs suit images; shortlist a CNN for image tasks.", "Shortlist a CNN for image tasks: images suit CNNs."]
    answer = "Shortlist a CNN for image tasks [2]."
    assert check_citations(answer, blocks, embed=embed).cited == (2,)
    c = check_citations(answer, blocks, embed=embed, relevance=[0.9, 0.4])
    assert c.cited == (1,) and c.text == "Shortlist a CNN for image tasks [1]."
