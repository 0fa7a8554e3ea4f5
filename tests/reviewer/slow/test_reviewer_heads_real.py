"""The shipped reviewer adapter and the Predictor it implements."""

from pathlib import Path

import torch

from contract_review.predictor import ClauseInput, ClausePrediction, Predictor
from contract_review.prompt import Answer
from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR, load_reviewer_predictor
from contract_review.training.reviewer_model import Labels

LABELS = Labels.from_taxonomy()


def test_shipped_reviewer_predicts_valid_answers():
    predictor = load_reviewer_predictor()
    assert isinstance(predictor, Predictor)
    clauses = [
        ClauseInput("This Agreement shall be governed by the laws of the State of New York.",
                    {"first_party": "Acme", "second_party": "Beta"}),
        ClauseInput("In no event shall either party be liable for any indirect or consequential damages.", {}),
        ClauseInput("We may change these terms at any time without notice.", {}),
        ClauseInput("The parties have executed this Agreement as of the date first written above.", {}),
    ]
    preds = predictor.predict(clauses)
    assert len(preds) == 4 and all(isinstance(p, ClausePrediction) and isinstance(p.answer, Answer) for p in preds)
    assert "governing_law" in preds[0].answer.clause_types
    for p in preds:
        assert 0.0 <= p.confidence <= 1.0
        assert set(p.scores["clause_type"]) == set(LABELS.clause_type)
        assert abs(sum(p.scores["risk"].values()) - 1) < 1e-2
    assert predictor.predict([]) == []


def test_reviewer_probs_script_saves_head_probabilities_in_split_order(tmp_path):
    """bench/training/reviewer_probs.py (what the GPU retraining saves for tuning decision rules on the
    CPU): the shipped adapter on the first records of validation, rows in the split file's order."""
    import subprocess
    import sys

    from contract_review.records import find_split_file, read_records

    root = Path(__file__).resolve().parents[3]
    out = tmp_path / "probs.pt"
    subprocess.run([sys.executable, str(root / "bench" / "training" / "reviewer_probs.py"), str(DEFAULT_ADAPTER_DIR),
                    str(out), "--splits", "validation", "--limit", "6"], check=True, cwd=root, timeout=300)
    res = torch.load(out)
    recs = read_records(find_split_file(root / "data" / "dataset", "validation"))[:6]
    assert list(res) == ["validation"] and res["validation"]["ids"] == [r.id for r in recs]
    p = res["validation"]
    assert p["clause_type"].shape == (6, 47) and p["party"].shape == (6, 4) and p["risk"].shape == (6, 4)
    assert p["risk"].dtype == torch.float16
    assert torch.allclose(p["risk"].float().sum(1), torch.ones(6), atol=1e-2)
