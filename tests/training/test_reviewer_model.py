"""What training computes for the reviewer model besides its loss: per-type thresholds."""

import torch

from contract_review.training.reviewer_model import tune_thresholds


def test_thresholds_are_tuned_per_type_and_left_alone_without_positives():
    probs = torch.tensor([[0.3, 0.9], [0.35, 0.8], [0.1, 0.7], [0.32, 0.2], [0.05, 0.1], [0.31, 0.1]])
    targets = torch.tensor([[1, 0], [1, 0], [0, 0], [1, 0], [0, 0], [1, 0]])
    thr = tune_thresholds(probs, targets, min_positives=2)
    assert thr[0] <= 0.3 and thr[1] == 0.5
