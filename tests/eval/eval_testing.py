"""Hand-made evaluation items and predictions, and a predictor that answers from a table, for the
evaluation tests (a module of its own, not conftest: test folders each have a conftest, and importing
`conftest` by name picks whichever folder's was imported first)."""

from __future__ import annotations

from collections.abc import Sequence

from contract_review.eval.items import EvalItem
from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.prompt import Answer
from contract_review.taxonomy import load_taxonomy


def item(i: int, risk: str = "none", types=("other",), doc: str = "d0", party: str = "none", verified=False,
         unfair=None, category: str | None = None, risk_to: str | None = None, graded: bool = False) -> EvalItem:
    """A gold item; its bearer defaults to second_party for a risk (none without one)."""
    tax = load_taxonomy()
    if category is None:
        category = tax.clause_type(types[0]).risk_category if risk != "none" else "none"
    return EvalItem(id=f"x/{doc}/{i}", doc_id=doc, source="claudette" if unfair is not None else "cuad",
                    text=f"clause number {i} of {doc}", clause_types=tuple(types), party=party, risk=risk,
                    risk_category=category, verified=verified,
                    unfair=None if unfair is None else frozenset(unfair),
                    risk_to=risk_to or ("none" if risk == "none" else "second_party"),
                    risk_labeller="graded" if graded else "rules")


def pred(risk: str = "none", types=("other",), party: str = "none", confidence: float = 0.9,
         category: str | None = None, risk_to: str | None = "default") -> ClausePrediction:
    """A prediction; its bearer defaults to second_party for a risk (none without one); None: unsaid."""
    tax = load_taxonomy()
    if category is None:
        category = tax.clause_type(types[0]).risk_category if risk != "none" else "none"
    if risk_to == "default":
        risk_to = "none" if risk == "none" else "second_party"
    return ClausePrediction(answer=Answer(tuple(types), party, risk, category, "r", risk_to=risk_to),
                            confidence=confidence)


def invalid(kind: str = "invalid_json") -> ClausePrediction:
    return ClausePrediction(answer=None, raw="not json at all", error=kind)


class TablePredictor:
    """Answers each clause from a text -> prediction table (a stand-in for a model)."""

    def __init__(self, table: dict[str, ClausePrediction], name: str = "table"):
        self.table, self.name, self.model_version = table, name, f"{name}-v1"

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        return [self.table[c.text] for c in clauses]
