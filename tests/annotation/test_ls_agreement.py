import pytest
from sklearn.metrics import cohen_kappa_score

from contract_review.annotation.agreement import agreement_report, cohen_kappa, format_report, krippendorff_alpha


def test_kappa_matches_scikit_learn():
    a = ["none", "both", "first_party", "none", "second_party", "none", "both", "first_party"]
    b = ["none", "both", "second_party", "none", "second_party", "both", "both", "first_party"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_alpha_matches_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders, 12 units, nominal 0.743
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[c[i] for c in coders] for i in range(12)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_report_per_field_with_undefined_values_marked():
    same = {"clause_types": ["other"], "party": "none", "risk": "none", "risk_category": "none"}
    tasks = [
        [same, dict(same, party="both")],
        [dict(same, party="first_party", risk="high"), dict(same, party="first_party", risk="medium")],
        [dict(same, party="second_party"), dict(same, party="second_party")],
        [same],  # one annotator: not an overlap task
    ]
    rows = {r.field: r for r in agreement_report(tasks)}
    assert rows["party"].items == 3 and rows["party"].percent_agreement == pytest.approx(2 / 3)
    assert rows["risk_clause"].percent_agreement == 1.0  # high and medium are both risk clauses
    assert rows["clause_types"].kappa is None  # one category everywhere: kappa is 0/0
    assert "n/a" in format_report(list(rows.values()))
