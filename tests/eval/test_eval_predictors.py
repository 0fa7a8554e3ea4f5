"""Choosing the model to evaluate: a missing model or adapter is named."""

from __future__ import annotations

import pytest

from contract_review.eval.predict import load_predictor
from contract_review.predictor import PredictorError


def test_missing_model_or_adapter_is_named(tmp_path):
    from contract_review.training.models import ModelError

    with pytest.raises(ModelError, match="does not exist"):
        load_predictor(str(tmp_path / "no-such-model"))
    with pytest.raises(PredictorError, match="does not exist"):
        load_predictor("default", adapter=str(tmp_path / "no-such-adapter"))
    with pytest.raises(PredictorError, match="decode"):
        load_predictor("zero-shot", decode="beam")
