"""The figures of an evaluation, from gold items and predictions.

One table of metrics (`METRICS`: key, count table, statistic, what it means) is the source of
every figure: gold and predicted labels (`decisions`) become per-record confusion counts
(`count_tables`), and each metric is a statistic of its table's counts (`reduce`): summed
once for the point estimate (`point_metrics`), weighted by document resamples for the
bootstrap intervals (`bootstrap.py`). Per-class figures and the precision-recall curve come
from the same counts. A test checks every figure against scikit-learn's.

Families of decisions:
- `risk`: one binary decision per clause, positive = a risk clause (severity medium or high),
  whoever bears it.
- `risk_dir` (directional risk): the same decision, where a hit also needs the right bearer: a
  true positive is a risk clause predicted medium/high FOR the gold `risk_to`; a positive for the
  wrong party is both a false positive and a false negative (as a mislabelled span in NER).
- `risk_to`: who bears the risk, single label over first_party, second_party, both, none, on
  every clause (an answer that leaves it unsaid is wrong).
- `severity`: the four levels, single label; `severity.accuracy_within_type` is the accuracy of
  the severity on the clauses of each gold clause type (not `other`), averaged over the types:
  how well the severity moves away from the type's default, which the type-oracle baseline
  (each type's default) cannot.
- `risk_category`: per taxonomy risk category (not `none`), "a risk clause of this
  category"; multi-label with one label per clause.
- `unfair_tos`: LexGLUE UNFAIR-ToS on ToS sentences only. Per sentence, multi-label over
  the 8 CLAUDETTE codes plus LexGLUE's extra column "no unfair category" (LexGLUE's
  `add_zero_class`; its micro-F1 of ~95 comes from that column); macro over the 9 columns,
  micro over all decisions. A predicted code: the answer lists the code's clause type and
  calls the clause a risk. `unfair_tos.macro_f1_8` is the macro over the 8 codes alone.
- `clause_type`: multi-label over the taxonomy's clause types.
- `party`: obligated party, single label, on `verified: true` items only (the rest are
  rule pre-labels, not gold).

Macro averages run over the classes that occur (in the gold or the predictions) in the
sample scored, as scikit-learn does for labels it sees; with every class present (as in
LexGLUE's validation and test sets) this is exactly LexGLUE's definition.

An answer that could not be used (`ClausePrediction.error`) is never dropped or replaced
by a guessed label: it misses every gold label (a false negative for each), counts as
wrong for accuracy, and on the binary risk decision it is the wrong decision (a false
negative on a risk clause, a false positive otherwise). Errors are counted by kind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract_review.predictor import ClausePrediction
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .items import EvalItem, unfair_codes

INVALID = "<invalid>"
UNSAID = "<unsaid>"  # an answer that names no bearer (a model without a bearer head)
NO_UNFAIR = "none"  # LexGLUE's extra column: the sentence is unfair for no category


@dataclass(frozen=True)
class Metric:
    key: str  # its key in metrics.json
    table: str  # the count table it is a statistic of (`count_tables`)
    stat: str  # f1 | precision | recall | micro_f1 | macro_f1 | accuracy (`reduce`)
    description: str
    stable: bool = True  # a stable key of metrics.json: the headline of reports, what `eval compare` is read for
    summary: bool = False  # a column of the one-line-per-run tables (the ensemble report)


# every metric, in report order
METRICS: tuple[Metric, ...] = (
    Metric("risk.f1", "risk", "f1", "F1 on risk clauses (risk medium or high)", summary=True),
    Metric("risk.precision", "risk", "precision", "precision on risk clauses", summary=True),
    Metric("risk.recall", "risk", "recall", "recall on risk clauses", summary=True),
    Metric("risk_dir.f1", "risk_dir", "f1", "directional risk F1 (the right bearer AND medium/high)", summary=True),
    Metric("risk_to.accuracy", "risk_to", "accuracy", "who bears the risk (risk_to) accuracy"),
    Metric("severity.accuracy_within_type", "severity_in_type", "macro_recall",
           "severity accuracy within clause type (macro over gold types)", summary=True),
    Metric("unfair_tos.macro_f1", "unfair_tos", "macro_f1",
           "LexGLUE UNFAIR-ToS m-F1 (8 categories + none, ToS sentences)"),
    Metric("unfair_tos.micro_f1", "unfair_tos", "micro_f1", "LexGLUE UNFAIR-ToS μ-F1"),
    Metric("clause_type.macro_f1", "clause_type", "macro_f1", "clause-type macro-F1", summary=True),
    Metric("party.accuracy", "party", "accuracy", "obligated-party accuracy (verified records)"),
    Metric("party.macro_f1", "party", "macro_f1", "obligated-party macro-F1 (verified records)"),
    Metric("risk_category.macro_f1", "risk_category", "macro_f1", "risk-category macro-F1", stable=False),
    Metric("risk_category.micro_f1", "risk_category", "micro_f1", "risk-category micro-F1", stable=False),
    Metric("unfair_tos.macro_f1_8", "unfair_tos_8", "macro_f1", "UNFAIR-ToS macro-F1 over the 8 categories only",
           stable=False, summary=True),
    Metric("clause_type.micro_f1", "clause_type", "micro_f1", "clause-type micro-F1", stable=False),
    Metric("risk_dir.precision", "risk_dir", "precision", "directional risk precision", stable=False),
    Metric("risk_dir.recall", "risk_dir", "recall", "directional risk recall", stable=False),
    Metric("risk_to.macro_f1", "risk_to", "macro_f1", "risk_to macro-F1", stable=False),
    Metric("severity.accuracy", "risk_level", "accuracy", "severity accuracy (4 levels)", stable=False),
)
# the metrics about risk, reported separately on gold (graded) and rule-labelled records
RISK_KEYS = tuple(m.key for m in METRICS if m.key.split(".")[0] in ("risk", "risk_dir", "risk_to", "severity"))
STABLE_KEYS = {m.key: m.description for m in METRICS if m.stable}
SUMMARY_KEYS = tuple(m.key for m in METRICS if m.summary)


def format_value(m: dict | None, missing: str = "n/a") -> str:
    """A metric of metrics.json, {"value", "ci"}, in percent: `64.3 [57.9, 70.6]`."""
    if not m or m.get("value") is None:
        return missing
    ci = m.get("ci")
    return f"{100 * m['value']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def risk_score(pred: ClausePrediction, tax: Taxonomy) -> float | None:
    """The model's probability that the clause is a risk clause, when it gives one."""
    scores = (pred.scores.get("severity") or pred.scores.get("risk")) if pred.scores else None
    if scores:
        return float(sum(v for k, v in scores.items() if tax.is_risk_clause(k)))
    if pred.answer is None:
        return None
    positive = tax.is_risk_clause(pred.answer.risk)
    return float(pred.confidence if positive else 1.0 - pred.confidence) if pred.confidence else float(positive)


