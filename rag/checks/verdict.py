"""What the checks make of one generation (`Verdict`), and the stable codes of the abstentions
they cause: strings for programs, where `Answer.abstain_reason` is the sentence for people."""
from __future__ import annotations

import dataclasses

EMPTY_INDEX = "empty_index"
UNKNOWN_NAMES = "unknown_names"
LOW_RETRIEVAL = "low_retrieval_score"
REFUSED = "refused"
NO_TEXT = "markers_only"
MADE_UP_FIGURES = "made_up_figures"
MADE_UP_NAMES = "made_up_names"
OTHER_SUBJECT = "other_subject"
MISSING_FIGURE = "missing_figure"
LOW_SUPPORT = "low_support"
OFF_TOPIC = "off_topic"
INSTRUCTIONS = "repeats_instructions"
MADE_UP_EXPANSIONS = "made_up_expansions"
REPEATS_PREVIOUS = "repeats_previous_answer"
UNBACKED = "unbacked"
LOW_COVERAGE = "low_coverage"


@dataclasses.dataclass
class Verdict:
    """What the checks made of one generation: the answer to show, or the code and reason why
    there is none; per-sentence support and flags for the answer shown."""

    text: str = ""
    code: str = ""
    reason: str = ""
    cited: tuple[int, ...] = ()
    inferred: tuple[int, ...] = ()
    sentences: list[dict] = dataclasses.field(default_factory=list)
    support: float = 0.0
    relevance: float = 0.0

    def abstain(self, code: str, reason: str) -> "Verdict":
        self.code, self.reason = code, reason
        return self
