"""The app's model: loaded once per server process, from the registry every command shares.

A choice is a `contract_review.predictor.ModelSpec` (`--model NAME [--adapter DIR]`, as for `eval`
and `annotate push`); the UI offers the served model (`default`: the shipped reviewer mixed per
clause type with TF-IDF, which scores better on validation: CUAD risk F1 58.2 vs 55.9, CLAUDETTE
8-category macro-F1 71.2 vs 61.8), the reviewer's heads alone, the rule labeller, and a local base
model + adapter folder. Loading takes seconds (the first start fits the TF-IDF models once, ~1 min
on two cores, then they load from the cache), so predictors are cached per choice: every review
in a server process shares one loaded model. A choice that cannot be loaded raises
`PredictorError` saying what is missing and how to get it.
"""

from __future__ import annotations

import threading

# the app loads any registered model: importing these registers theirs (the command line imports
# every package anyway; the app's functions are also called without it)
from contract_review.annotation import rule_predictor  # noqa: F401
from contract_review.predictor import ModelSpec, Predictor
from contract_review.predictor import load_predictor as load_model
from contract_review.reviewer import registry  # noqa: F401
from contract_review.reviewer.heads import is_reviewer_folder
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR

_cache: dict[ModelSpec, Predictor] = {}
_lock = threading.Lock()


def load_predictor(spec: ModelSpec) -> Predictor:
    """The predictor for `spec`, loaded once per process (thread-safe: concurrent reviews wait)."""
    with _lock:
        if spec not in _cache:
            _cache[spec] = load_model(spec)
        return _cache[spec]


def default_available() -> bool:
    """Whether the shipped reviewer adapter is present (loading it may still fetch the base model)."""
    return is_reviewer_folder(DEFAULT_ADAPTER_DIR)
