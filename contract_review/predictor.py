"""The prediction interface every model implements, and what it returns.

Evaluation, the reviewer app and Label Studio pre-annotation all ask a `Predictor` for
labels of clauses; a model (the fine-tuned reviewer, its mix with TF-IDF, the base model
zero-shot, the TF-IDF baselines, the rule labeller) only has to turn `ClauseInput`s into
`ClausePrediction`s. A prediction whose model output could not be used carries `error`
(the `AnswerError` kind) and no answer, so callers count failures instead of guessing a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from contract_review.prompt import Answer


@dataclass(frozen=True)
class ClauseInput:
    text: str
    party_names: dict[str, str] = field(default_factory=dict)


@dataclass
class ClausePrediction:
    answer: Answer | None
    confidence: float = 0.0  # probability of the predicted risk decision, 0..1
    # per label field ("clause_type", "party", "risk"): label -> probability
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    raw: str | None = None  # the model's text, when it generated one
    error: str | None = None  # "invalid_json" | "missing_key" | "unknown_label"


@runtime_checkable
class Predictor(Protocol):
    name: str  # e.g. "tfidf", "zero-shot", "reviewer"
    model_version: str  # recorded with every prediction (Label Studio, reports)

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]: ...


class PredictorError(ValueError):
    """A model choice that cannot be turned into a predictor; the message says what to give instead."""
