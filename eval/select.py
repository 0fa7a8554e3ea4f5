"""Choosing the shipped reviewer by a cross-fit on validation, and reading test once (`eval select`).

What a GPU list leaves (bench/lists/reviewer.sh): one folder per training run, `<variant>-s<seed>/`,
each with `snapshots/step<N>/probs.pt` (the heads' probabilities on validation and test at every
evaluation, `classify.snapshot_splits`) and, for the runs that may be shipped, `snapshots/step<N>/adapter`.

The protocol, every choice made on validation by documents it did not see:

1. A candidate is a variant (base x method) at its k-th snapshot (the training length); it can be
   chosen when its seed-0 adapter at that snapshot came back (the list keeps the last one). For each
   candidate and seed, a K-fold cross-fit by document on validation (`ensemble_tune.crossfit`): the
   mix's weights, thresholds and risk rule tuned on K-1 folds predict the held-out fold. The heads
   alone are cross-fitted the same way (per-type thresholds tuned on the other folds).
2. The objective J of a candidate is the mean over its seeds of the mean of three cross-fit figures:
   CLAUDETTE 8-category macro-F1, CUAD clause-type macro-F1 and directional risk F1 (all records).
   The candidate with the highest J is chosen. Choosing among candidates on the same cross-fit
   flatters the winner a little, so a selection-aware estimate is reported too: for each fold, the
   candidate is chosen on the other folds' cross-fit predictions and scored on that fold.
3. Every variant's cross-fit figures are paired with the previously shipped reviewer's (its own
   cross-fit mix, same folds) by a paired bootstrap by document; the chosen one is also paired with
   the type-defaults baseline (each predicted type's default severity and bearer rule) on
   directional risk.
4. What ships is seed 0 of the chosen candidate (fixed before any run: never the best seed); its
   figures are reported as the mean and spread of the three seeds. Its mix is tuned on all of
   validation. Test is then read once for the shipped model; the read is appended to
   `test_reads.jsonl` in the shipped folder with what was read, so a second read is visible.

    contract-review eval select --runs RUNS_DIR --baseline-probs shipped_probs.pt --out runs/select [--ship DIR]
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract_review.predictor import ClausePrediction
from contract_review.reviewer.decisions import answers_from_probs
from contract_review.reviewer.ensemble import Fingerprint, Scores, decide, reviewer_fingerprint
from contract_review.reviewer.heads import read_meta
from contract_review.reviewer.shipped import ENSEMBLE_FILE
from contract_review.taxonomy import Taxonomy
from contract_review.training.reviewer_model import Labels, tune_thresholds

from .bootstrap import paired_intervals
from .ensemble_tune import TuneSettings, TuningData, crossfit, read_probs, split_scores, targets, tune, write_config
from .items import EvalItem
from .metrics import count_tables, decisions, point_metrics
from .oracle import TYPE_DEFAULTS, TYPE_ORACLE, oracle_runs

# the three figures J averages: (records they are scored on, metric key)
OBJECTIVE = (("claudette", "unfair_tos.macro_f1_8"), ("cuad", "clause_type.macro_f1"), ("all", "risk_dir.f1"))
REPORTED = OBJECTIVE + (("all", "risk.f1"), ("all", "severity.accuracy_within_type"), ("all", "risk_to.accuracy"),
                        ("claudette", "unfair_tos.macro_f1"), ("cuad", "risk.f1"))
SHIPPED_SEED = 0
# a full fine-tune ships as a rank-r extraction of its update (training/adapters/full.py); above this relative
# error the extraction is not the model whose probabilities were scored, so it may not ship on them
MAX_EXTRACTION_ERROR = 0.05


def _extraction_error(adapter: Path) -> float | None:
    meta = adapter / "extraction.json"
    return float(json.loads(meta.read_text(encoding="utf-8"))["relative_error"]) if meta.exists() else None

TEST_READS = "test_reads.jsonl"


@dataclass
class Run:
    variant: str
    seed: int
    snapshots: list[Path]  # snapshots/step<N>, in step order


def discover(runs_dir: str | Path) -> dict[str, dict[int, Run]]:
    """{variant: {seed: Run}} of the `<variant>-s<seed>` folders under `runs_dir`."""
    out: dict[str, dict[int, Run]] = {}
    for folder in sorted(Path(runs_dir).iterdir()):
        m = re.fullmatch(r"(.+)-s(\d+)", folder.name)
        snaps = sorted(folder.glob("snapshots/step*"), key=lambda p: int(p.name[4:]))
        snaps = [s for s in snaps if (s / "probs.pt").exists()]
        if m and snaps:
            out.setdefault(m.group(1), {})[int(m.group(2))] = Run(m.group(1), int(m.group(2)), snaps)
    if not out:
        raise FileNotFoundError(f"{runs_dir}: no <variant>-s<seed>/snapshots/step<N>/probs.pt; unpack the GPU "
                                "list's results there")
    return out


def subset(items: Sequence[EvalItem], preds: Sequence[ClausePrediction], where: str):
    idx = [i for i, it in enumerate(items) if where == "all" or it.source == where]
    return [items[i] for i in idx], [preds[i] for i in idx]


def figures(items: Sequence[EvalItem], preds: Sequence[ClausePrediction], tax: Taxonomy) -> dict[str, float | None]:
    out = {}
    for where, key in REPORTED:
        its, ps = subset(items, preds, where)
        out[f"{where}/{key}"] = point_metrics(decisions(its, ps, tax))[key] if its else None
    values = [out[f"{w}/{k}"] for w, k in OBJECTIVE]
    out["J"] = float(np.mean([v for v in values if v is not None])) if any(v is not None for v in values) else None
    return out


def folds_of(items: Sequence[EvalItem], k: int, seed: int = 0) -> np.ndarray:
    """The fold of each item: documents shuffled once and dealt into k folds (as `crossfit` deals them)."""
    docs = sorted({it.doc_id for it in items})
    order = np.random.default_rng(seed).permutation(len(docs))
    fold_of = {docs[d]: j % k for j, d in enumerate(order)}
    return np.array([fold_of[it.doc_id] for it in items])


def heads_crossfit(probs: dict, items: Sequence[EvalItem], labels: Labels, tax: Taxonomy, folds: np.ndarray,
                   risk_rule: str = "head") -> list[ClausePrediction]:
    """The heads alone, cross-fitted: per-type thresholds tuned on the other folds."""
    y = torch.from_numpy(targets(items, labels, tax, "type")).float()
    preds: list[ClausePrediction | None] = [None] * len(items)
    for k in sorted(set(folds.tolist())):
        held, rest = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        thr = tune_thresholds(probs["clause_type"][rest], y[rest])
        part = {f: v[torch.as_tensor(held)] for f, v in probs.items()}
        clauses = [items[i].clause_input() for i in held]
        for i, (a, c, _) in zip(held, answers_from_probs(part, labels, thr, tax, risk_rule, with_scores=False,
                                                         clauses=clauses)):
            preds[i] = ClausePrediction(answer=a, confidence=round(c, 4))
    return preds  # type: ignore[return-value]


def _scores(probs: dict, items, labels: Labels, data: TuningData) -> Scores:
    return split_scores(probs, items, labels, data.tfidf, data.unfair, data.tax)


def _paired(items, a, b, tax, resamples: int) -> dict:
    """Paired bootstrap differences A - B of the reported figures (each on its own records)."""
    out = {}
    for where, key in REPORTED:
        its, pa = subset(items, a, where)
        _, pb = subset(items, b, where)
        if not its:
            continue
        pair = paired_intervals(count_tables(decisions(its, pa, tax)), count_tables(decisions(its, pb, tax)),
                                [it.doc_id for it in its], resamples)[key]
        out[f"{where}/{key}"] = {"diff": pair["diff"], "ci": pair["ci"], "p_a_better": pair["p_a_better"]}
    return out


def select(runs_dir: str | Path, data: TuningData, baseline_probs: str | Path | None = None,
           baseline_labels: Labels | None = None, k: int = 5, resamples: int = 1000,
           settings: TuneSettings | None = None, progress: bool = True) -> dict:
    """Steps 1-3 of the protocol; returns the report (every figure on validation)."""
    tax = data.tax
    items, base_scores = data.splits["validation"]
    folds = folds_of(items, k)
    fingerprints = {"reviewer": Fingerprint(model_version="candidate", sha="-"),
                    "tfidf": data.fingerprints["tfidf"], "unfair_tos": data.fingerprints["unfair_tos"]}
    runs = discover(runs_dir)
    rows, oof = [], {}
    for variant, seeds in runs.items():
        for seed, run in sorted(seeds.items()):
            for index, snap in enumerate(run.snapshots):
                t0 = time.time()
                probs = read_probs(snap / "probs.pt")["validation"]
                labels = _labels_of(snap, probs)
                scores = _scores(probs, items, labels, data)
                mix = crossfit(scores, items, labels, fingerprints, settings, k, tax=tax)
                heads = heads_crossfit({f: probs[f].float() for f in labels.sizes()}, items, labels, tax, folds)
                oof[(variant, index, seed)] = mix
                row = {"variant": variant, "snapshot": index + 1, "step": int(snap.name[4:]), "seed": seed,
                       "mix": figures(items, mix, tax), "heads": figures(items, heads, tax)}
                rows.append(row)
                if progress:
                    print(f"{variant} snapshot {index + 1} (step {row['step']}) seed {seed}: J {row['mix']['J']:.4f} "
                          f"(heads {row['heads']['J']:.4f}) in {time.time() - t0:.0f} s", flush=True)
    candidates = _candidates(rows)
    for c in candidates:  # a candidate can ship when its seed-0 adapter came back (the list keeps the last one)
        run = runs[c["variant"]].get(SHIPPED_SEED)
        adapter = run.snapshots[c["snapshot"] - 1] / "adapter" if run and len(run.snapshots) >= c["snapshot"] else None
        c["shippable"], c["why_not"] = True, None
        if adapter is None or not (adapter / "reviewer.json").exists():
            c["shippable"], c["why_not"] = False, "no adapter back"
        elif (err := _extraction_error(adapter)) is not None and err > MAX_EXTRACTION_ERROR:
            # what was scored is the full model; what would ship is its low-rank extraction, a different model
            c["shippable"], c["why_not"] = False, (f"its shipped low-rank extraction differs from the scored "
                                                   f"weights (relative error {err:.2f} > {MAX_EXTRACTION_ERROR})")
    shippable = [c for c in candidates if c["shippable"]]
    if not shippable:
        raise FileNotFoundError(f"{runs_dir}: no seed-{SHIPPED_SEED} snapshot with its adapter; nothing can ship")
    best = max(shippable, key=lambda c: c["J_mean"])
    report = {"protocol": __doc__.split("\n\n")[2], "folds": k, "records": len(items),
              "documents": len({it.doc_id for it in items}), "rows": rows, "candidates": candidates,
              "chosen": {"variant": best["variant"], "snapshot": best["snapshot"], "shipped_seed": SHIPPED_SEED},
              "selection_aware": _selection_aware(rows, oof, items, folds, tax)}
    if baseline_probs:
        probs = read_probs(baseline_probs)["validation"]
        meta_labels = baseline_labels or data.labels
        shipped = crossfit(_scores(probs, items, meta_labels, data), items, meta_labels, fingerprints, settings, k,
                           tax=tax)
        report["previous_shipped"] = figures(items, shipped, tax)
        report["paired_vs_previous"] = {
            f"{c['variant']} snapshot {c['snapshot']} seed {SHIPPED_SEED}":
                _paired(items, oof[(c["variant"], c["snapshot"] - 1, SHIPPED_SEED)], shipped, tax, resamples)
            for c in candidates if (c["variant"], c["snapshot"] - 1, SHIPPED_SEED) in oof}
    chosen = oof.get((best["variant"], best["snapshot"] - 1, SHIPPED_SEED))
    if chosen is not None:
        defaults = oracle_runs(items, chosen, tax)[TYPE_DEFAULTS]
        report["chosen_vs_type_defaults"] = _paired(items, chosen, defaults, tax, resamples)
        report["type_defaults"] = figures(items, defaults, tax)
    return report


def _labels_of(snapshot: Path, probs: dict) -> Labels:
    adapter = snapshot / "adapter"
    if (adapter / "reviewer.json").exists():
        return Labels.from_meta(read_meta(adapter))
    from contract_review.taxonomy import load_taxonomy

    labels = Labels.from_taxonomy(load_taxonomy())
    if probs["clause_type"].shape[1] != len(labels.clause_type):
        raise ValueError(f"{snapshot}: no adapter beside the probabilities and their columns are not the taxonomy's")
    return labels


def _candidates(rows: list[dict]) -> list[dict]:
    """Per (variant, snapshot): the mean and spread over seeds of every figure of the mix and the heads."""
    out = []
    keys = sorted({(r["variant"], r["snapshot"]) for r in rows})
    for variant, snapshot in keys:
        mine = [r for r in rows if (r["variant"], r["snapshot"]) == (variant, snapshot)]
        c = {"variant": variant, "snapshot": snapshot, "seeds": [r["seed"] for r in mine],
             "steps": [r["step"] for r in mine]}
        for part in ("mix", "heads"):
            c[part] = {key: _spread([r[part][key] for r in mine]) for key in mine[0][part]}
        c["J_mean"] = c["mix"]["J"]["mean"]
        out.append(c)
    return out


def _spread(values: list[float | None]) -> dict:
    v = [x for x in values if x is not None]
    return {"mean": round(float(np.mean(v)), 4) if v else None, "sd": round(float(np.std(v, ddof=1)), 4)
            if len(v) > 1 else None, "min": round(min(v), 4) if v else None, "max": round(max(v), 4) if v else None,
            "n": len(v)}


def _selection_aware(rows, oof, items, folds: np.ndarray, tax: Taxonomy) -> dict:
    """Per fold: the candidate with the best mean J over the OTHER folds' cross-fit predictions (seed mean),
    scored on this fold; the folds' predictions together give the estimate of the whole protocol."""
    keys = sorted({(r["variant"], r["snapshot"] - 1) for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    picked, per_seed = [], {s: [None] * len(items) for s in seeds}
    for f in sorted(set(folds.tolist())):
        rest = np.flatnonzero(folds != f)
        its = [items[i] for i in rest]

        def j_of(key):
            vals = [figures(its, [oof[key + (s,)][i] for i in rest], tax)["J"] for s in seeds if key + (s,) in oof]
            return float(np.mean(vals)) if vals else -1.0

        best = max(keys, key=j_of)
        picked.append({"fold": f, "variant": best[0], "snapshot": best[1] + 1})
        for s in seeds:
            source = oof.get(best + (s,))
            for i in np.flatnonzero(folds == f):
                per_seed[s][i] = source[i] if source is not None else None
    estimates = [figures(items, preds, tax) for s, preds in per_seed.items() if all(p is not None for p in preds)]
    return {"picked_per_fold": picked,
            "figures": {key: _spread([e[key] for e in estimates]) for key in (estimates[0] if estimates else {})}}


# -- shipping the chosen candidate and reading test once -----------------------------------------

def ship(report: dict, runs_dir: str | Path, data_for, dest: str | Path, resamples: int = 1000) -> dict:
    """Copies seed 0 of the chosen candidate to `dest`, tunes its mix on all of validation, reads test once
    and records the read. `data_for(adapter_dir)` gives the TuningData of an adapter folder."""
    chosen = report["chosen"]
    run = discover(runs_dir)[chosen["variant"]][SHIPPED_SEED]
    snap = run.snapshots[chosen["snapshot"] - 1]
    if not (snap / "adapter" / "reviewer.json").exists():
        raise FileNotFoundError(f"{snap}/adapter: the chosen run's adapter did not come back from the GPU list")
    dest = Path(dest)
    reads = dest / TEST_READS
    history = reads.read_text(encoding="utf-8") if reads.exists() else ""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(snap / "adapter", tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    if history:
        (dest / TEST_READS).write_text(history, encoding="utf-8")
    data = data_for(dest, snap / "probs.pt")
    items, scores = data.splits["validation"]
    fingerprints = {**data.fingerprints, "reviewer": reviewer_fingerprint(dest)}
    cfg = tune(scores, items, data.labels, fingerprints, None, data.tax,
               provenance={"probs": str(snap / "probs.pt"), "selection": "eval select (cross-fit on validation)"})
    write_config(cfg, dest / ENSEMBLE_FILE)
    test_items, test_scores = data.splits["test"]
    tax = data.tax
    test_inputs = [it.clause_input() for it in test_items]
    mix = decide(cfg, data.labels, test_scores, tax, clauses=test_inputs)
    meta = read_meta(dest)
    heads = [ClausePrediction(answer=a, confidence=round(c, 4)) for a, c, _ in
             answers_from_probs(test_scores.reviewer, data.labels, meta["thresholds"], tax, meta.get("risk_rule", "head"),
                                with_scores=False, clauses=test_inputs)]
    tfidf = data.tfidf.predict(test_inputs)
    oracles = oracle_runs(test_items, mix, tax)
    defaults = oracles[TYPE_DEFAULTS]
    result = {"model_version": meta.get("model_version"), "read_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "split": "test", "records": len(test_items),
              "figures": {"mix (shipped default)": figures(test_items, mix, tax),
                          "heads alone": figures(test_items, heads, tax), "tfidf": figures(test_items, tfidf, tax),
                          TYPE_DEFAULTS + " of the mix": figures(test_items, defaults, tax),
                          TYPE_ORACLE: figures(test_items, oracles[TYPE_ORACLE], tax)},
              "seeds": seed_figures(chosen, runs_dir, data),
              "mix_vs_type_defaults": _paired(test_items, mix, defaults, tax, resamples),
              "mix_vs_tfidf": _paired(test_items, mix, tfidf, tax, resamples)}
    previous = len([line for line in history.splitlines() if line.strip()])
    result["earlier_reads_of_test_in_this_folder"] = previous
    with open(dest / TEST_READS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({k: result[k] for k in ("model_version", "read_at", "split", "records")}
                            | {"what": "eval select --ship: the shipped mix, heads, tfidf, type-defaults"}) + "\n")
    return result


def seed_figures(chosen: dict, runs_dir: str | Path, data: TuningData) -> dict:
    """Test figures of every seed of the chosen candidate (the shipped one is seed 0), each seed's heads
    thresholds and mix tuned on all of validation from its own probabilities: their mean and spread are
    the shipped figure's."""
    tax = data.tax
    val_items, _ = data.splits["validation"]
    test_items, _ = data.splits["test"]
    per_seed = {}
    for seed, run in sorted(discover(runs_dir)[chosen["variant"]].items()):
        if len(run.snapshots) < chosen["snapshot"]:
            continue
        snap = run.snapshots[chosen["snapshot"] - 1]
        probs = read_probs(snap / "probs.pt")
        if "test" not in probs:
            continue
        labels = _labels_of(snap, probs["validation"])
        val, test = (_scores(probs[s], its, labels, data) for s, its in (("validation", val_items),
                                                                         ("test", test_items)))
        fingerprints = {**data.fingerprints, "reviewer": Fingerprint(model_version=f"seed{seed}", sha="-")}
        cfg = tune(val, val_items, labels, fingerprints, None, tax)
        y = torch.from_numpy(targets(val_items, labels, tax, "type")).float()
        thr = tune_thresholds(val.reviewer["clause_type"], y)
        heads = [ClausePrediction(answer=a, confidence=round(c, 4)) for a, c, _ in
                 answers_from_probs(test.reviewer, labels, thr, tax, "head", with_scores=False)]
        mix = decide(cfg, labels, test, tax, clauses=[it.clause_input() for it in test_items])
        per_seed[seed] = {"mix": figures(test_items, mix, tax), "heads": figures(test_items, heads, tax)}
    out: dict = {"per_seed": per_seed}
    for part in ("mix", "heads"):
        keys = next(iter(per_seed.values()))[part] if per_seed else {}
        out[part] = {k: _spread([f[part][k] for f in per_seed.values()]) for k in keys}
    return out
