"""The risk figures say what they measure: directional risk, severity within type, who bears the risk,
the type-oracle baselines, and gold (graded) labels reported apart from rule labels."""

from __future__ import annotations

import json

import pytest
from eval_testing import TablePredictor, item, pred

from contract_review.eval.metrics import decisions, point_metrics
from contract_review.eval.oracle import TYPE_DEFAULTS, TYPE_ORACLE, oracle_runs
from contract_review.eval.runner import evaluate
from contract_review.taxonomy import load_taxonomy


def test_directional_risk_needs_the_right_bearer():
    items = [item(0, "high", ("non_compete",), risk_to="first_party"), item(1, "high", ("non_compete",)),
             item(2, "medium", ("renewal_term",), risk_to="both"), item(3)]
    preds = [pred("high", ("non_compete",), risk_to="first_party"),   # hit
             pred("high", ("non_compete",), risk_to="first_party"),   # right decision, wrong party
             pred("low", ("renewal_term",), risk_to="both"),          # missed (low is no risk clause)
             pred("medium", ("renewal_term",), risk_to=None)]         # a false alarm that names nobody
    m = point_metrics(decisions(items, preds))
    # tp 1; fp: item 1 (wrong party) and item 3; fn: items 1 and 2
    assert m["risk_dir.precision"] == pytest.approx(1 / 3) and m["risk_dir.recall"] == pytest.approx(1 / 3)
    assert m["risk.f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # the undirected decision ignores the party
    assert m["risk_to.accuracy"] == pytest.approx(2 / 4)  # items 0 and 2 (both); 1 wrong; 3 unsaid
    # within type: non_compete 2/2 right (high, high); renewal_term 0/1 -> mean 0.5
    assert m["severity.accuracy_within_type"] == pytest.approx(0.5)


def test_the_type_oracle_answers_the_types_defaults_with_the_bearer_rule():
    tax = load_taxonomy()
    it = item(0, "low", ("non_compete",), risk_to="second_party")
    it = type(it)(**{**it.__dict__, "text": "Distributor shall not sell competing products during the term.",
                     "party_names": {"first_party": "Acme Corp", "second_party": "Distributor LLC"},
                     "party_aliases": {"first_party": ["Acme"], "second_party": ["Distributor"]}})
    runs = oracle_runs([it], [pred("none", ("other",), party="second_party")])
    oracle = runs[TYPE_ORACLE][0].answer
    assert oracle.severity == tax.clause_type("non_compete").severity == "high"
    assert oracle.risk_to == "second_party" and oracle.party == "second_party"
    # the model predicted no type: the defaults of its types say no risk
    assert runs[TYPE_DEFAULTS][0].answer.severity == "none" and runs[TYPE_DEFAULTS][0].answer.risk_to == "none"


def test_a_run_reports_gold_graded_labels_apart_from_rule_labels(tmp_path):
    items = [item(0, "high", ("non_compete",), doc="a", graded=True), item(1, doc="a", graded=True),
             item(2, "medium", ("renewal_term",), doc="b", risk_to="both"), item(3, doc="b")]
    table = {it.text: p for it, p in zip(items, [pred("high", ("non_compete",)), pred(), pred(), pred()])}
    m = evaluate(items, [(TablePredictor(table), 0.0)], tmp_path / "run", {"file": "x"}, resamples=20)
    groups = m["by_risk_labeller"]
    assert set(groups) == {"graded", "rules"} and groups["graded"]["gold"] and not groups["rules"]["gold"]
    assert groups["graded"]["records"] == 2 and groups["graded"]["risk_dir.f1"]["value"] == 1.0
    assert groups["rules"]["risk.recall"]["value"] == 0.0
    assert set(m["baselines"]) == {TYPE_ORACLE, TYPE_DEFAULTS}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "2 records here carry gold risk labels" in report and "Who bears the risk" in report
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["gold"]["risk_labeller"] == "graded" and rows[0]["pred"]["risk_to"] == "second_party"
