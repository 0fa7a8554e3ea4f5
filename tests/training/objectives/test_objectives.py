"""The objectives on the real default tokenizer and shipped records: rows, batches, the tokens they count."""

import typing

import pytest
import torch

from contract_review.training.config import Config, load_config
from contract_review.training.data import IGNORE
from contract_review.training.models import load_tokenizer
from contract_review.training.objectives.registry import OBJECTIVES, make_objective


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("default")


@pytest.fixture(scope="module")
def records(dataset):
    return [r for r in dataset["validation"] if len(r.text) < 400][:12]


def test_every_objective_the_config_accepts_has_its_file():
    assert set(typing.get_args(Config.model_fields["objective"].annotation)) == set(OBJECTIVES)


def test_sft_packs_rows_within_max_length_and_counts_their_tokens(tokenizer, records):
    obj = make_objective(load_config(None, ["data.max_length=2048"]), tokenizer)
    obj.fit(None, records, torch.device("cpu"))
    rows = obj.encode(records)
    assert 0 < len(rows) < len(records)  # short clauses share rows
    assert all(obj.length(r) <= 2048 for r in rows)
    assert sum(len(row) for row in rows) == len(records)
    batch = obj.collate(rows[:2])
    assert obj.tokens(rows[:2], batch) == obj.length(rows[0]) + obj.length(rows[1])
    # the loss is on the answers only: every row has prompt tokens masked out and answer tokens kept
    assert ((batch["labels"] == IGNORE).any(1) & (batch["labels"] != IGNORE).any(1)).all()


def test_classify_rows_end_with_eos_and_evaluate_shortest_first(tokenizer, records):
    obj = make_objective(load_config(None, ["objective=classify", "data.max_length=64"]), tokenizer)
    rows = obj.encode(records)
    assert len(rows) == len(records) and all(r["input_ids"][-1] == tokenizer.eos_token_id for r in rows)
    assert all(obj.length(r) <= 64 for r in rows)
    order = obj.eval_order(rows)
    assert [obj.length(rows[i]) for i in order] == sorted(obj.length(r) for r in rows)
    batch = obj.collate(rows[:3])
    assert obj.tokens(rows[:3], batch) == sum(obj.length(r) for r in rows[:3])
    assert batch["clause_type"].shape == (3, len(obj.labels.clause_type))
