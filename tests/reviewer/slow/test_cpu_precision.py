"""The served reviewer runs in the CPU's fast precision: plain fp32 on a CPU without native bf16,
bf16 autocast on one with it, with the same answers either way."""

from __future__ import annotations

import time

import pytest
import torch

from contract_review.predictor import ClauseInput
from contract_review.reviewer.heads import ReviewerPredictor, load_reviewer_predictor
from contract_review.training.precision import ENV, cpu_precision

PARTIES = {"first_party": "Acme Inc.", "second_party": "Beta LLC"}
CLAUSES = [ClauseInput(t, PARTIES) for t in (
    "In no event shall Acme's aggregate liability exceed the fees paid in the twelve months before the claim.",
    "Either party may terminate this Agreement on thirty (30) days' written notice to the other party.",
    "This Agreement shall be governed by the laws of the State of New York.",
    "Beta shall not, during the term and for two years after, solicit any employee of Acme.",
    "Acme may change these terms at any time without notice, and continued use means acceptance.",
    "Each party shall keep the other's Confidential Information secret for five years.",
)]


@pytest.fixture(scope="module")
def reviewer(default_model):
    return load_reviewer_predictor()


def _timed(predictor: ReviewerPredictor) -> tuple[dict[str, torch.Tensor], float]:
    predictor.head_probs(CLAUSES[:1])  # warm-up
    t0 = time.perf_counter()
    probs = predictor.head_probs(CLAUSES)
    return probs, time.perf_counter() - t0


def test_the_reviewer_default_follows_the_cpu_choice_and_is_the_faster(reviewer, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    cpu_precision.cache_clear()
    choice = cpu_precision()
    assert reviewer.autocast == (choice.precision == "bf16")
    assert reviewer.precision == ("bf16 autocast" if choice.precision == "bf16" else "fp32")
    other = ReviewerPredictor(reviewer.model, reviewer.tokenizer, reviewer.meta, autocast=not reviewer.autocast)
    mine, mine_s = _timed(reviewer)
    theirs, theirs_s = _timed(other)
    for field in ("clause_type", "party", "risk_to", "severity"):
        # bf16 matmuls against fp32: the same decisions, probabilities a few hundredths apart
        assert (mine[field] - theirs[field]).abs().max() < 0.08, field
    if choice.how == "processor flags" and choice.precision == "fp32":
        assert mine_s < theirs_s, f"fp32 {mine_s:.2f} s, bf16 autocast {theirs_s:.2f} s on {len(CLAUSES)} clauses"


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_the_environment_forces_the_reviewers_precision(reviewer, monkeypatch, forced):
    monkeypatch.setenv(ENV, forced)
    cpu_precision.cache_clear()
    try:
        p = ReviewerPredictor(reviewer.model, reviewer.tokenizer, reviewer.meta)
        assert p.autocast == (forced == "bf16") and p.precision == ("bf16 autocast" if forced == "bf16" else "fp32")
    finally:
        cpu_precision.cache_clear()
