"""The served model's mix against its parts (`contract-review eval ensemble-report`).

Reviewer alone, TF-IDF alone (and LexGLUE's SVM on CLAUDETTE) and the mix on every split and
source of the precomputed probabilities, each scored by `runner.score` (the code path of
`contract-review eval`, bootstrap intervals by document included), plus the mix's paired
difference from the reviewer (`eval compare`'s bootstrap: the same document resamples for
both). On validation a K-fold by-document cross-fit of the mix is scored too: the honest
estimate where no test split exists (CLAUDETTE).
"""

from __future__ import annotations

from contract_review.predictor import ClausePrediction
from contract_review.reviewer.ensemble import EnsembleConfig, check_components, decide
from contract_review.reviewer.heads import head_answers

from .bootstrap import paired_intervals
from .ensemble_tune import TuneSettings, TuningData, crossfit
from .metrics import SUMMARY_KEYS, count_tables, decisions, format_value
from .runner import RunResult, score


def ensemble_report(data: TuningData, cfg: EnsembleConfig | None, source: str = "", crossfit_folds: int = 5,
                    settings: TuneSettings | None = None, resamples: int = 1000) -> tuple[list[dict], list[dict]]:
    """(rows, paired differences): one row per split/source and model, each metric {"value", "ci"}."""
    tax, labels, prints = data.tax, data.labels, data.fingerprints
    if cfg is not None:
        check_components(cfg, source, prints["reviewer"], labels, prints["tfidf"], prints["unfair_tos"])
    rows, diffs = [], []
    for split, (items, scores) in data.splits.items():
        inputs = [it.clause_input() for it in items]
        runs: dict[str, list[ClausePrediction]] = {"reviewer": head_answers(scores.reviewer, data.meta, labels, tax,
                                                                            clauses=inputs),
                                                   "tfidf": data.tfidf.predict(inputs)}
        if data.unfair is not None:
            runs["tfidf-unfair-tos"] = data.unfair.predict(inputs)
        if cfg is not None:
            runs["ensemble"] = decide(cfg, labels, scores, tax, clauses=inputs)
        if split == "validation" and crossfit_folds:
            runs[f"ensemble, {crossfit_folds}-fold cross-fit"] = crossfit(scores, items, labels, prints, settings,
                                                                          crossfit_folds, tax=tax)
        for name, preds in runs.items():
            for source_name in sorted({it.source for it in items}):
                if name == "tfidf-unfair-tos" and source_name != "claudette":
                    continue
                idx = [i for i, it in enumerate(items) if it.source == source_name]
                sub = [items[i] for i in idx]
                run = RunResult(name, name, sub, [preds[i] for i in idx])
                m = score(run, {"split": split, "source": source_name}, resamples=resamples)
                where = f"{source_name}/{split}"
                rows.append({"split": where, "model": name, "records": len(idx), **{k: m[k] for k in SUMMARY_KEYS}})
                if name.startswith("ensemble"):
                    pair = paired_intervals(count_tables(decisions(sub, run.preds, tax)),
                                            count_tables(decisions(sub, [runs["reviewer"][i] for i in idx], tax)),
                                            [it.doc_id for it in sub], resamples)
                    diffs.append({"split": where, "model": f"{name} - reviewer", "records": len(idx),
                                  **{k: {"value": pair[k]["diff"], "ci": pair[k]["ci"]} for k in SUMMARY_KEYS}})
    return rows, diffs


def format_report(rows: list[dict]) -> str:
    lines = ["| split (records) | model | " + " | ".join(SUMMARY_KEYS) + " |", "|---" * (len(SUMMARY_KEYS) + 2) + "|"]
    for r in rows:
        cells = " | ".join(format_value(r[k], missing="-") for k in SUMMARY_KEYS)
        lines.append(f"| {r['split']} ({r['records']}) | {r['model']} | {cells} |")
    return "\n".join(lines)