@dataclass
class Decisions:
    """Gold and predicted labels of every family: label vectors and 0/1 label matrices."""

    n: int
    valid: np.ndarray  # (n,) bool: the prediction has a usable answer
    risk_true: np.ndarray  # (n,) int 0/1
    risk_pred: np.ndarray  # (n,) int 0/1 (an invalid answer is the wrong decision)
    risk_level_classes: tuple[str, ...]
    risk_level_true: list[str]
    risk_level_pred: list[str]  # INVALID for unusable answers
    category_classes: tuple[str, ...]
    category_true: np.ndarray  # (n, C)
    category_pred: np.ndarray
    type_classes: tuple[str, ...]
    type_true: np.ndarray  # (n, T)
    type_pred: np.ndarray
    unfair_classes: tuple[str, ...]  # 8 codes + NO_UNFAIR
    unfair_rows: np.ndarray  # indices of ToS items
    unfair_true: np.ndarray  # (m, 9)
    unfair_pred: np.ndarray
    party_classes: tuple[str, ...]
    party_rows: np.ndarray  # indices of verified items
    party_true: list[str]
    party_pred: list[str]
    risk_to_true: list[str]
    risk_to_pred: list[str]  # INVALID for unusable answers, UNSAID for answers that name no bearer
    risk_dir_true: np.ndarray  # (n,) 0/1: a risk clause (its bearer in risk_to_true)
    risk_dir_hit: np.ndarray  # (n,) 0/1: predicted a risk clause for the gold bearer
    severity_type_true: np.ndarray  # (n, T) gold types (not other)
    severity_right: np.ndarray  # (n,) 0/1: the severity is the gold one


