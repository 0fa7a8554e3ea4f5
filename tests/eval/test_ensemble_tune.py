"""Tuning the served model's mix on validation: calibration, weights and thresholds, targets, settings,
and the file it writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ensemble_testing import LABELS, TAX, T, config, scores
from eval_testing import item

from contract_review.eval import ensemble_tune as ET
from contract_review.reviewer import ensemble as E


def test_platt_fit_recovers_a_known_logistic_curve():
    rng = np.random.default_rng(0)
    d = rng.normal(scale=2.0, size=40_000)
    y = rng.random(40_000) < 1 / (1 + np.exp(-(1.5 * d - 0.5)))
    fit = ET.fit_platt(d, y)
    assert fit.a == pytest.approx(1.5, abs=0.06) and fit.b == pytest.approx(-0.5, abs=0.06)
    assert ET.fit_platt(d, np.zeros_like(y)) is None  # nothing to calibrate against: no fit, no guess


def test_tuning_weights_the_informative_source_and_falls_back_to_global_for_rare_types():
    """audit_rights: only TF-IDF separates the classes; insurance: only the reviewer does;
    warranty_duration has 3 positives, too few for a choice of its own."""
    n = 400
    s = scores(n, seed=1)
    y = np.zeros((n, T), dtype=bool)
    audit, ins, warranty = (LABELS.clause_type.index(t) for t in ("audit_rights", "insurance", "warranty_duration"))
    y[:40, audit] = True
    s.tfidf[:, audit] = np.where(y[:, audit], 3.0, -3.0) + np.random.default_rng(2).normal(scale=0.3, size=n)
    y[100:150, ins] = True
    s.reviewer["clause_type"][:, ins] = torch.from_numpy(np.where(y[:, ins], 0.9, 0.1)).float()
    y[300:303, warranty] = True
    rules = ET.tune_types(s, y, LABELS, ET.TuneSettings(min_positives=20))
    # TF-IDF gets at least the reviewer's weight; where 0.5 already separates the classes the tie keeps the
    # reviewer-heaviest mix, so which of 0.5 or more wins depends on the random draw (and the number of types)
    assert rules["audit_rights"].chosen == "type" and rules["audit_rights"].tfidf >= 0.5 >= rules["audit_rights"].reviewer
    assert rules["insurance"].chosen == "type" and rules["insurance"].reviewer == 1.0
    assert rules["warranty_duration"].chosen == "global" and rules["warranty_duration"].positives == 3
    cfg = config(**rules)
    mixed = E.mix(cfg, LABELS, s)["clause_type"].numpy()
    for k in (audit, ins):
        assert ((mixed[:, k] >= rules[LABELS.clause_type[k]].threshold) == y[:, k]).all()  # F1 = 1 on both


def test_claudette_types_are_tuned_for_what_lexglue_scores():
    """Under the `unfair` target a CLAUDETTE sentence tagged with a category only counts when it is
    unfair for it; a CUAD clause of a merged type always counts."""
    fair = item(0, risk="low", types=("arbitration",), unfair=set(), doc="tos")
    unfair = item(1, risk="high", types=("arbitration",), unfair={"A"}, doc="tos")
    cuad = item(2, risk="medium", types=("cap_on_liability",), doc="c")
    a, c = LABELS.clause_type.index("arbitration"), LABELS.clause_type.index("cap_on_liability")
    y = ET.targets([fair, unfair, cuad], LABELS, TAX, "unfair")
    assert y[:, a].tolist() == [False, True, False] and y[:, c].tolist() == [False, False, True]
    assert ET.targets([fair, unfair, cuad], LABELS, TAX, "type")[:, a].tolist() == [True, True, False]


def test_tune_settings_are_validated():
    with pytest.raises(ValueError, match="weight_step"):
        ET.TuneSettings(weight_step=0.3)
    with pytest.raises(ValueError, match="min_positives"):
        ET.TuneSettings(min_positives=0)


def test_file_round_trips_and_reads_one_type_per_line(tmp_path):
    cfg = config(audit_rights=E.TypeRule(reviewer=0.3, tfidf=0.7, threshold=0.35, tfidf_platt=E.Platt(a=1.2, b=-2.0),
                                         chosen="type", positives=34))
    path = ET.write_config(cfg, tmp_path / "ensemble.json")
    assert E.read_config(path) == cfg
    assert sum('"audit_rights": {' in line for line in path.read_text().splitlines()) == 1


def test_tuning_without_saved_probabilities_names_the_command_that_saves_them(tmp_path, capsys):
    from contract_review.cli import main

    rc = main(["eval", "tune-ensemble", "--probs", str(tmp_path / "probs.pt"), "--out", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "contract-review eval --save-probs" in err and not (tmp_path / "e.json").exists()


def test_the_risk_rule_is_chosen_on_directional_risk_and_the_types_are_kept():
    """Termination-for-convenience clauses whose gold severity follows the written criteria (notice and
    payment make it low for Beta), a severity head that always says high and an unsure bearer head: the
    rule `criteria` wins, and the ensemble's type rules come back unchanged."""
    from dataclasses import replace
    names = {"first_party": "Acme", "second_party": "Beta"}
    texts = {"low": "Acme may terminate this Agreement for convenience upon ninety (90) days' written notice to "
                    "Beta, and shall pay Beta for all work performed through the date of termination.",
             "high": "Acme may terminate this Agreement for convenience in its sole discretion."}
    items = [replace(item(i, risk=sev, types=("termination_for_convenience",), doc=f"d{i}", risk_to="second_party"),
                     text=texts[sev], party_names=names) for i, sev in enumerate(["low", "high"] * 6)]
    s = scores(len(items), seed=3)
    tfc = LABELS.clause_type.index("termination_for_convenience")
    s.reviewer["clause_type"][:] = 0.01
    s.reviewer["clause_type"][:, tfc] = 0.95
    high = torch.full((4,), 0.01)
    high[LABELS.severity.index("high")] = 0.97
    s.reviewer["severity"][:] = high
    s.reviewer["risk_to"][:] = 0.25
    kept = config()
    chosen = ET.choose_risk(kept, s, items, LABELS, ET.TuneSettings(), TAX, {"note": "kept"})
    assert chosen.risk.rule == "criteria" and chosen.types == kept.types and chosen.tuned["note"] == "kept"
    by_rule = {(c["rule"], c.get("bearer_confident")): c["all/risk_dir.f1"] for c in chosen.tuned["risk_choices"]}
    assert by_rule[("criteria", 0.9)] == 1.0 and by_rule[("types", None)] < 1.0


def test_bearer_thresholds_are_validated():
    with pytest.raises(ValueError, match="bearer_thresholds"):
        ET.TuneSettings(bearer_thresholds=(1.5,))
