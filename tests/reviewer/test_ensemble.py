"""The served model's mix: calibrated mixing, the reviewer's decision on it, and its file (read, refused
when broken or tuned with other models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ensemble_testing import LABELS, TAX, T, config, fingerprint, scores

from contract_review.reviewer import ensemble as E
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR

SHIPPED = DEFAULT_ADAPTER_DIR / E.ENSEMBLE_FILE


def test_mix_is_the_weighted_average_of_calibrated_scores():
    j, u = LABELS.clause_type.index("audit_rights"), LABELS.clause_type.index("arbitration")
    cfg = config(
        audit_rights=E.TypeRule(reviewer=0.25, tfidf=0.75, threshold=0.4, tfidf_platt=E.Platt(a=2.0, b=-1.0),
                                chosen="type", positives=30),
        arbitration=E.TypeRule(reviewer=0.5, tfidf=0.2, unfair_tos=0.3, threshold=0.5,
                               tfidf_platt=E.Platt(a=1.0, b=0.0), unfair_tos_platt=E.Platt(a=0.5, b=0.5),
                               chosen="type", positives=30))
    s = scores(50)
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
    for head in ("party", "risk_to", "severity"):  # the reviewer's own heads, unmixed
        assert torch.equal(out[head], s.reviewer[head])


def test_decisions_are_the_reviewers_own_on_the_mixed_probabilities():
    """A clause whose mixed audit-rights probability crosses the threshold gets the type, its
    default risk (medium) and the taxonomy's category, exactly as the reviewer would decide."""
    j = LABELS.clause_type.index("audit_rights")
    cfg = config(audit_rights=E.TypeRule(reviewer=0.0, tfidf=1.0, threshold=0.5, tfidf_platt=E.Platt(a=1.0, b=0.0),
                                         chosen="type", positives=30))
    s = scores(2)
    s.reviewer["clause_type"][:] = 0.0
    s.reviewer["severity"][:] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # the head says: no risk
    s.tfidf[:, j] = [4.0, -4.0]
    a, b = (p.answer for p in E.decide(cfg, LABELS, s, TAX))
    assert a.clause_types == ("audit_rights",) and a.risk == TAX.clause_type("audit_rights").risk
    assert a.risk_category == TAX.clause_type("audit_rights").risk_category
    assert b.clause_types == ("other",) and b.risk == "none"


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
    cfg = config(audit_rights=E.TypeRule(reviewer=0.3, tfidf=0.7, threshold=0.35, tfidf_platt=E.Platt(a=1.0, b=0.0),
                                         chosen="type", positives=34))
    raw = cfg.model_dump(mode="json")
    bad = edit(raw)
    path = tmp_path / "ensemble.json"
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(E.EnsembleError) as exc:
        E.read_config(path)
    assert message in str(exc.value) and "contract-review eval tune-ensemble" in str(exc.value)
    with pytest.raises(E.EnsembleError, match="no ensemble file"):
        E.read_config(tmp_path / "missing.json")


def test_a_file_tuned_with_another_tfidf_fit_is_refused():
    cfg = config()
    with pytest.raises(E.EnsembleError) as exc:
        E.check_components(cfg, "ens.json", fingerprint("reviewer"), LABELS, fingerprint("tfidf", sha="f" * 16),
                           fingerprint("unfair"))
    msg = str(exc.value)
    assert "tfidf: tuned with tfidf (sha 0000000000000000" in msg and "ffffffffffffffff" in msg and "re-tune" in msg
    # the same fits: accepted
    E.check_components(cfg, "ens.json", fingerprint("reviewer"), LABELS, fingerprint("tfidf"), fingerprint("unfair"))
    with pytest.raises(E.EnsembleError, match="unfair_tos model .* that was not loaded"):
        E.check_components(cfg, "ens.json", fingerprint("reviewer"), LABELS, fingerprint("tfidf"), None)


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped ensemble file")
def test_the_shipped_file_was_tuned_with_the_shipped_reviewer_and_train_split():
    import hashlib

    from contract_review.paths import DATASET_DIR
    from contract_review.records import find_split_file

    cfg = E.read_config(SHIPPED)
    assert cfg.reviewer.sha == E.reviewer_fingerprint(DEFAULT_ADAPTER_DIR).sha
    assert cfg.tfidf.sha == hashlib.sha256(find_split_file(DATASET_DIR, "train").read_bytes()).hexdigest()
    assert set(cfg.types) == set(LABELS.clause_type) and cfg.tuned["split"] == "validation"
