"""The ensemble of the reviewer and the TF-IDF models: calibration, mixing, tuning, its file, and a
real run (the shipped reviewer, a real TF-IDF fit, LexGLUE's SVM) through `contract-review eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_testing import item

from contract_review.eval import ensemble as E
from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR
from contract_review.taxonomy import load_taxonomy
from contract_review.training.reviewer_model import Labels

TAX = load_taxonomy()
LABELS = Labels.from_taxonomy(TAX)
T = len(LABELS.clause_type)
SHIPPED = DEFAULT_ADAPTER_DIR / E.ENSEMBLE_FILE


def _print(name: str = "m", sha: str = "0" * 16) -> E.Fingerprint:
    return E.Fingerprint(model_version=name, sha=sha, settings={"C": 0.5})


def _config(**rules) -> E.EnsembleConfig:
    """Every type reviewer-only at 0.5, except the `rules` given."""
    types = {t: E.TypeRule(reviewer=1.0, threshold=0.5, chosen="global", positives=0) for t in LABELS.clause_type}
    types.update(rules)
    return E.EnsembleConfig(format=E.FORMAT, reviewer=_print("reviewer"), tfidf=_print("tfidf"),
                            unfair_tos=_print("unfair"), types=types,
                            risk=E.RiskRule(rule="mixed"))


def _scores(n: int, seed: int = 0) -> E.Scores:
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    reviewer = {"clause_type": torch.rand(n, T, generator=g), "party": torch.softmax(torch.randn(n, 4, generator=g), 1),
                "risk": torch.softmax(torch.randn(n, 4, generator=g), 1)}
    unfair = np.full((n, T), np.nan)
    for ct in TAX.by_claudette().values():
        unfair[:, LABELS.clause_type.index(ct.id)] = rng.normal(size=n)
    return E.Scores(reviewer, rng.normal(size=(n, T)), unfair)


# -- calibration and mixing ------------------------------------------------------------------

def test_platt_fit_recovers_a_known_logistic_curve():
    rng = np.random.default_rng(0)
    d = rng.normal(scale=2.0, size=40_000)
    y = rng.random(40_000) < 1 / (1 + np.exp(-(1.5 * d - 0.5)))
    fit = E.fit_platt(d, y)
    assert fit.a == pytest.approx(1.5, abs=0.06) and fit.b == pytest.approx(-0.5, abs=0.06)
    assert E.fit_platt(d, np.zeros_like(y)) is None  # nothing to calibrate against: no fit, no guess


def test_mix_is_the_weighted_average_of_calibrated_scores():
    j, u = LABELS.clause_type.index("audit_rights"), LABELS.clause_type.index("arbitration")
    cfg = _config(
        audit_rights=E.TypeRule(reviewer=0.25, tfidf=0.75, threshold=0.4, tfidf_platt=E.Platt(a=2.0, b=-1.0),
                                chosen="type", positives=30),
        arbitration=E.TypeRule(reviewer=0.5, tfidf=0.2, unfair_tos=0.3, threshold=0.5,
                               tfidf_platt=E.Platt(a=1.0, b=0.0), unfair_tos_platt=E.Platt(a=0.5, b=0.5),
                               chosen="type", positives=30))
    s = _scores(50)
    out = E.mix(cfg, LABELS, s)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    p = s.reviewer["clause_type"].double().numpy()
    np.testing.assert_allclose(out["clause_type"][:, j].numpy(), 0.25 * p[:, j] + 0.75 * sig(2 * s.tfidf[:, j] - 1),
                               atol=1e-6)
    np.testing.assert_allclose(out["clause_type"][:, u].numpy(),
                               0.5 * p[:, u] + 0.2 * sig(s.tfidf[:, u]) + 0.3 * sig(0.5 * s.unfair_tos[:, u] + 0.5),
                               atol=1e-6)
    other = [k for k in range(T) if k not in (j, u)]
    np.testing.assert_allclose(out["clause_type"][:, other].numpy(), p[:, other], atol=1e-6)  # reviewer-only types
    assert torch.equal(out["party"], s.reviewer["party"]) and torch.equal(out["risk"], s.reviewer["risk"])


def test_highest_risk_rule_keeps_a_chosen_unfair_type_risky_unless_only_the_head_can_tell():
    """Under `highest` a CLAUDETTE-only type (default medium/high) stays a risk when the head says
    low, governing law (default low) takes the head's level, and CUAD-only types keep their default;
    `mixed` lets the head veto the CLAUDETTE type, as before."""
    from contract_review.reviewer.decisions import risk_of

    assert risk_of(["jurisdiction"], "low", "highest", TAX) == "medium"
    assert risk_of(["jurisdiction"], "low", "mixed", TAX) == "low"
    assert risk_of(["governing_law"], "high", "highest", TAX) == "high"
    assert risk_of(["governing_law"], "none", "highest", TAX) == "low"
    assert risk_of(["audit_rights"], "none", "highest", TAX) == TAX.clause_type("audit_rights").risk
    assert risk_of(["other"], "high", "highest", TAX) == "high"  # no type: the head alone


def test_decisions_are_the_reviewers_own_on_the_mixed_probabilities():
    """A clause whose mixed audit-rights probability crosses the threshold gets the type, its
    default risk (medium) and the taxonomy's category, exactly as the reviewer would decide."""
    j = LABELS.clause_type.index("audit_rights")
    cfg = _config(audit_rights=E.TypeRule(reviewer=0.0, tfidf=1.0, threshold=0.5, tfidf_platt=E.Platt(a=1.0, b=0.0),
                                          chosen="type", positives=30))
    s = _scores(2)
    s.reviewer["clause_type"][:] = 0.0
    s.reviewer["risk"][:] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # the head says: no risk
    s.tfidf[:, j] = [4.0, -4.0]
    a, b = (p.answer for p in E.decide(cfg, LABELS, s, TAX))
    assert a.clause_types == ("audit_rights",) and a.risk == TAX.clause_type("audit_rights").risk
    assert a.risk_category == TAX.clause_type("audit_rights").risk_category
    assert b.clause_types == ("other",) and b.risk == "none"


