"""The shipped reviewer adapter and the Predictor it implements."""

from contract_review.predictor import ClauseInput, ClausePrediction, Predictor
from contract_review.prompt import Answer
from contract_review.reviewer.heads import load_reviewer_predictor
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
        assert abs(sum(p.scores["severity"].values()) - 1) < 1e-2
    assert predictor.predict([]) == []
