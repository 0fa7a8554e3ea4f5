"""`eval compare RUN_A RUN_B`: is A better than B, metric by metric, beyond the noise?

Both runs must have predicted the same records (paired by `id` from predictions.jsonl, with
the same gold labels). Each metric's difference A - B gets a 95% paired bootstrap
interval: the same document resamples are applied to both runs, so what varies is the
models' disagreement, not the sample. An interval that excludes 0 is a difference the
evaluation set can see.
"""

from __future__ import annotations

import json
from pathlib import Path

from contract_review.records import atomic_write
from contract_review.taxonomy import load_taxonomy

from .bootstrap import DEFAULT_RESAMPLES, paired_intervals
from .metrics import METRICS, RISK_KEYS, STABLE_KEYS, count_tables, decisions
from .runner import load_run


class CompareError(ValueError):
    """Two runs that cannot be paired."""


def compare_runs(run_a: str | Path, run_b: str | Path, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    items_a, preds_a, meta_a = load_run(run_a)
    items_b, preds_b, meta_b = load_run(run_b)
    by_id_b = {it.id: (it, p) for it, p in zip(items_b, preds_b)}
    ids_a = [it.id for it in items_a]
    missing = [i for i in ids_a if i not in by_id_b]
    extra = len(by_id_b) - (len(ids_a) - len(missing))
    if missing or extra:
        raise CompareError(
            f"{run_a} and {run_b} did not predict the same records ({len(missing)} only in A, {extra} only in B); "
            "evaluate both on the same data file (and --limit) to compare them")
    items_b, preds_b = zip(*(by_id_b[i] for i in ids_a))
    for a, b in zip(items_a, items_b):
        if a.gold() != b.gold():
            raise CompareError(f"record {a.id}: gold labels differ between the runs (different dataset versions?)")
    tax = load_taxonomy()
    ta = count_tables(decisions(items_a, preds_a, tax))
    tb = count_tables(decisions(items_a, list(preds_b), tax))
    diffs = paired_intervals(ta, tb, [it.doc_id for it in items_a], resamples, seed)
    # the risk metrics again on each group of records by who labelled their risk: on rule-labelled records a
    # model that applies the same rules is scored against its own function, so the graded (gold) group is apart
    groups = {}
    labellers = sorted({it.risk_labeller for it in items_a})
    for labeller in labellers if len(labellers) > 1 else ():
        idx = [i for i, it in enumerate(items_a) if it.risk_labeller == labeller]
        its = [items_a[i] for i in idx]
        d = paired_intervals(count_tables(decisions(its, [preds_a[i] for i in idx], tax)),
                             count_tables(decisions(its, [preds_b[i] for i in idx], tax)),
                             [it.doc_id for it in its], resamples, seed)
        groups[labeller] = {"records": len(idx), "metrics": {k: d[k] for k in RISK_KEYS}}
    return {
        "a": {"run": str(run_a), "model": meta_a.get("model", {})},
        "b": {"run": str(run_b), "model": meta_b.get("model", {})},
        "records": len(items_a),
        "documents": len({it.doc_id for it in items_a}),
        "bootstrap": {"resamples": resamples, "level": 0.95, "unit": "document", "paired": True, "seed": seed},
        "metrics": diffs,
        "by_risk_labeller": groups,
    }


def _row(label: str, m: dict) -> str:
    """One metric's line: A, B, A - B, its interval (starred when it excludes 0) and P(A > B)."""
    pct = lambda x: "   n/a" if x is None else f"{100 * x:7.1f}"  # noqa: E731
    ci = m["ci"]
    ci_s = f"[{100 * ci[0]:+6.1f}, {100 * ci[1]:+6.1f}]" if ci else "n/a"
    flag = " *" if ci and (ci[0] > 0 or ci[1] < 0) else ""
    p = "" if m["p_a_better"] is None else f"{m['p_a_better']:.2f}"
    return f"{label} {pct(m['a'])} {pct(m['b'])} {pct(m['diff'])}  {ci_s:>17}  {p}{flag}"


def format_comparison(result: dict) -> str:
    a, b = result["a"], result["b"]
    lines = [f"A = {a['run']} ({a['model'].get('name', '?')}), B = {b['run']} ({b['model'].get('name', '?')})",
             f"{result['records']:,} records, {result['documents']:,} documents; 95% paired bootstrap by document",
             "", f"{'metric':26} {'A':>7} {'B':>7} {'A-B':>7}  {'95% interval':>17}  P(A>B)"]
    lines += [_row(f"{key:26}", result["metrics"][key]) for key in (m.key for m in METRICS)]
    for labeller, g in result.get("by_risk_labeller", {}).items():
        lines += ["", f"risk labelled by {labeller} ({g['records']:,} records)"]
        lines += [_row(f"  {key:24}", m) for key, m in g["metrics"].items()]
    lines += ["", "* the interval excludes 0", f"stable keys: {', '.join(STABLE_KEYS)}"]
    return "\n".join(lines)


def write_comparison(result: dict, out: str | Path) -> None:
    atomic_write(out, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