# -- tuning ------------------------------------------------------------------------------------

def test_tuning_weights_the_informative_source_and_falls_back_to_global_for_rare_types():
    """audit_rights: only TF-IDF separates the classes; insurance: only the reviewer does;
    warranty_duration has 3 positives, too few for a choice of its own."""
    n = 400
    s = _scores(n, seed=1)
    y = np.zeros((n, T), dtype=bool)
    audit, ins, warranty = (LABELS.clause_type.index(t) for t in ("audit_rights", "insurance", "warranty_duration"))
    y[:40, audit] = True
    s.tfidf[:, audit] = np.where(y[:, audit], 3.0, -3.0) + np.random.default_rng(2).normal(scale=0.3, size=n)
    y[100:150, ins] = True
    s.reviewer["clause_type"][:, ins] = torch.from_numpy(np.where(y[:, ins], 0.9, 0.1)).float()
    y[300:303, warranty] = True
    rules = E.tune_types(s, y, LABELS, E.TuneSettings(min_positives=20))
    assert rules["audit_rights"].chosen == "type" and rules["audit_rights"].tfidf > 0.5
    assert rules["insurance"].chosen == "type" and rules["insurance"].reviewer == 1.0
    assert rules["warranty_duration"].chosen == "global" and rules["warranty_duration"].positives == 3
    cfg = _config(**rules)
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
    y = E.targets([fair, unfair, cuad], LABELS, TAX, "unfair")
    assert y[:, a].tolist() == [False, True, False] and y[:, c].tolist() == [False, False, True]
    assert E.targets([fair, unfair, cuad], LABELS, TAX, "type")[:, a].tolist() == [True, True, False]


def test_tune_settings_are_validated():
    with pytest.raises(ValueError, match="weight_step"):
        E.TuneSettings(weight_step=0.3)
    with pytest.raises(ValueError, match="min_positives"):
        E.TuneSettings(min_positives=0)


# -- the ensemble file -------------------------------------------------------------------------

