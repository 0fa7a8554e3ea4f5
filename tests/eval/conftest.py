"""Fixtures of the evaluation tests: hand-made items, a predictor that answers from a table,
small real dataset files."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from contract_review.prompt import Answer
from contract_review.taxonomy import load_taxonomy
from eval.items import EvalItem
from eval.predict import ClauseInput, ClausePrediction


def item(i: int, risk: str = "none", types=("other",), doc: str = "d0", party: str = "none", verified=False,
         unfair=None, category: str | None = None) -> EvalItem:
    tax = load_taxonomy()
    if category is None:
        category = tax.clause_type(types[0]).risk_category if risk != "none" else "none"
    return EvalItem(id=f"x/{doc}/{i}", doc_id=doc, source="claudette" if unfair is not None else "cuad",
                    text=f"clause number {i} of {doc}", clause_types=tuple(types), party=party, risk=risk,
                    risk_category=category, verified=verified,
                    unfair=None if unfair is None else frozenset(unfair))


def pred(risk: str = "none", types=("other",), party: str = "none", confidence: float = 0.9,
         category: str | None = None) -> ClausePrediction:
    tax = load_taxonomy()
    if category is None:
        category = tax.clause_type(types[0]).risk_category if risk != "none" else "none"
    return ClausePrediction(answer=Answer(tuple(types), party, risk, category, "r"), confidence=confidence)


def invalid(kind: str = "invalid_json") -> ClausePrediction:
    return ClausePrediction(answer=None, raw="not json at all", error=kind)


class TablePredictor:
    """Answers each clause from a text -> prediction table (a stand-in for a model)."""

    def __init__(self, table: dict[str, ClausePrediction], name: str = "table"):
        self.table, self.name, self.model_version = table, name, f"{name}-v1"

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        return [self.table[c.text] for c in clauses]


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
