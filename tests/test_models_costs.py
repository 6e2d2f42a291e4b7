"""What the model picker says a model costs here (rag.models.costs): size, seconds an answer
(measured once it has answered here, estimated by size before), and how it answers."""
from pathlib import Path

import pytest

from rag.models.catalogue import find
from rag.models.costs import MEASURED_AFTER, model_cost
from rag.models.local import LocalModel

pytestmark = pytest.mark.unit


def test_a_small_model_is_estimated_by_its_size_until_it_has_answered_here():
    small = LocalModel(Path("SmolLM2.gguf"), 98_000_000, shipped=True, entry=find("smollm2-135m"))
    cost = model_cost(small, [4.0] * (MEASURED_AFTER - 1))  # too few answers to go by
    assert cost.answers == 0 and cost.short() == "98 MB · about 6 s an answer (estimate) · quotes"
    assert not cost.writes and "quoted and cited" in cost.describe() and "estimated" in cost.describe()
    measured = model_cost(small, [3.0, 9.0, 4.0])
    assert measured.seconds == 4.0 and measured.answers == 3 and "(estimate)" not in measured.short()
    assert "the median of 3 answers on this machine" in measured.describe()


def test_a_model_of_a_billion_parameters_or_more_writes_its_answers():
    # a file the catalogue does not know: its parameters estimated from a 4-bit file's size
    big = model_cost(LocalModel(Path("qwen-1.5b.gguf"), 1_100_000_000), [])
    assert big.writes and big.short() == "1.1 GB · about 36 s an answer (estimate) · writes"
    assert "writes answers in its own words" in big.describe()
    assert not model_cost(LocalModel(Path("tiny.gguf"), 400_000_000), []).writes
