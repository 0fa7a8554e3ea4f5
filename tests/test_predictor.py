"""Choosing a model: one registry for every command, `default` the served model everywhere, and a
choice that cannot be loaded named before anything loads."""

from __future__ import annotations

import shutil

import pytest

import contract_review.cli  # noqa: F401  imports every package, as a command does: all models registered
from contract_review.predictor import (LoadOptions, ModelSpec, PredictorError, describe_model, load_predictor,
                                       model_choices, parse_model)
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR, ENSEMBLE_FILE


def test_every_package_registers_its_models_and_default_comes_first():
    names = model_choices()
    assert names.startswith("default, ")
    for name in ("reviewer", "ensemble", "tfidf", "tfidf-unfair-tos", "zero-shot", "rules", "a model folder"):
        assert name in names


def test_a_choice_is_checked_before_anything_loads(tmp_path):
    with pytest.raises(PredictorError, match="unknown model 'gpt-9': choose default, "):
        parse_model("gpt-9")
    with pytest.raises(PredictorError, match="model folder does not exist"):
        parse_model(str(tmp_path / "no-such-model"))
    with pytest.raises(PredictorError, match="adapter folder does not exist"):
        parse_model("default", str(tmp_path / "no-such-adapter"))
    with pytest.raises(PredictorError, match="--model tfidf takes no adapter"):
        parse_model("tfidf", str(tmp_path))
    with pytest.raises(PredictorError, match="decode"):
        load_predictor(parse_model("zero-shot"), LoadOptions(decode="beam"))
    with pytest.raises(PredictorError, match="only CLAUDETTE"):
        load_predictor(parse_model("tfidf-unfair-tos"))
    # folders come back absolute: one model, one spec (the app caches loaded models by spec)
    assert parse_model(".", None) == ModelSpec(str(tmp_path.cwd().resolve()))
    assert parse_model(None) == ModelSpec("default") and parse_model("org/model").model == "org/model"


def test_a_model_nobody_registered_names_the_choices(monkeypatch):
    """As when a library user imports core alone: only what was registered can be chosen."""
    import contract_review.predictor as core

    monkeypatch.setattr(core, "_MODELS", {"tfidf": core._MODELS["tfidf"]})
    monkeypatch.setattr(core, "_FOLDER", [])
    with pytest.raises(PredictorError, match=r"no model 'default' is registered: choose tfidf \(packages register"):
        load_predictor(ModelSpec())
    with pytest.raises(PredictorError, match="unknown model 'rules': choose tfidf$"):
        parse_model("rules")


def test_default_is_the_served_mix_and_reviewer_the_heads_alone(tmp_path):
    """Without loading anything: the shipped folder has an ensemble.json, so `default` is the mix; a copy
    without one is the heads alone (said at load); `reviewer` is the heads alone in both."""
    assert (DEFAULT_ADAPTER_DIR / ENSEMBLE_FILE).exists()
    assert "mixed per clause type with TF-IDF" in describe_model(parse_model("default"))
    assert "heads alone" in describe_model(parse_model("reviewer"))
    adapter = tmp_path / "adapter"
    shutil.copytree(DEFAULT_ADAPTER_DIR, adapter, ignore=shutil.ignore_patterns(ENSEMBLE_FILE, "*.png", "*.gz"))
    assert f"heads alone: no {ENSEMBLE_FILE}" in describe_model(parse_model("default", str(adapter)))


def test_a_broken_mix_fails_before_any_model_loads_and_names_the_heads_alone(tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(DEFAULT_ADAPTER_DIR, adapter, ignore=shutil.ignore_patterns("*.png", "*.gz"))
    (adapter / ENSEMBLE_FILE).write_text('{"format": "something-else"}')
    with pytest.raises(PredictorError) as exc:
        load_predictor(parse_model("default", str(adapter)))
    assert "format 'something-else'" in str(exc.value) and "--model reviewer" in str(exc.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PredictorError, match="neither a reviewer adapter"):
        load_predictor(parse_model("default", str(empty)))
