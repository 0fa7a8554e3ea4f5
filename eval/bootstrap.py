"""95% bootstrap intervals resampled by document, single-run and paired.

Clauses of one contract (or one Terms of Service) are not independent: they share a
drafter, a style and often near-copies of each other. Resampling clauses would make the
intervals far too narrow, so each resample draws whole documents with replacement and a
clause counts as many times as its document was drawn. A resample is then a weight vector
over records, and every metric is a weighted sum of per-record counts (`metrics.reduce`).

`paired_intervals` applies the same resamples to two runs over the same records, so the
interval of the difference reflects how much the two models disagree, not how much the
data vary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import CountTable, metric_values

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95


def document_weights(doc_ids: Sequence[str], resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) weights: how many times each record's document was drawn."""
    docs, index = np.unique(np.asarray(doc_ids, dtype=object), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(docs), size=(resamples, len(docs)))
    counts = np.zeros((resamples, len(docs)))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts[:, index]


def _interval(samples: np.ndarray, level: float = LEVEL) -> list[float] | None:
    finite = samples[np.isfinite(samples)]
    # a metric undefined in most resamples (e.g. a class in one document only) has no honest interval
    if len(finite) < 0.5 * len(samples) or not len(finite):
        return None
    lo, hi = np.percentile(finite, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def intervals(tables: dict[str, CountTable], doc_ids: Sequence[str], resamples: int = DEFAULT_RESAMPLES,
              seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile interval of every metric over document resamples."""
    if not len(doc_ids):
        return {}
    w = document_weights(doc_ids, resamples, seed)
    return {k: _interval(v) for k, v in metric_values(tables, w).items()}


def paired_intervals(tables_a: dict[str, CountTable], tables_b: dict[str, CountTable], doc_ids: Sequence[str],
                     resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, dict]:
    """Difference A - B of every metric, with its paired interval and the share of resamples in
    which A is better (a one-sided bootstrap 'probability of superiority')."""
    full_a, full_b = metric_values(tables_a), metric_values(tables_b)
    w = document_weights(doc_ids, resamples, seed)
    va, vb = metric_values(tables_a, w), metric_values(tables_b, w)
    out = {}
    for key in full_a:
        a, b = float(full_a[key][0]), float(full_b[key][0])
        if not (np.isfinite(a) and np.isfinite(b)):
            out[key] = {"a": _num(a), "b": _num(b), "diff": None, "ci": None, "p_a_better": None}
            continue
        diff = va[key] - vb[key]
        finite = diff[np.isfinite(diff)]
        out[key] = {
            "a": _num(a), "b": _num(b), "diff": round(a - b, 4), "ci": _interval(diff),
            "p_a_better": round(float((finite > 0).mean()), 4) if len(finite) else None,
        }
    return out


def _num(x: float) -> float | None:
    return round(x, 4) if np.isfinite(x) else None
