"""The figures of an evaluation, from gold items and predictions.

Point estimates come from scikit-learn on label matrices (`decisions`); the same
decisions are also kept as per-record confusion counts (`count_tables`), so a bootstrap
resample is a weighted sum of counts (`reduce` with a weight matrix) instead of thousands
of scikit-learn calls. A test checks that both give the same numbers.

Families of decisions:
- `risk`: one binary decision per clause, positive = a risk clause (medium or high).
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
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from contract_review.predictor import ClausePrediction
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .items import EvalItem, unfair_codes

INVALID = "<invalid>"
NO_UNFAIR = "none"  # LexGLUE's extra column: the sentence is unfair for no category

# the stable keys of metrics.json, in report order, with what each means
STABLE_KEYS = {
    "risk.f1": "F1 on risk clauses (risk medium or high)",
    "risk.precision": "precision on risk clauses",
    "risk.recall": "recall on risk clauses",
    "unfair_tos.macro_f1": "LexGLUE UNFAIR-ToS m-F1 (8 categories + none, ToS sentences)",
    "unfair_tos.micro_f1": "LexGLUE UNFAIR-ToS μ-F1",
    "clause_type.macro_f1": "clause-type macro-F1",
    "party.accuracy": "obligated-party accuracy (verified records)",
    "party.macro_f1": "obligated-party macro-F1 (verified records)",
}
EXTRA_KEYS = {
    "risk_category.macro_f1": "risk-category macro-F1",
    "risk_category.micro_f1": "risk-category micro-F1",
    "unfair_tos.macro_f1_8": "UNFAIR-ToS macro-F1 over the 8 categories only",
    "clause_type.micro_f1": "clause-type micro-F1",
}
# metric key -> (count table, statistic)
METRICS = {
    "risk.f1": ("risk", "f1"),
    "risk.precision": ("risk", "precision"),
    "risk.recall": ("risk", "recall"),
    "unfair_tos.macro_f1": ("unfair_tos", "macro_f1"),
    "unfair_tos.micro_f1": ("unfair_tos", "micro_f1"),
    "clause_type.macro_f1": ("clause_type", "macro_f1"),
    "party.accuracy": ("party", "accuracy"),
    "party.macro_f1": ("party", "macro_f1"),
    "risk_category.macro_f1": ("risk_category", "macro_f1"),
    "risk_category.micro_f1": ("risk_category", "micro_f1"),
    "unfair_tos.macro_f1_8": ("unfair_tos_8", "macro_f1"),
    "clause_type.micro_f1": ("clause_type", "micro_f1"),
}


def risk_score(pred: ClausePrediction, tax: Taxonomy) -> float | None:
    """The model's probability that the clause is a risk clause, when it gives one."""
    scores = pred.scores.get("risk") if pred.scores else None
    if scores:
        return float(sum(v for k, v in scores.items() if tax.is_risk_clause(k)))
    if pred.answer is None:
        return None
    positive = tax.is_risk_clause(pred.answer.risk)
    return float(pred.confidence if positive else 1.0 - pred.confidence) if pred.confidence else float(positive)


@dataclass
class Decisions:
    """Gold and predicted labels of every family, as scikit-learn takes them."""

    n: int
    valid: np.ndarray  # (n,) bool: the prediction has a usable answer
    risk_true: np.ndarray  # (n,) int 0/1
    risk_pred: np.ndarray  # (n,) int 0/1 (an invalid answer is the wrong decision)
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
    return Decisions(
        n=n, valid=valid, risk_true=risk_true, risk_pred=risk_pred,
        risk_level_true=[it.risk for it in items],
        risk_level_pred=[p.answer.risk if p.answer is not None else INVALID for p in preds],
        category_classes=cats, category_true=cat_true, category_pred=cat_pred,
        type_classes=types, type_true=type_true, type_pred=type_pred,
        unfair_classes=codes, unfair_rows=rows, unfair_true=u_true, unfair_pred=u_pred,
        party_classes=tax.parties, party_rows=prow,
        party_true=[items[i].party for i in prow],
        party_pred=[preds[i].answer.party if preds[i].answer is not None else INVALID for i in prow],
    )


