"""Metrics on hand-made predictions whose figures are worked out by hand, and the count table against
scikit-learn (the reference; the product computes every figure from the counts)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import precision_recall_curve as sk_precision_recall_curve
from eval_testing import invalid, item, pred

from contract_review.eval.bootstrap import document_weights, intervals, paired_intervals
from contract_review.eval.items import unfair_codes
from contract_review.eval.metrics import (INVALID, METRICS, UNSAID, Decisions, count_tables, decisions,
                                          error_counts, per_class, point_metrics, precision_recall_curve)
from contract_review.taxonomy import load_taxonomy


def test_risk_f1_precision_recall_match_hand_count():
    # gold risk clauses: 0-3; predicted: 0,1,2 (tp=3), 4 (fp=1); 3 missed (fn=1)
    items = [item(i, risk="high" if i < 4 else "none", types=("non_compete",) if i < 4 else ("other",))
             for i in range(10)]
    preds = [pred("high", ("non_compete",)) if i in (0, 1, 2) else pred("medium", ("renewal_term",)) if i == 4
             else pred() for i in range(10)]
    m = point_metrics(decisions(items, preds))
    assert m["risk.precision"] == pytest.approx(3 / 4)
    assert m["risk.recall"] == pytest.approx(3 / 4)
    assert m["risk.f1"] == pytest.approx(0.75)
    # low is not a risk clause: predicting low on a risk clause is a miss
    m2 = point_metrics(decisions(items[:2], [pred("low", ("non_compete",)), pred("high", ("non_compete",))]))
    assert m2["risk.recall"] == pytest.approx(0.5) and m2["risk.precision"] == pytest.approx(1.0)


def test_invalid_answers_are_counted_as_misses_never_dropped():
    items = [item(0, risk="high", types=("non_compete",)), item(1, risk="none"), item(2, risk="none")]
    preds = [invalid("invalid_json"), invalid("unknown_label"), pred()]
    d = decisions(items, preds)
    m = point_metrics(d)
    # the risk clause is a false negative, the invalid answer on a non-risk clause a false positive
    assert m["risk.recall"] == 0.0 and m["risk.precision"] == 0.0 and m["risk.f1"] == 0.0
    assert error_counts(preds) == {"invalid": 2, "invalid_rate": pytest.approx(0.6667),
                                   "by_kind": {"invalid_json": 1, "unknown_label": 1}}
    # clause types: the gold types of an invalid answer are missed
    assert d.type_pred[0].sum() == 0 and d.type_true[0].sum() == 1


def test_lexglue_unfair_macro_and_micro_include_the_none_column():
    # 4 ToS sentences. gold: {LTD}, {TER}, {}, {}. predicted: {LTD}, {}, {TER}, {}
    items = [item(0, "medium", ("cap_on_liability",), unfair={"LTD"}),
             item(1, "high", ("unilateral_termination",), unfair={"TER"}),
             item(2, unfair=set()), item(3, unfair=set())]
    preds = [pred("medium", ("cap_on_liability",)), pred(), pred("high", ("unilateral_termination",)),
             pred()]
    m = point_metrics(decisions(items, preds))
    # LTD: tp1 -> F1 1; TER: fp1 fn1 -> F1 0; none: gold rows 2,3 pred rows 1,3 -> tp1 fp1 fn1 -> 0.5
    assert m["unfair_tos.macro_f1"] == pytest.approx((1 + 0 + 0.5) / 3)
    # micro over all decisions: tp 2, fp 2, fn 2
    assert m["unfair_tos.micro_f1"] == pytest.approx(0.5)
    assert m["unfair_tos.macro_f1_8"] == pytest.approx(0.5)
    # a CUAD clause does not enter the ToS figures
    assert point_metrics(decisions([item(9, "high", ("non_compete",))], [pred()]))["unfair_tos.macro_f1"] is None


def test_unfair_category_needs_the_type_and_a_risk_level():
    items = [item(0, "medium", ("cap_on_liability",), unfair={"LTD"})]
    low = point_metrics(decisions(items, [pred("low", ("cap_on_liability",))]))
    assert low["unfair_tos.micro_f1"] == 0.0  # the type alone, tagged fair, is not "unfair"


def test_party_figures_use_verified_records_only():
    items = [item(0, party="first_party", verified=True), item(1, party="second_party", verified=True),
             item(2, party="both", verified=True), item(3, party="none", verified=False)]
    preds = [pred(party="first_party"), pred(party="first_party"), pred(party="both"), pred(party="both")]
    m = point_metrics(decisions(items, preds))
    assert m["party.accuracy"] == pytest.approx(2 / 3)
    # first_party P .5 R 1 -> 2/3; second_party 0; both 1
    assert m["party.macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert point_metrics(decisions(items[3:], preds[3:]))["party.accuracy"] is None


def test_clause_type_macro_over_types_that_occur():
    items = [item(0, "high", ("non_compete",)), item(1, "high", ("non_compete", "exclusivity")), item(2)]
    preds = [pred("high", ("non_compete",)), pred("high", ("non_compete",)), pred("high", ("exclusivity",))]
    m = point_metrics(decisions(items, preds))
    # non_compete F1 1; exclusivity fp1 fn1 -> 0; other: fn1 -> 0
    assert m["clause_type.macro_f1"] == pytest.approx(1 / 3)


def _sklearn_reference(d: Decisions) -> tuple[dict, dict]:
    """Every point estimate and per-class figure by scikit-learn on the label matrices: the definitions
    the count table must reproduce (macro averages over the classes that occur in gold or predictions)."""
    def multilabel(y_true, y_pred, average):
        cols = [j for j in range(y_true.shape[1]) if y_true[:, j].any() or y_pred[:, j].any()]
        if not len(y_true) or not cols:
            return None
        return float(f1_score(y_true, y_pred, labels=cols, average=average, zero_division=0))

    def classes(y_true, y_pred, names, labels=None):
        if not len(y_true):
            return {}
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
        predicted = (np.asarray(y_pred).sum(0) if labels is None else [sum(y == c for y in y_pred) for c in labels])
        return {c: {"precision": round(float(p[j]), 4), "recall": round(float(r[j]), 4), "f1": round(float(f[j]), 4),
                    "support": int(s[j]), "predicted": int(predicted[j])}
                for j, c in enumerate(names) if s[j] or predicted[j]}

    p, r, f, _ = precision_recall_fscore_support(d.risk_true, d.risk_pred, average="binary", zero_division=0)
    m = {"risk.f1": float(f), "risk.precision": float(p), "risk.recall": float(r),
         "unfair_tos.macro_f1": multilabel(d.unfair_true, d.unfair_pred, "macro"),
         "unfair_tos.micro_f1": multilabel(d.unfair_true, d.unfair_pred, "micro"),
         "unfair_tos.macro_f1_8": multilabel(d.unfair_true[:, :-1], d.unfair_pred[:, :-1], "macro"),
         "clause_type.macro_f1": multilabel(d.type_true, d.type_pred, "macro"),
         "clause_type.micro_f1": multilabel(d.type_true, d.type_pred, "micro"),
         "risk_category.macro_f1": multilabel(d.category_true, d.category_pred, "macro"),
         "risk_category.micro_f1": multilabel(d.category_true, d.category_pred, "micro"),
         "party.accuracy": None, "party.macro_f1": None}
    if len(d.party_rows):
        seen = [c for c in d.party_classes if c in set(d.party_true) | set(d.party_pred)]
        m["party.accuracy"] = float(accuracy_score(d.party_true, d.party_pred))
        m["party.macro_f1"] = float(f1_score(d.party_true, d.party_pred, labels=seen, average="macro", zero_division=0))
    # directional risk as scikit-learn's micro average over bearer labels: a risk clause is labelled with
    # its bearer, anything else "neg"; a prediction for the wrong bearer is a false positive of its label
    # and a false negative of the gold one
    bearer_labels = list(d.party_classes) + [INVALID, UNSAID]
    y_dir = [b if t else "neg" for t, b in zip(d.risk_true, d.risk_to_true)]
    p_dir = [b if r else "neg" for r, b in zip(d.risk_pred, d.risk_to_pred)]
    p, r, f, _ = precision_recall_fscore_support(y_dir, p_dir, labels=bearer_labels, average="micro", zero_division=0)
    m.update({"risk_dir.f1": float(f), "risk_dir.precision": float(p), "risk_dir.recall": float(r)})
    seen = [c for c in d.party_classes if c in set(d.risk_to_true) | set(d.risk_to_pred)]
    m["risk_to.accuracy"] = float(accuracy_score(d.risk_to_true, d.risk_to_pred))
    m["risk_to.macro_f1"] = float(f1_score(d.risk_to_true, d.risk_to_pred, labels=seen, average="macro",
                                           zero_division=0))
    m["severity.accuracy"] = float(accuracy_score(d.risk_level_true, d.risk_level_pred))
    within = [accuracy_score(np.array(d.risk_level_true)[rows], np.array(d.risk_level_pred)[rows])
              for j in range(len(d.type_classes)) if d.type_classes[j] != "other"
              for rows in [np.flatnonzero(d.type_true[:, j])] if len(rows)]
    m["severity.accuracy_within_type"] = float(np.mean(within)) if within else None
    levels = list(d.risk_level_classes)
    per = {"risk_level": classes(d.risk_level_true, d.risk_level_pred, levels, labels=levels),
           "risk_category": classes(d.category_true, d.category_pred, d.category_classes),
           "unfair_tos": classes(d.unfair_true, d.unfair_pred, d.unfair_classes),
           "clause_type": classes(d.type_true, d.type_pred, d.type_classes),
           "party": classes(d.party_true, d.party_pred, d.party_classes, labels=list(d.party_classes)),
           "risk_to": classes(d.risk_to_true, d.risk_to_pred, d.party_classes, labels=list(d.party_classes))}
    return m, per


def _random_run(seed: int, n: int, predict_risk: bool = True):
    rng = np.random.default_rng(seed)
    tax = load_taxonomy()
    types = ["other", "non_compete", "cap_on_liability", "termination_for_convenience", "governing_law"]
    items, preds = [], []
    for i in range(n):
        t, r = (str(rng.choice(types)),), str(rng.choice(tax.risk_levels))
        bearers = [b for b in tax.parties if b != "none"]
        items.append(item(i, r, t, doc=f"d{i % 17}", party=str(rng.choice(tax.parties)), verified=i % 4 == 0,
                          unfair=unfair_codes(t, r, tax) if i % 3 == 0 else None,
                          risk_to=str(rng.choice(bearers)) if r != "none" else "none"))
        level = str(rng.choice(tax.risk_levels)) if predict_risk else "none"
        # some answers name no bearer (an adapter without a bearer head)
        bearer = None if i % 11 == 0 else str(rng.choice(bearers)) if level != "none" else "none"
        preds.append(invalid() if i % 29 == 0 else
                     pred(level, (str(rng.choice(types)),), party=str(rng.choice(tax.parties)), risk_to=bearer))
    return items, preds


@pytest.mark.parametrize("seed, n, predict_risk", [(0, 300, True), (1, 40, True), (2, 25, False), (3, 2, False)])
def test_the_count_table_reproduces_scikit_learn(seed, n, predict_risk):
    """Point estimates and per-class figures from the counts equal scikit-learn's, also where the model
    predicts no risk clause at all (precision 0, not undefined) and on samples without ToS sentences
    or verified records (None)."""
    d = decisions(*_random_run(seed, n, predict_risk))
    want, want_classes = _sklearn_reference(d)
    got = point_metrics(d)
    assert set(got) == set(want) == {m.key for m in METRICS}
    for key, value in want.items():
        assert got[key] == (None if value is None else pytest.approx(value, abs=1e-9)), key
    assert per_class(count_tables(d)) == want_classes


def test_the_precision_recall_curve_and_average_precision_match_scikit_learn():
    rng = np.random.default_rng(4)
    y = rng.random(500) < 0.3
    s = np.round(rng.random(500) * 0.6 + 0.4 * y, 2)  # ties on purpose
    precision, recall, ap = precision_recall_curve(y, s)
    assert ap == pytest.approx(average_precision_score(y, s), abs=1e-12)
    p_ref, r_ref, _ = sk_precision_recall_curve(y, s)
    np.testing.assert_allclose(precision[::-1], p_ref[:-1])  # scikit-learn lists them by falling recall
    np.testing.assert_allclose(recall[::-1], r_ref[:-1])


def test_bootstrap_resamples_whole_documents_and_brackets_the_value():
    docs = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    w = document_weights(docs, resamples=200, seed=1)
    assert w.shape == (200, 10)
    assert (w[:, :5] == w[:, [0]]).all() and (w[:, 5:8] == w[:, [5]]).all()  # one weight per document
    assert np.allclose(w.reshape(200, -1)[:, [0, 5, 8]].sum(1), 3)  # 3 documents drawn each time
    items = [item(i, "high" if i % 2 else "none", ("non_compete",) if i % 2 else ("other",), doc=f"d{i % 12}")
             for i in range(120)]
    preds = [pred("high", ("non_compete",)) if (i % 2 and i % 5) or i % 7 == 0 else pred() for i in range(120)]
    d = decisions(items, preds)
    ci = intervals(count_tables(d), [it.doc_id for it in items], resamples=300)
    value = point_metrics(d)["risk.f1"]
    assert ci["risk.f1"][0] <= value <= ci["risk.f1"][1]
    assert ci["risk.f1"][1] - ci["risk.f1"][0] > 0.01


def test_paired_bootstrap_of_a_run_with_itself_is_exactly_zero():
    items = [item(i, "high" if i % 3 else "none", ("non_compete",), doc=f"d{i % 5}") for i in range(40)]
    preds = [pred("high", ("non_compete",)) if i % 2 else pred() for i in range(40)]
    t = count_tables(decisions(items, preds))
    diff = paired_intervals(t, t, [it.doc_id for it in items], resamples=100)
    assert diff["risk.f1"]["diff"] == 0 and diff["risk.f1"]["ci"] == [0.0, 0.0]
