"""Fixtures of the evaluation tests: small real dataset files (hand-made items and predictions are in
eval_testing.py)."""

from __future__ import annotations

import json

import pytest

@pytest.fixture(scope="session")
def small_records(dataset) -> list:
    """30 real test records from several documents, some risk clauses and verified records among them."""
    test = dataset["test"]
    risky = [r for r in test if r.is_risk and not r.verified][:8]
    verified = [r for r in test if r.verified][:6]
    rest = [r for r in test if not r.is_risk and not r.verified][:16]
    return risky + verified + rest


@pytest.fixture()
def data_file(tmp_path, small_records):
    path = tmp_path / "slice.jsonl"
    path.write_text("".join(json.dumps(r.model_dump(exclude_none=True)) + "\n" for r in small_records))
    return path


@pytest.fixture(scope="session")
def tiny_train(tmp_path_factory, dataset):
    """A small real train file, so the TF-IDF baseline fits in a second."""
    train = dataset["train"]
    pick = [r for r in train if r.is_risk][:150] + [r for r in train if not r.is_risk][:250]
    path = tmp_path_factory.mktemp("train") / "train.jsonl"
    path.write_text("".join(json.dumps(r.model_dump(exclude_none=True)) + "\n" for r in pick))
    return path