# -- point estimates (scikit-learn) ---------------------------------------------------------

def _occurring(y_true: np.ndarray, y_pred: np.ndarray) -> list[int]:
    return [j for j in range(y_true.shape[1]) if y_true[:, j].any() or y_pred[:, j].any()]


def _multilabel(y_true, y_pred, average: str) -> float | None:
    cols = _occurring(y_true, y_pred)
    if not len(y_true) or not cols:
        return None
    return float(f1_score(y_true, y_pred, labels=cols, average=average, zero_division=0))


def point_metrics(d: Decisions) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if d.n:
        p, r, f, _ = precision_recall_fscore_support(d.risk_true, d.risk_pred, average="binary", pos_label=1,
                                                     zero_division=0)
        out.update({"risk.f1": float(f), "risk.precision": float(p), "risk.recall": float(r)})
    else:
        out.update(dict.fromkeys(("risk.f1", "risk.precision", "risk.recall")))
    out["unfair_tos.macro_f1"] = _multilabel(d.unfair_true, d.unfair_pred, "macro")
    out["unfair_tos.micro_f1"] = _multilabel(d.unfair_true, d.unfair_pred, "micro")
    out["unfair_tos.macro_f1_8"] = _multilabel(d.unfair_true[:, :-1], d.unfair_pred[:, :-1], "macro")
    out["clause_type.macro_f1"] = _multilabel(d.type_true, d.type_pred, "macro")
    out["clause_type.micro_f1"] = _multilabel(d.type_true, d.type_pred, "micro")
    out["risk_category.macro_f1"] = _multilabel(d.category_true, d.category_pred, "macro")
    out["risk_category.micro_f1"] = _multilabel(d.category_true, d.category_pred, "micro")
    if len(d.party_rows):
        labels = [c for c in d.party_classes if c in set(d.party_true) | set(d.party_pred)]
        out["party.accuracy"] = float(accuracy_score(d.party_true, d.party_pred))
        out["party.macro_f1"] = float(f1_score(d.party_true, d.party_pred, labels=labels, average="macro",
                                               zero_division=0))
    else:
        out["party.accuracy"] = out["party.macro_f1"] = None
    return out


def _per_class(y_true, y_pred, classes, labels=None) -> dict[str, dict]:
    if labels is None:  # label-indicator matrices
        if not len(y_true):
            return {}
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
        pred_n = np.asarray(y_pred).sum(0)
    else:
        if not len(y_true):
            return {}
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
        pred_n = [sum(1 for y in y_pred if y == c) for c in labels]
    return {c: {"precision": round(float(p[j]), 4), "recall": round(float(r[j]), 4), "f1": round(float(f[j]), 4),
                "support": int(s[j]), "predicted": int(pred_n[j])}
            for j, c in enumerate(classes) if s[j] or pred_n[j]}


def per_class(d: Decisions) -> dict[str, dict[str, dict]]:
    """Per-class precision, recall, F1, gold support and predicted count (classes that occur)."""
    levels = list(dict.fromkeys(d.risk_level_true))
    return {
        "risk_level": _per_class(d.risk_level_true, d.risk_level_pred, levels, labels=levels),
        "risk_category": _per_class(d.category_true, d.category_pred, d.category_classes),
        "unfair_tos": _per_class(d.unfair_true, d.unfair_pred, d.unfair_classes),
        "clause_type": _per_class(d.type_true, d.type_pred, d.type_classes),
        "party": _per_class(d.party_true, d.party_pred, d.party_classes, labels=list(d.party_classes)),
    }


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


# -- per-record counts, for the bootstrap ---------------------------------------------------

