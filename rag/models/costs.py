"""What a model costs here and what it is good for, as the chat's model picker says it: its
size, the seconds an answer takes on this machine (the median of the answers it gave here,
else an estimate from its size), and how it answers (a small model quotes your documents, a
capable one writes and has each claim checked: `choose.WRITER_PARAMS`)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..choose import WRITER_PARAMS
from .local import LocalModel

# Seconds per answer estimated from a GGUF's size, until the model has answered here: a line
# through the p50 answer times `rag eval` measured on the shipped notes on a 2-core CPU
# (SmolLM2-135M, 0.1 GB: 6.0 s; Qwen2.5-Coder-1.5B Q4_K_M, 1.0 GB: 33.8 s). An order of
# magnitude to choose by; the measured median replaces it after MEASURED_AFTER answers.
SECONDS_BASE = 3.0
SECONDS_PER_GB = 30.0
MEASURED_AFTER = 3
# parameters per byte of a 4-bit GGUF (Q4_K_M keeps about 0.65 bytes a parameter), for files the
# catalogue does not know
BYTES_PER_PARAM = 0.65


@dataclass(frozen=True)
class ModelCost:
    """`seconds`: per answer, measured here (`answers` of them) or estimated (`answers` 0)."""

    size: int  # bytes
    params: float  # parameters, the catalogue's or estimated from the size
    seconds: float
    answers: int = 0

    @property
    def writes(self) -> bool:
        """Whether the model writes its own answers (capable) rather than quoting a sentence."""
        return self.params >= WRITER_PARAMS

    @property
    def size_text(self) -> str:
        return f"{self.size / 1e9:.1f} GB" if self.size >= 1e9 else f"{self.size / 1e6:.0f} MB"

    def short(self) -> str:
        """"98 MB · about 6 s an answer" (measured here), "... (estimate)" until then, for the
        picker's label; "writes" or "quotes", how it answers."""
        guess = "" if self.answers else " (estimate)"
        return f"{self.size_text} · about {self.seconds:.0f} s an answer{guess} · {'writes' if self.writes else 'quotes'}"

    def describe(self) -> str:
        """A sentence on the model picked: its cost here and what it is good for."""
        measured = (f"the median of {self.answers} answers on this machine" if self.answers
                    else "estimated from its size: it has not answered here yet")
        use = ("writes answers in its own words, and each claim is checked against your documents"
               if self.writes else
               "quick: answers with the sentence of your documents that says it, quoted and cited")
        return (f"{self.size_text}, about {self.params / 1e9:.1f}B parameters; about "
                f"{self.seconds:.0f} s an answer ({measured}). Good for: {use}.")


def model_cost(model: LocalModel, answer_seconds: list[float]) -> ModelCost:
    """`model`'s cost; `answer_seconds`: the times of its recent answers here (may be empty)."""
    params = model.entry.params_b * 1e9 if model.entry else model.size / BYTES_PER_PARAM
    if len(answer_seconds) >= MEASURED_AFTER:
        return ModelCost(model.size, params, statistics.median(answer_seconds), len(answer_seconds))
    return ModelCost(model.size, params, SECONDS_BASE + SECONDS_PER_GB * model.size / 1e9)
