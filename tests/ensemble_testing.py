"""Hand-made ensemble files and component scores for the tests of the mix (reviewer/ensemble.py) and
its tuning (eval/ensemble_tune.py)."""

from __future__ import annotations

import numpy as np
import torch

from contract_review.reviewer import ensemble as E
from contract_review.taxonomy import load_taxonomy
from contract_review.training.reviewer_model import Labels

TAX = load_taxonomy()
LABELS = Labels.from_taxonomy(TAX)
T = len(LABELS.clause_type)


def fingerprint(name: str = "m", sha: str = "0" * 16) -> E.Fingerprint:
    return E.Fingerprint(model_version=name, sha=sha, settings={"C": 0.5})


def config(**rules) -> E.EnsembleConfig:
    """Every type reviewer-only at 0.5, except the `rules` given."""
    types = {t: E.TypeRule(reviewer=1.0, threshold=0.5, chosen="global", positives=0) for t in LABELS.clause_type}
    types.update(rules)
    return E.EnsembleConfig(format=E.FORMAT, reviewer=fingerprint("reviewer"), tfidf=fingerprint("tfidf"),
                            unfair_tos=fingerprint("unfair"), types=types, risk=E.RiskRule(rule="mixed"))


def scores(n: int, seed: int = 0) -> E.Scores:
    """Random component scores of n clauses: reviewer probabilities, TF-IDF and (8 types) SVM decision values."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    reviewer = {"clause_type": torch.rand(n, T, generator=g), "party": torch.softmax(torch.randn(n, 4, generator=g), 1),
                "risk_to": torch.softmax(torch.randn(n, 4, generator=g), 1),
                "severity": torch.softmax(torch.randn(n, 4, generator=g), 1)}
    unfair = np.full((n, T), np.nan)
    for ct in TAX.by_claudette().values():
        unfair[:, LABELS.clause_type.index(ct.id)] = rng.normal(size=n)
    return E.Scores(reviewer, rng.normal(size=(n, T)), unfair)