@dataclass
class CountTable:
    """Per-record confusion counts of one family: tp/fp/fn (n, K); `member` marks the records
    of the family's population (ToS sentences, verified records); `correct` (n,) for accuracy."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    member: np.ndarray
    correct: np.ndarray | None = None


def _counts_multilabel(n: int, rows: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> CountTable:
    k = y_true.shape[1]
    tp, fp, fn = (np.zeros((n, k)) for _ in range(3))
    tp[rows] = y_true & y_pred
    fp[rows] = (1 - y_true) & y_pred
    fn[rows] = y_true & (1 - y_pred)
    member = np.zeros(n, dtype=bool)
    member[rows] = True
    return CountTable(tp, fp, fn, member)


def count_tables(d: Decisions) -> dict[str, CountTable]:
    n = d.n
    all_rows = np.arange(n)
    risk = _counts_multilabel(n, all_rows, d.risk_true[:, None], d.risk_pred[:, None])
    tables = {
        "risk": risk,
        "risk_category": _counts_multilabel(n, all_rows, d.category_true, d.category_pred),
        "clause_type": _counts_multilabel(n, all_rows, d.type_true, d.type_pred),
        "unfair_tos": _counts_multilabel(n, d.unfair_rows, d.unfair_true, d.unfair_pred),
        "unfair_tos_8": _counts_multilabel(n, d.unfair_rows, d.unfair_true[:, :-1], d.unfair_pred[:, :-1]),
    }
    classes = list(d.party_classes)
    k = len(classes)
    pt = np.zeros((len(d.party_rows), k), dtype=int)
    pp = np.zeros((len(d.party_rows), k), dtype=int)  # an INVALID prediction has no column
    for r, (t, p) in enumerate(zip(d.party_true, d.party_pred)):
        pt[r, classes.index(t)] = 1
        if p in classes:
            pp[r, classes.index(p)] = 1
    party = _counts_multilabel(n, d.party_rows, pt, pp)
    party.correct = np.zeros(n)
    party.correct[d.party_rows] = [t == p for t, p in zip(d.party_true, d.party_pred)]
    tables["party"] = party
    return tables


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def reduce(table: CountTable, stat: str, weights: np.ndarray | None = None) -> np.ndarray:
    """A statistic of the weighted counts: weights (B, n) give B values (one per resample);
    None gives the plain value (shape (1,)). NaN where the statistic is undefined (nothing to
    score in that sample)."""
    w = np.ones((1, table.tp.shape[0])) if weights is None else weights
    tp, fp, fn = w @ table.tp, w @ table.fp, w @ table.fn  # (B, K)
    population = w @ table.member.astype(float)
    if stat == "accuracy":
        return np.where(population > 0, _div(w @ table.correct, population), np.nan)
    if stat in ("f1", "precision", "recall", "micro_f1"):
        tp, fp, fn = tp.sum(1), fp.sum(1), fn.sum(1)
        # a resample with nothing to score (no gold and no predicted positive) leaves the figure
        # undefined: NaN, skipped by the interval, rather than scikit-learn's 0 for a point estimate
        denom = {"precision": tp + fp, "recall": tp + fn}.get(stat, 2 * tp + fp + fn)
        num = 2 * tp if stat in ("f1", "micro_f1") else tp
        return np.where((population > 0) & (denom > 0), _div(num, denom), np.nan)
    if stat == "macro_f1":
        seen = (tp + fp + fn) > 0
        f1 = _div(2 * tp, 2 * tp + fp + fn)
        with np.errstate(invalid="ignore"):
            return np.where(seen.any(1), (f1 * seen).sum(1) / np.maximum(seen.sum(1), 1), np.nan)
    raise ValueError(f"unknown statistic {stat!r}")


def metric_values(tables: dict[str, CountTable], weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    return {key: reduce(tables[t], stat, weights) for key, (t, stat) in METRICS.items()}
