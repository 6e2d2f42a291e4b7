"""The answer checks as one policy: which run before the model and after it, each named, with a
switch and its thresholds in the settings.

Checks tuned on a 135M model's failures damage a capable model's answers (a terse correct
"Hugging Face [4]" scored 0.08 on the question-to-answer cosine; "When should I ...?" read as a
date question), so they come in profiles:

- `small`: everything below; what SmolLM2-135M needs (it invents names, figures and dates,
  rambles and loops);
- `capable`: only what helps any model: the retrieval gate, the injection filter, citation
  support and made-up figures, which flag a sentence instead of cutting it;
- `off`: nothing; the model's text as written, its markers read as citations;
- `auto` (default): `small` under about 1B parameters (read from the GGUF), else `capable`.

The checks' names and the profiles' sets are data in `rag.config` (`CHECKS`, `PROFILES`), so
that settings are checked without loading the checks.
"""
from __future__ import annotations

import dataclasses

from ..config import PROFILES, checks_switched_off

# under `auto`, models with fewer parameters than this get `small`
SMALL_MODEL_PARAMS = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which checks run and how; made from the settings by `policy()`."""

    profile: str
    enabled: frozenset[str]
    flag_figures: bool = False  # flag made-up figures and off-subject claims instead of cutting them
    strict_refusal: bool = True  # any refusal phrase, not only in an answer that cites nothing
    max_sentences: int = 5
    min_score: float = 0.2
    min_support: float = 0.0
    min_relevance: float = 0.25
    min_coverage: float = 0.35
    citation_min_support: float = 0.5
    repoint_margin: float = 0.1

    def on(self, check: str) -> bool:
        return check in self.enabled


def policy(settings, *, n_params: int | None = None) -> Policy:
    """The policy the settings ask for; `auto` reads the model's size `n_params` (None: unknown,
    as behind an LLM server, where capable models are the norm)."""
    off = checks_switched_off(settings.guards, settings.checks_off)
    name = settings.guards
    if name == "auto":
        name = "small" if n_params is not None and n_params < SMALL_MODEL_PARAMS else "capable"
    small = name == "small"
    return Policy(profile=name, enabled=PROFILES[name] - off, flag_figures=not small,
                  strict_refusal=small, max_sentences=settings.max_sentences, min_score=settings.min_score,
                  min_support=settings.min_support, min_relevance=settings.min_relevance,
                  min_coverage=settings.min_coverage,
                  citation_min_support=settings.citation_min_support,
                  repoint_margin=settings.repoint_margin)
