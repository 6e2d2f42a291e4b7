"""Follow-up questions made standalone."""
import pytest

from rag.rewrite import rewrite_query
from rag.types import Turn

pytestmark = pytest.mark.unit


def test_follow_up_questions_are_rewritten():
    h = [Turn("What are transformer networks?", "Networks with self-attention [1].")]
    assert rewrite_query("What are its disadvantages?", h) == "What are transformer networks disadvantages?"
    assert rewrite_query("and the advantages?", h) == "transformer networks and the advantages?"
    assert rewrite_query("What is LoRA?", h) == "What is LoRA?"
    assert rewrite_query("What are its disadvantages?", []) == "What are its disadvantages?"
    h2 = [Turn("What are autoencoders used for?", "...")]
    assert rewrite_query("How do they work?", h2) == "How do autoencoders work?"
