"""One evaluation: predict every item with each model, score, and write a run folder atomically.

A run folder (`--out DIR`) holds, for the evaluated model:

    metrics.json        stable keys (risk.f1, ..., party.macro_f1), each {"value", "ci"}, plus
                        counts, invalid-output counts, timing, per-class figures and, under
                        "baselines", the same for every baseline
    predictions.jsonl   one line per item: gold labels, the answer (or the error and raw
                        text), risk score; what `eval compare` pairs runs on
    report.md, report.html, figures/*.png
    baselines/<name>/   metrics.json + predictions.jsonl of each baseline (runs of their own)

Everything is written into a temporary folder beside DIR and renamed at the end, so an
interrupted or failed evaluation leaves no partial metrics.json behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract_review.predictor import ClausePrediction, Predictor
from contract_review.prompt import Answer
from contract_review.taxonomy import load_taxonomy

from .bootstrap import DEFAULT_RESAMPLES, LEVEL, intervals
from .items import EvalItem
from .metrics import RISK_KEYS, count_tables, decisions, error_counts, per_class, point_values, risk_score
from .oracle import oracle_runs
from .report import write_report


@dataclass
class RunResult:
    name: str
    model_version: str
    items: list[EvalItem]
    preds: list[ClausePrediction]
    load_seconds: float = 0.0
    predict_seconds: float = 0.0
    precision: str | None = None  # a model's compute precision (e.g. "fp32", "bf16 autocast"); None for TF-IDF
    metrics: dict = field(default_factory=dict)  # what metrics.json holds


def predict_all(predictor: Predictor, items: Sequence[EvalItem], progress: bool = True,
                load_seconds: float = 0.0) -> RunResult:
    t0 = time.perf_counter()
    preds = predictor.predict([it.clause_input() for it in items], progress=progress)
    seconds = time.perf_counter() - t0
    if len(preds) != len(items):
        raise RuntimeError(f"{predictor.name} returned {len(preds)} predictions for {len(items)} clauses")
    return RunResult(predictor.name, predictor.model_version, list(items), list(preds), load_seconds, seconds,
                     getattr(predictor, "precision", None))


def score(run: RunResult, data: dict, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """metrics.json of a run: every metric with its by-document bootstrap interval."""
    tax = load_taxonomy()
    d = decisions(run.items, run.preds, tax)
    tables = count_tables(d)
    values = point_values(tables)
    cis = intervals(tables, [it.doc_id for it in run.items], resamples, seed) if resamples else {}
    out: dict = {key: {"value": _r(value), "ci": cis.get(key) if value is not None else None}
                 for key, value in values.items()}
    n = len(run.items)
    out["model"] = {"name": run.name, "model_version": run.model_version}
    out["data"] = {
        **data,
        "records": n,
        "documents": len({it.doc_id for it in run.items}),
        "risk_clauses": int(d.risk_true.sum()),
        "tos_sentences": int(len(d.unfair_rows)),
        "verified_records": int(len(d.party_rows)),
    }
    out["errors"] = error_counts(run.preds)
    out["timing"] = {
        "load_seconds": round(run.load_seconds, 2),
        "predict_seconds": round(run.predict_seconds, 2),
        "clauses_per_second": round(n / run.predict_seconds, 2) if run.predict_seconds > 0 else None,
        "seconds_per_1000_clauses": round(1000 * run.predict_seconds / n, 1) if n else None,
        "threads": _threads(),
        "precision": run.precision,
    }
    out["bootstrap"] = {"resamples": resamples, "level": LEVEL, "unit": "document", "seed": seed}
    out["by_risk_labeller"] = by_risk_labeller(run, resamples, seed, tax)
    out["per_class"] = per_class(tables)
    run.metrics = out
    return out


# who labelled the gold risk of an item, and what that makes its label
RISK_LABELLERS = {"graded": "gold: two annotators, adjudicated (the graded set)",
                  "claudette+rules": "severity from the CLAUDETTE experts' fairness level, bearer by rule",
                  "rules": "the rule pre-labeller (type defaults moved by the written criteria)"}


def by_risk_labeller(run: RunResult, resamples: int, seed: int, tax) -> dict:
    """The risk metrics on each group of items by who labelled their risk: gold (graded) apart from
    rule labels, so a figure never mixes a model's agreement with the rules with its agreement with
    annotators."""
    out = {}
    for labeller in sorted({it.risk_labeller for it in run.items}):
        idx = [i for i, it in enumerate(run.items) if it.risk_labeller == labeller]
        sub_items, sub_preds = [run.items[i] for i in idx], [run.preds[i] for i in idx]
        tables = count_tables(decisions(sub_items, sub_preds, tax))
        values = point_values(tables)
        cis = intervals(tables, [it.doc_id for it in sub_items], resamples, seed) if resamples else {}
        out[labeller] = {"records": len(idx), "gold": labeller == "graded",
                         "labels": RISK_LABELLERS.get(labeller, labeller),
                         **{k: {"value": _r(values[k]), "ci": cis.get(k) if values[k] is not None else None}
                            for k in RISK_KEYS}}
    return out


def _threads() -> int:
    """The threads the models ran on: torch's, where a model loaded it (TF-IDF alone never does)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else os.cpu_count() or 1


