"""The shared text toolkit."""
import pytest

from rag.text import sentences

pytestmark = pytest.mark.unit


def test_abbreviations_and_initials_end_no_sentence():
    text = "Boosting (e.g. XGBoost, LightGBM) suits tables. See Fig. 2 by Daniel J. Clarke. Done i.e. Next."
    assert sentences(text) == ["Boosting (e.g. XGBoost, LightGBM) suits tables.",
                               "See Fig. 2 by Daniel J. Clarke.", "Done i.e. Next."]
    assert sentences("It failed. Then it worked! Why? Because.") == ["It failed.", "Then it worked!", "Why?",
                                                                    "Because."]