def test_file_round_trips_and_reads_one_type_per_line(tmp_path):
    cfg = _config(audit_rights=E.TypeRule(reviewer=0.3, tfidf=0.7, threshold=0.35, tfidf_platt=E.Platt(a=1.2, b=-2.0),
                                          chosen="type", positives=34))
    path = E.write_config(cfg, tmp_path / "ensemble.json")
    assert E.read_config(path) == cfg
    assert sum('"audit_rights": {' in line for line in path.read_text().splitlines()) == 1


@pytest.mark.parametrize("edit, message", [
    (lambda raw: "{not json", "not JSON"),
    (lambda raw: {**raw, "format": "contract-review-ensemble/0"}, "format 'contract-review-ensemble/0'"),
    (lambda raw: {**raw, "types": {**raw["types"], "audit_rights": {**raw["types"]["audit_rights"], "tfidf": 0.9}}},
     "types.audit_rights: weights reviewer + tfidf + unfair_tos must sum to 1"),
    (lambda raw: {**raw, "types": {**raw["types"], "audit_rights": {**raw["types"]["audit_rights"],
                                                                    "tfidf_platt": None}}},
     "tfidf has weight 0.7 but no tfidf_platt"),
    (lambda raw: {**raw, "risk": {**raw["risk"], "rule": "vote"}}, "risk.rule"),
    (lambda raw: {**raw, "extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_a_bad_file_names_the_problem_and_the_fix(tmp_path, edit, message):
    cfg = _config(audit_rights=E.TypeRule(reviewer=0.3, tfidf=0.7, threshold=0.35, tfidf_platt=E.Platt(a=1.0, b=0.0),
                                          chosen="type", positives=34))
    raw = json.loads(E.write_config(cfg, tmp_path / "good.json").read_text())
    bad = edit(raw)
    path = tmp_path / "ensemble.json"
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(E.EnsembleError) as exc:
        E.read_config(path)
    assert message in str(exc.value) and "python -m contract_review.eval.ensemble tune" in str(exc.value)
    with pytest.raises(E.EnsembleError, match="no ensemble file"):
        E.read_config(tmp_path / "missing.json")


def test_a_file_tuned_with_another_tfidf_fit_is_refused():
    cfg = _config()
    with pytest.raises(E.EnsembleError) as exc:
        E.check_components(cfg, "ens.json", _print("reviewer"), LABELS, _print("tfidf", sha="f" * 16), _print("unfair"))
    msg = str(exc.value)
    assert "tfidf: tuned with tfidf (sha 0000000000000000" in msg and "ffffffffffffffff" in msg and "re-tune" in msg
    E.check_components(cfg, "ens.json", _print("reviewer"), LABELS, _print("tfidf"), _print("unfair"))  # matches
    with pytest.raises(E.EnsembleError, match="unfair_tos model .* that was not loaded"):
        E.check_components(cfg, "ens.json", _print("reviewer"), LABELS, _print("tfidf"), None)


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped ensemble file")
def test_the_shipped_file_was_tuned_with_the_shipped_reviewer_and_train_split():
    import hashlib

    from contract_review.paths import DATASET_DIR
    from contract_review.records import find_split_file

    cfg = E.read_config(SHIPPED)
    assert cfg.reviewer.sha == E.reviewer_fingerprint(DEFAULT_ADAPTER_DIR).sha
    assert cfg.tfidf.sha == hashlib.sha256(find_split_file(DATASET_DIR, "train").read_bytes()).hexdigest()
    assert set(cfg.types) == set(LABELS.clause_type) and cfg.tuned["split"] == "validation"


# -- a real run --------------------------------------------------------------------------------

def test_the_ensemble_spec_refuses_a_tfidf_fit_it_was_not_tuned_with(tmp_path, tiny_train, tfidf_cache, capsys,
                                                                     data_file):
    """The shipped file was tuned against the full train split; a TF-IDF fit on another file is refused
    before the reviewer is loaded, with the command that re-tunes."""
    from contract_review.cli import main

    if not SHIPPED.exists():
        pytest.skip("no shipped ensemble file")
    rc = main(["eval", "--data", str(data_file), "--model", "ensemble", "--tfidf-train", str(tiny_train),
               "--baselines", "none", "--out", str(tmp_path / "x"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match the models it would mix" in err and "tfidf: tuned with" in err
    assert "python -m contract_review.eval.ensemble tune" in err and not (tmp_path / "x").exists()