def _r(x):
    return None if x is None else round(float(x), 4)


def prediction_rows(run: RunResult) -> list[dict]:
    tax = load_taxonomy()
    rows = []
    for it, p in zip(run.items, run.preds):
        row = {"id": it.id, "doc_id": it.doc_id, "source": it.source, "verified": it.verified,
               "party_names": it.party_names, "party_aliases": it.party_aliases, "text": it.text, "gold": it.gold(),
               "pred": json.loads(p.answer.to_json()) if p.answer is not None else None,
               "confidence": p.confidence, "risk_score": _r(risk_score(p, tax)), "model": run.model_version}
        if p.error:
            row["error"] = p.error
        if p.raw is not None:
            row["raw"] = p.raw
        if p.scores:
            row["scores"] = p.scores
        rows.append(row)
    return rows


def write_run(folder: Path, run: RunResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for row in prediction_rows(run):
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    (folder / "metrics.json").write_text(json.dumps(run.metrics, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")


class OutputDir:
    """A temporary folder beside `final`, renamed to `final` by `commit()`; removed on failure."""

    def __init__(self, final: str | Path, overwrite: bool = False):
        self.final = Path(final)
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())) and not overwrite:
            raise FileExistsError(f"{self.final}: already exists; choose another --out or pass --overwrite")
        self.overwrite = overwrite
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=self.final.parent, prefix=f".{self.final.name}.tmp-"))

    def commit(self) -> Path:
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            self.final.rename(old)
        self.path.rename(self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "OutputDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()


def evaluate(items: Sequence[EvalItem], predictors: Sequence[tuple[Predictor, float]], out: str | Path, data: dict,
             resamples: int = DEFAULT_RESAMPLES, overwrite: bool = False, progress: bool = True,
             make_report: bool = True) -> dict:
    """Evaluate the first predictor (the model) and the others (baselines) on `items`; write the
    run folder `out` atomically; return the model's metrics.json content."""
    if not items:
        raise ValueError("nothing to evaluate: no records")
    with OutputDir(out, overwrite) as target:
        runs = []
        for predictor, load_seconds in predictors:
            run = predict_all(predictor, items, progress, load_seconds)
            score(run, data, resamples)
            runs.append(run)
        # what the types alone say about the risk: the baselines the risk figures are read against
        for name, preds in oracle_runs(items, runs[0].preds).items():
            run = RunResult(name, name, list(items), preds)
            score(run, data, resamples)
            runs.append(run)
        main, baselines = runs[0], runs[1:]
        main.metrics["baselines"] = {
            b.name: {k: v for k, v in b.metrics.items() if k not in ("per_class", "data")} for b in baselines}
        for b in baselines:
            write_run(target.path / "baselines" / b.name, b)
        write_run(target.path, main)
        if make_report:
            write_report(target.path, runs)
        target.commit()
    return main.metrics


def load_run(folder: str | Path) -> tuple[list[EvalItem], list[ClausePrediction], dict]:
    """Items, predictions and metrics.json of a run folder (what `compare` reads)."""
    folder = Path(folder)
    pred_file, metrics_file = folder / "predictions.jsonl", folder / "metrics.json"
    for f in (pred_file, metrics_file):
        if not f.exists():
            raise FileNotFoundError(f"{folder}: no {f.name}; give a folder written by `contract-review eval`")
    items, preds = [], []
    with open(pred_file, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                g = row["gold"]
                items.append(EvalItem(
                    id=row["id"], doc_id=row["doc_id"], source=row["source"], text=row.get("text", ""),
                    clause_types=tuple(g["clause_types"]), party=g["party"], risk=g.get("severity", g.get("risk")),
                    risk_category=g.get("risk_category", "none"), party_names=row.get("party_names", {}),
                    verified=row["verified"], unfair=frozenset(g["unfair"]) if "unfair" in g else None,
                    risk_to=g.get("risk_to"), risk_labeller=g.get("risk_labeller", "rules"),
                    party_aliases=row.get("party_aliases", {})))
                a = row["pred"]
                answer = Answer(tuple(a["clause_types"]), a["party"], a.get("severity", a.get("risk")),
                                a["risk_category"], a["reason"], risk_to=a.get("risk_to")) if a else None
                preds.append(ClausePrediction(answer=answer, confidence=row.get("confidence", 0.0),
                                              scores=row.get("scores", {}), raw=row.get("raw"),
                                              error=row.get("error")))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{pred_file}:{lineno}: not a prediction row ({exc})") from None
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    return items, preds, metrics