def decisions(items: Sequence[EvalItem], preds: Sequence[ClausePrediction], tax: Taxonomy | None = None) -> Decisions:
    if len(items) != len(preds):
        raise ValueError(f"{len(preds)} predictions for {len(items)} items")
    tax = tax or load_taxonomy()
    n = len(items)
    valid = np.array([p.answer is not None for p in preds], dtype=bool)
    risk_true = np.array([tax.is_risk_clause(it.risk) for it in items], dtype=int)
    risk_pred = np.array(
        [tax.is_risk_clause(p.answer.risk) if p.answer is not None else 1 - t for p, t in zip(preds, risk_true)],
        dtype=int,
    )
    cats = tuple(c for c in tax.risk_categories if c != "none")
    cat_true = np.zeros((n, len(cats)), dtype=int)
    cat_pred = np.zeros((n, len(cats)), dtype=int)
    types = tax.clause_type_ids
    type_true = np.zeros((n, len(types)), dtype=int)
    type_pred = np.zeros((n, len(types)), dtype=int)
    t_index = {t: j for j, t in enumerate(types)}
    c_index = {c: j for j, c in enumerate(cats)}
    for i, (it, p) in enumerate(zip(items, preds)):
        for t in it.clause_types:
            type_true[i, t_index[t]] = 1
        if tax.is_risk_clause(it.risk) and it.risk_category in c_index:
            cat_true[i, c_index[it.risk_category]] = 1
        if p.answer is not None:
            for t in p.answer.clause_types:
                type_pred[i, t_index[t]] = 1
            if tax.is_risk_clause(p.answer.risk) and p.answer.risk_category in c_index:
                cat_pred[i, c_index[p.answer.risk_category]] = 1

    codes = tax.claudette_codes + (NO_UNFAIR,)
    rows = np.array([i for i, it in enumerate(items) if it.unfair is not None], dtype=int)
    u_true = np.zeros((len(rows), len(codes)), dtype=int)
    u_pred = np.zeros((len(rows), len(codes)), dtype=int)
    for r, i in enumerate(rows):
        gold = items[i].unfair
        for j, code in enumerate(codes[:-1]):
            u_true[r, j] = code in gold
        u_true[r, -1] = not gold
        p = preds[i]
        if p.answer is not None:  # an unusable answer predicts no column at all, not even "none"
            got = unfair_codes(p.answer.clause_types, p.answer.risk, tax)
            for j, code in enumerate(codes[:-1]):
                u_pred[r, j] = code in got
            u_pred[r, -1] = not got

    prow = np.array([i for i, it in enumerate(items) if it.verified], dtype=int)
    bearer_true = [it.risk_to or UNSAID for it in items]
    bearer_pred = [INVALID if p.answer is None else (p.answer.risk_to or UNSAID) for p in preds]
    hit = np.array([bool(rt and rp) and t == b for rt, rp, t, b in zip(risk_true, risk_pred, bearer_true, bearer_pred)],
                   dtype=int)
    hit[~valid] = 0
    sev_types = type_true.copy()
    sev_types[:, t_index["other"]] = 0
    sev_right = np.array([p.answer is not None and p.answer.risk == it.risk for it, p in zip(items, preds)], dtype=int)
    return Decisions(
        n=n, valid=valid, risk_true=risk_true, risk_pred=risk_pred,
        risk_level_classes=tax.risk_levels, risk_level_true=[it.risk for it in items],
        risk_level_pred=[p.answer.risk if p.answer is not None else INVALID for p in preds],
        category_classes=cats, category_true=cat_true, category_pred=cat_pred,
        type_classes=types, type_true=type_true, type_pred=type_pred,
        unfair_classes=codes, unfair_rows=rows, unfair_true=u_true, unfair_pred=u_pred,
        party_classes=tax.parties, party_rows=prow,
        party_true=[items[i].party for i in prow],
        party_pred=[preds[i].answer.party if preds[i].answer is not None else INVALID for i in prow],
        risk_to_true=bearer_true, risk_to_pred=bearer_pred, risk_dir_true=risk_true, risk_dir_hit=hit,
        severity_type_true=sev_types, severity_right=sev_right,
    )


def error_counts(preds: Sequence[ClausePrediction]) -> dict:
    kinds = Counter(p.error or "unusable" for p in preds if p.answer is None)
    n = len(preds)
    bad = sum(kinds.values())
    return {"invalid": bad, "invalid_rate": round(bad / n, 4) if n else None, "by_kind": dict(sorted(kinds.items()))}


def confusion(true: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Rows: gold classes; columns: predicted classes plus INVALID last."""
    cols = list(classes) + [INVALID]
    m = np.zeros((len(classes), len(cols)), dtype=int)
    for t, p in zip(true, pred):
        if t in classes:
            m[list(classes).index(t), cols.index(p) if p in cols else -1] += 1
    return m


# -- per-record counts: every figure is a statistic of these ------------------------------------

@dataclass
class CountTable:
    """Per-record confusion counts of one family: tp/fp/fn (n, K) over its `classes`; `member` marks
    the records of the family's population (ToS sentences, verified records); `correct` (n,) for
    accuracy."""

    classes: tuple[str, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    member: np.ndarray
    correct: np.ndarray | None = None


def _counts(classes, n: int, rows: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> CountTable:
    k = y_true.shape[1]
    tp, fp, fn = (np.zeros((n, k)) for _ in range(3))
    tp[rows] = y_true & y_pred
    fp[rows] = (1 - y_true) & y_pred
    fn[rows] = y_true & (1 - y_pred)
    member = np.zeros(n, dtype=bool)
    member[rows] = True
    return CountTable(tuple(classes), tp, fp, fn, member)


def _one_hot(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """(len(labels), len(classes)) 0/1; a label outside `classes` (INVALID) has no column."""
    index = {c: j for j, c in enumerate(classes)}
    m = np.zeros((len(labels), len(classes)), dtype=int)
    for r, label in enumerate(labels):
        if label in index:
            m[r, index[label]] = 1
    return m


def _single_label(classes, n: int, rows: np.ndarray, true: Sequence[str], pred: Sequence[str]) -> CountTable:
    table = _counts(classes, n, rows, _one_hot(true, classes), _one_hot(pred, classes))
    table.correct = np.zeros(n)
    table.correct[rows] = [t == p for t, p in zip(true, pred)]
    return table


def _directional(n: int, gold: np.ndarray, pred: np.ndarray, hit: np.ndarray) -> CountTable:
    """A hit needs the decision and the bearer: a positive for the wrong party is a miss and a false alarm."""
    tp = hit[:, None].astype(float)
    fp = (pred.astype(bool) & ~hit.astype(bool))[:, None].astype(float)
    fn = (gold.astype(bool) & ~hit.astype(bool))[:, None].astype(float)
    return CountTable(("risk_dir",), tp, fp, fn, np.ones(n, dtype=bool))


def _within_type(d: Decisions) -> CountTable:
    """Per gold clause type (not other): a record of the type whose severity is right counts as a hit,
    one whose severity is wrong as a miss; recall per type is the accuracy within it."""
    right = d.severity_right.astype(bool)[:, None]
    member = d.severity_type_true.astype(bool)
    tp = (member & right).astype(float)
    fn = (member & ~right).astype(float)
    return CountTable(d.type_classes, tp, np.zeros_like(tp), fn, member.any(1))


def count_tables(d: Decisions) -> dict[str, CountTable]:
    n, every = d.n, np.arange(d.n)
    return {
        "risk": _counts(("risk",), n, every, d.risk_true[:, None], d.risk_pred[:, None]),
        "risk_dir": _directional(n, d.risk_dir_true, d.risk_pred, d.risk_dir_hit),
        "risk_to": _single_label(d.party_classes, n, every, d.risk_to_true, d.risk_to_pred),
        "severity_in_type": _within_type(d),
        "risk_level": _single_label(d.risk_level_classes, n, every, d.risk_level_true, d.risk_level_pred),
        "risk_category": _counts(d.category_classes, n, every, d.category_true, d.category_pred),
        "clause_type": _counts(d.type_classes, n, every, d.type_true, d.type_pred),
        "unfair_tos": _counts(d.unfair_classes, n, d.unfair_rows, d.unfair_true, d.unfair_pred),
        "unfair_tos_8": _counts(d.unfair_classes[:-1], n, d.unfair_rows, d.unfair_true[:, :-1],
                                d.unfair_pred[:, :-1]),
        "party": _single_label(d.party_classes, n, d.party_rows, d.party_true, d.party_pred),
    }


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def reduce(table: CountTable, stat: str, weights: np.ndarray | None = None) -> np.ndarray:
    """A statistic of the weighted counts: weights (B, n) give B values (one per resample);
    None gives the plain value (shape (1,)). NaN where the statistic is undefined (nothing to
    score in that sample). Macro averages run over the classes that occur (gold or predicted)."""
    w = np.ones((1, table.tp.shape[0])) if weights is None else weights
    tp, fp, fn = w @ table.tp, w @ table.fp, w @ table.fn  # (B, K)
    population = w @ table.member.astype(float)
    if stat == "accuracy":
        return np.where(population > 0, _div(w @ table.correct, population), np.nan)
    if stat in ("f1", "precision", "recall", "micro_f1"):
        tp, fp, fn = tp.sum(1), fp.sum(1), fn.sum(1)
        denom = {"precision": tp + fp, "recall": tp + fn}.get(stat, 2 * tp + fp + fn)
        num = 2 * tp if stat in ("f1", "micro_f1") else tp
        return np.where((population > 0) & (denom > 0), _div(num, denom), np.nan)
    if stat == "macro_recall":  # mean over the classes with gold support of tp / (tp + fn)
        support = (tp + fn) > 0
        recall = _div(tp, tp + fn)
        with np.errstate(invalid="ignore"):
            return np.where(support.any(1), (recall * support).sum(1) / np.maximum(support.sum(1), 1), np.nan)
    if stat == "macro_f1":
        seen = (tp + fp + fn) > 0
        f1 = _div(2 * tp, 2 * tp + fp + fn)
        with np.errstate(invalid="ignore"):
            return np.where(seen.any(1), (f1 * seen).sum(1) / np.maximum(seen.sum(1), 1), np.nan)
    raise ValueError(f"unknown statistic {stat!r}")


def metric_values(tables: dict[str, CountTable], weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric of the table, per resample (weights (B, n)) or plain (None: shape (1,))."""
    return {m.key: reduce(tables[m.table], m.stat, weights) for m in METRICS}


# the statistics of one binary decision, which a point estimate calls 0 (not undefined) where nothing
# was predicted or there was nothing to find, as metrics.json always has (scikit-learn's zero_division=0);
# a resample with nothing to score stays NaN and is skipped by the interval
_ZERO_WHEN_EMPTY = ("f1", "precision", "recall")


def point_values(tables: dict[str, CountTable]) -> dict[str, float | None]:
    """Every metric's point estimate; None where the sample has nothing it could be computed on."""
    out: dict[str, float | None] = {}
    for m, v in zip(METRICS, metric_values(tables).values()):
        value = float(v[0])
        if np.isnan(value) and m.stat in _ZERO_WHEN_EMPTY and tables[m.table].member.any():
            value = 0.0
        out[m.key] = None if np.isnan(value) else value
    return out


def point_metrics(d: Decisions) -> dict[str, float | None]:
    return point_values(count_tables(d))


def _class_figures(table: CountTable) -> dict[str, dict]:
    tp, fp, fn = table.tp.sum(0), table.fp.sum(0), table.fn.sum(0)
    out = {}
    for j, c in enumerate(table.classes):
        support, predicted = int(tp[j] + fn[j]), int(tp[j] + fp[j])
        if support or predicted:
            p, r = _div(tp[j], tp[j] + fp[j]), _div(tp[j], tp[j] + fn[j])
            out[c] = {"precision": round(float(p), 4), "recall": round(float(r), 4),
                      "f1": round(float(_div(2 * tp[j], 2 * tp[j] + fp[j] + fn[j])), 4),
                      "support": support, "predicted": predicted}
    return out


def per_class(tables: dict[str, CountTable]) -> dict[str, dict[str, dict]]:
    """Per-class precision, recall, F1, gold support and predicted count (classes that occur)."""
    return {group: _class_figures(tables[group])
            for group in ("risk_level", "risk_category", "unfair_tos", "clause_type", "party", "risk_to")}


def precision_recall_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(precision, recall, average precision) of the decision `score >= t` at every distinct score t,
    highest first; average precision = sum over thresholds of (recall step) x precision."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], y[order].astype(float)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each distinct score
    tp = np.cumsum(y)[last]
    precision, recall = tp / (last + 1), tp / max(y.sum(), 1)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return precision, recall, ap
