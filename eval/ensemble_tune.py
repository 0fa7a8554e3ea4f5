"""Choosing the served model's mix on validation (`contract-review eval tune-ensemble`).

The mix itself (`reviewer/ensemble.py`) reads a small JSON file; this module chooses every number
in it on the validation split only, from precomputed reviewer head probabilities
(`contract-review eval --save-probs PROBS.pt`), so tuning needs no model run; the test split is
for reporting only (`eval/ensemble_report.py`). Weights and threshold are global per group of
types with the same sources (the 8 CLAUDETTE-mapped types, which alone have LexGLUE's SVM, and
the rest); a type gets its own only with `min_positives` validation positives (see
`TuneSettings` for why that is more than any type has now). The tuned risk rule is `highest`
(`reviewer.decisions.risk_of`): the CLAUDETTE-mapped types are tuned to be chosen only when
unfair, so the risk head must not veto them.

    contract-review eval --save-probs PROBS.pt [--adapter DIR]
    contract-review eval tune-ensemble --probs PROBS.pt --out data/model/reviewer/ensemble.json
    contract-review eval ensemble-report --probs PROBS.pt --config data/model/reviewer/ensemble.json
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from contract_review.annotation.corpora import shipped_corpus
from contract_review.paths import DATASET_DIR
from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.records import find_split_file, read_records
from contract_review.reviewer.decisions import BEARER_CONFIDENT, RISK_RULES
from contract_review.reviewer.ensemble import (FORMAT, EnsembleConfig, EnsembleError, Fingerprint, Platt, RiskRule,
                                               Scores, TypeRule, baseline_scores, decide, reviewer_fingerprint,
                                               tfidf_fingerprint, unfair_fingerprint)
from contract_review.reviewer.heads import ReviewerPredictor, read_meta
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR
from contract_review.reviewer.tfidf import (TfidfPredictor, UnfairTosTfidfPredictor, load_tfidf,
                                            load_unfair_tos_tfidf)
from contract_review.taxonomy import Taxonomy, load_taxonomy
from contract_review.training.reviewer_model import Labels, best_threshold, f1_by_threshold

from .items import EvalItem, load_items
from .metrics import decisions, point_metrics

@dataclass(frozen=True)
class TuneSettings:
    """What `tune` may choose from.

    A type gets its own Platt fits, weights and threshold only with `min_positives` validation
    positives. In a 5-fold by-document cross-fit on validation (`crossfit`), per-type choices
    at 20, 30, 40, 60 or 100 positives, and per-type Platt fits at 10 or 30, did no better
    than the pooled fits and the group's global weights and threshold, for the shipped adapter
    and two retrained ones (the best of up to 1,254 weight and threshold pairs on a few
    dozen clauses is partly noise). So the default lies above what any type has now: each TF-IDF
    source gets one Platt fit over all types, and every type its group's global weights and
    threshold, until validation grows."""

    min_positives: int = 200
    weight_step: float = 0.1
    thresholds: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
    risk_rules: tuple[str, ...] = ("mixed", "highest", "types", "head", "criteria")
    # for the rule criteria: when the bearer head overrides the bearer found in the text (None: never)
    bearer_thresholds: tuple[float | None, ...] = (None, 0.5, 0.7, 0.9)
    # what a CLAUDETTE-mapped type is tuned for: its presence ("type") or, on CLAUDETTE clauses, its
    # presence at a level LexGLUE counts as unfair ("unfair"; 0 to 1.3 points of cross-fit m-F1 better
    # on the three adapters)
    claudette_target: Literal["type", "unfair"] = "unfair"

    def __post_init__(self):
        if self.min_positives < 1:
            raise ValueError(f"min_positives must be at least 1, got {self.min_positives}")
        if not 0 < self.weight_step <= 1 or abs(round(1 / self.weight_step) * self.weight_step - 1) > 1e-9:
            raise ValueError(f"weight_step must divide 1 (0.1, 0.25, 0.5), got {self.weight_step}")
        unknown = set(self.risk_rules) - set(RISK_RULES)
        if unknown or not self.risk_rules:
            raise ValueError(f"risk_rules: unknown {sorted(unknown)}; use some of {', '.join(RISK_RULES)}")
        bad = [b for b in self.bearer_thresholds if b is not None and not 0 < b <= 1]
        if bad or not self.bearer_thresholds:
            raise ValueError(f"bearer_thresholds: probabilities in (0, 1] or None (never), got {list(self.bearer_thresholds)}")


def targets(items: Sequence[EvalItem], labels: Labels, tax: Taxonomy, claudette_target: str = "unfair") -> np.ndarray:
    """(N, T) 0/1 tuning targets: the gold types; for a CLAUDETTE clause and a CLAUDETTE-mapped type
    under "unfair", the type only when the clause is unfair for its category (what LexGLUE scores)."""
    index = {t: j for j, t in enumerate(labels.clause_type)}
    mapped = {ct.id: code for code, ct in tax.by_claudette().items()}
    y = np.zeros((len(items), len(index)), dtype=bool)
    for i, it in enumerate(items):
        for t in it.clause_types:
            if t not in index:
                continue  # a type the model was not trained on (an older reviewer): no column to tune
            if claudette_target == "unfair" and it.unfair is not None and t in mapped and mapped[t] not in it.unfair:
                continue
            y[i, index[t]] = True
    return y


def fit_platt(d: np.ndarray, y: np.ndarray) -> Platt | None:
    """Logistic fit of y on decision values d (mild L2: a type with few positives still gets a sane slope)."""
    ok = np.isfinite(d)
    d, y = d[ok], y[ok]
    if not len(y) or y.all() or not y.any():
        return None
    lr = LogisticRegression(C=1.0).fit(d[:, None], y.astype(int))
    return Platt(a=round(float(lr.coef_[0, 0]), 6), b=round(float(lr.intercept_[0]), 6))


def _simplex(step: float, k: int) -> list[tuple[float, ...]]:
    """Weight vectors of k sources on a grid of `step`, summing to 1 (reviewer-heaviest first)."""
    n = round(1 / step)

    def parts(total: int, k: int):
        if k == 1:
            yield (total,)
            return
        for first in range(total, -1, -1):
            for tail in parts(total - first, k - 1):
                yield (first,) + tail

    return [tuple(round(c / n, 4) for c in comp) for comp in parts(n, k)]


def _calibrated(scores: Scores, y: np.ndarray, min_positives: int) -> dict[str, list[Platt | None]]:
    """Per-type Platt fits of the TF-IDF sources; a type with too few positives gets its source's
    pooled fit (one slope and intercept over all types' decision values)."""
    out = {}
    for source, dec in (("tfidf", scores.tfidf), ("unfair_tos", scores.unfair_tos)):
        cols = [j for j in range(dec.shape[1]) if np.isfinite(dec[:, j]).all()]
        pooled = fit_platt(dec[:, cols].ravel(), y[:, cols].ravel()) if cols else None
        fits: list[Platt | None] = [None] * dec.shape[1]
        for j in cols:
            own = fit_platt(dec[:, j], y[:, j]) if y[:, j].sum() >= min_positives else None
            fits[j] = own or pooled
        out[source] = fits
    return out


def tune_types(scores: Scores, y: np.ndarray, labels: Labels, settings: TuneSettings) -> dict[str, TypeRule]:
    """Per type: Platt calibration, mixing weights and threshold maximising the type's F1 on `y`."""
    grid = np.asarray(settings.thresholds)
    p_rev = scores.reviewer["clause_type"].double().numpy()
    platt = _calibrated(scores, y, settings.min_positives)
    types = list(labels.clause_type)

    def calibrated(j: int) -> list[tuple[str, np.ndarray]]:
        out = [("reviewer", p_rev[:, j])]
        for name, dec in (("tfidf", scores.tfidf), ("unfair_tos", scores.unfair_tos)):
            if platt[name][j] is not None:
                out.append((name, platt[name][j](dec[:, j])))
        return out

    sources = [calibrated(j) for j in range(len(types))]

    def search(js: list[int], names: tuple[str, ...]) -> tuple[dict, float]:
        """Weights and threshold best on the macro-F1 over the types `js` (one type: its own F1);
        ties keep the reviewer-heaviest weights, listed first."""
        best, choice = -1.0, ({"reviewer": 1.0}, 0.5)
        for w in _simplex(settings.weight_step, len(names)):
            f1 = np.mean([f1_by_threshold(sum(wk * s for wk, (_, s) in zip(w, sources[j])), y[:, j], grid)
                          for j in js], axis=0)
            value, thr = best_threshold(f1, grid)
            if value > best + 1e-9:
                best, choice = value, (dict(zip(names, w)), thr)
        return choice

    # types that share the same sources share a global choice, made on the macro-F1 over those of
    # them with a validation positive: the one a type with too few positives falls back to (the
    # 8 CLAUDETTE-mapped types, which alone have LexGLUE's SVM, form their own group)
    groups: dict[tuple[str, ...], list[int]] = {}
    for j, t in enumerate(types):
        if t != "other":
            groups.setdefault(tuple(name for name, _ in sources[j]), []).append(j)
    fallback = {names: search([j for j in js if y[:, j].any()] or js, names) for names, js in groups.items()}

    rules = {}
    for j, t in enumerate(types):
        pos = int(y[:, j].sum())
        names = tuple(name for name, _ in sources[j])
        if t == "other":  # never chosen beside a real type; its rule only keeps the file complete
            w, thr, chosen = {"reviewer": 1.0}, 0.5, "global"
        elif pos >= settings.min_positives:
            (w, thr), chosen = search([j], names), "type"
        else:
            (w, thr), chosen = fallback[names], "global"
        fits = {name: platt[name][j] for name in ("tfidf", "unfair_tos")}
        rules[t] = TypeRule(reviewer=w.get("reviewer", 0.0), tfidf=w.get("tfidf", 0.0),
                            unfair_tos=w.get("unfair_tos", 0.0), threshold=thr,
                            tfidf_platt=fits["tfidf"] if w.get("tfidf", 0) > 0 else None,
                            unfair_tos_platt=fits["unfair_tos"] if w.get("unfair_tos", 0) > 0 else None,
                            chosen=chosen, positives=pos)
    return rules


def target_metrics(items: Sequence[EvalItem], preds: Sequence[ClausePrediction], tax: Taxonomy) -> dict[str, float]:
    """What the risk rule is chosen by, by the eval package's definitions: risk F1 on CUAD clauses, the
    8-category UNFAIR-ToS macro-F1 on CLAUDETTE sentences and directional risk F1 (the right bearer and
    medium/high) on every record."""
    out = {}
    for source, key in (("cuad", "risk.f1"), ("claudette", "unfair_tos.macro_f1_8"), ("all", "risk_dir.f1")):
        idx = [i for i, it in enumerate(items) if source == "all" or it.source == source]
        if idx:
            chosen = decisions([items[i] for i in idx], [preds[i] for i in idx], tax)
            out[f"{source}/{key}"] = point_metrics(chosen)[key]
    return out


def tune(scores: Scores, items: Sequence[EvalItem], labels: Labels, fingerprints: dict[str, Fingerprint | None],
         settings: TuneSettings | None = None, tax: Taxonomy | None = None,
         provenance: dict | None = None) -> EnsembleConfig:
    """Choose every number of the ensemble on `items` (the validation split)."""
    settings = settings or TuneSettings()
    tax = tax or load_taxonomy()
    if len(items) != scores.tfidf.shape[0]:
        raise ValueError(f"{scores.tfidf.shape[0]} score rows for {len(items)} items")
    y = targets(items, labels, tax, settings.claudette_target)
    rules = tune_types(scores, y, labels, settings)
    considered = [name for name, fp in fingerprints.items() if fp is not None]
    if not any(r.unfair_tos > 0 for r in rules.values()):
        # a source with no weight is not named: the predictor then need not fit it at every load
        fingerprints = {**fingerprints, "unfair_tos": None}
    cfg = _config(fingerprints, rules, RiskRule(rule="types"), {})
    tuned = {"split": "validation", "records": len(items), "sources_considered": considered, **(provenance or {})}
    return choose_risk(cfg, scores, items, labels, settings, tax, tuned)


def choose_risk(cfg: EnsembleConfig, scores: Scores, items: Sequence[EvalItem], labels: Labels,
                settings: TuneSettings | None = None, tax: Taxonomy | None = None,
                tuned: dict | None = None) -> EnsembleConfig:
    """`cfg` with its risk rule (and, for `criteria`, its bearer threshold) chosen on `items` by the mean of
    `target_metrics`, its types' rules kept; every choice's figures go to `tuned["risk_choices"]`."""
    settings = settings or TuneSettings()
    tax = tax or load_taxonomy()
    clauses = [it.clause_input() for it in items]
    best, best_value, tried = None, -1.0, []
    choices = [RiskRule(rule=r, bearer_confident=b) for r in settings.risk_rules
               for b in (settings.bearer_thresholds if r == "criteria" else (BEARER_CONFIDENT,))]
    for risk in choices:
        candidate = cfg.model_copy(update={"risk": risk})
        m = target_metrics(items, decide(candidate, labels, scores, tax, with_scores=False, clauses=clauses), tax)
        # the targets weigh the same: their mean decides
        value = float(np.mean([v for v in m.values() if v is not None])) if m else 0.0
        named = {"rule": risk.rule} | ({"bearer_confident": risk.bearer_confident} if risk.rule == "criteria" else {})
        tried.append({**named, **{k: round(v, 4) for k, v in m.items() if v is not None}})
        if value > best_value + 1e-9:
            best, best_value = risk, value
    tuned = {**(tuned if tuned is not None else cfg.tuned),
             "settings": json.loads(json.dumps(settings.__dict__)), "risk_choices": tried}
    return cfg.model_copy(update={"risk": best, "tuned": tuned})


def _config(fingerprints, rules, risk, tuned) -> EnsembleConfig:
    return EnsembleConfig(format=FORMAT, reviewer=fingerprints["reviewer"], tfidf=fingerprints["tfidf"],
                          unfair_tos=fingerprints.get("unfair_tos"), types=rules, risk=risk, tuned=tuned)


def crossfit(scores: Scores, items: Sequence[EvalItem], labels: Labels, fingerprints,
             settings: TuneSettings | None = None, folds: int = 5, seed: int = 0,
             tax: Taxonomy | None = None) -> list[ClausePrediction]:
    """Out-of-fold predictions on `items`: documents split into `folds` groups, each predicted by an
    ensemble tuned on the others. The honest estimate where no test split exists (CLAUDETTE)."""
    tax = tax or load_taxonomy()
    docs = sorted({it.doc_id for it in items})
    order = np.random.default_rng(seed).permutation(len(docs))
    fold_of = {docs[d]: k % folds for k, d in enumerate(order)}
    preds: list[ClausePrediction | None] = [None] * len(items)
    for k in range(folds):
        held = [i for i, it in enumerate(items) if fold_of[it.doc_id] == k]
        rest = [i for i, it in enumerate(items) if fold_of[it.doc_id] != k]
        if not held:
            continue
        cfg = tune(scores.take(rest), [items[i] for i in rest], labels, fingerprints, settings, tax)
        for i, p in zip(held, decide(cfg, labels, scores.take(held), tax, with_scores=False,
                                     clauses=[items[i].clause_input() for i in held])):
            preds[i] = p
    return preds  # type: ignore[return-value]


# -- precomputed reviewer probabilities -------------------------------------------------

def save_probs(reviewer: ReviewerPredictor, out: str | Path, dataset: str | Path | None = None,
               splits: Sequence[str] = ("validation", "test"), limit: int | None = None,
               progress: bool = True) -> dict[str, int]:
    """Write the reviewer's head probabilities on the dataset's `splits` (each split's first `limit`
    records: a smoke test) as {split: {"ids", "clause_type", "party", "risk_to", "severity"}}, float16,
    rows in the split file's order; what `read_probs` reads. Returns the records per split."""
    res = {}
    for split in splits:
        records = read_records(find_split_file(Path(dataset or DATASET_DIR), split))[:limit]
        probs = reviewer.head_probs([ClauseInput(r.text, r.party_names) for r in records], progress)
        res[split] = {"ids": [r.id for r in records], **{k: v.half() for k, v in probs.items()}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(res, tmp)
    tmp.replace(out)
    return {split: len(part["ids"]) for split, part in res.items()}


def read_probs(path: str | Path, name: str | None = None) -> dict[str, dict]:
    """{split: {"ids", "clause_type", "party", "risk_to", "severity"}} from a file of `contract-review eval
    --save-probs`, or one entry of a {name: {split: ...}} file (a legacy file's `risk` is its severity)."""
    if not Path(path).exists():
        raise EnsembleError(f"{path}: no such file; write it with contract-review eval --save-probs {path} "
                            "[--adapter ADAPTER_DIR]")
    raw = torch.load(path, map_location="cpu", weights_only=True)  # tensors, lists and strings only
    if not isinstance(raw, dict):
        raise EnsembleError(f"{path}: not a dict of splits")
    if "validation" not in raw:
        if name is None and len(raw) == 1:
            name = next(iter(raw))
        if name not in raw:
            raise EnsembleError(f"{path} holds several adapters ({', '.join(map(str, raw))}): pick one with --name")
        raw = raw[name]
    for split, part in raw.items():
        if "severity" not in part and "risk" in part:  # written for an adapter whose severity head was `risk`
            part["severity"] = part.pop("risk")
        missing = {"ids", "clause_type", "party", "severity"} - set(part)
        if missing:
            raise EnsembleError(f"{path}: split {split} lacks {', '.join(sorted(missing))}")
    return raw


def split_scores(probs: dict, items: Sequence[EvalItem], labels: Labels, tfidf: TfidfPredictor,
                 unfair: UnfairTosTfidfPredictor | None, tax: Taxonomy) -> Scores:
    """Scores of a split's items: the reviewer's rows from `probs` (checked against the items' ids)."""
    ids = list(probs["ids"])
    if ids != [it.id for it in items]:
        raise EnsembleError(f"the probabilities' {len(ids)} record ids are not the split file's {len(items)} in "
                            "order; recompute them with contract-review eval --save-probs on this dataset")
    for key, n in labels.sizes().items():
        if key not in probs or probs[key].shape[1] != n:
            got = f"{probs[key].shape[1]} columns" if key in probs else "no column"
            raise EnsembleError(f"probabilities of {key}: {got}, the reviewer has {n}; recompute them with "
                                "contract-review eval --save-probs for this adapter")
    reviewer = {k: probs[k].float() for k in labels.sizes()}
    t, u = baseline_scores([it.text for it in items], labels, tfidf, unfair, tax)
    return Scores(reviewer, t, u)


# -- writing the ensemble file --------------------------------------------------------------------

def _dump(obj, indent: int = 0, width: int = 110, flat_depth: int | None = None) -> str:
    """JSON with a value on one line when it fits in `width`, is a list of numbers or strings, or
    sits at depth `flat_depth`."""
    one = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    scalars = isinstance(obj, list) and not any(isinstance(v, (dict, list)) for v in obj)
    if not isinstance(obj, (dict, list)) or not obj or scalars or flat_depth == 0 or len(one) + indent <= width:
        return one
    pad, deeper = " " * (indent + 2), None if flat_depth is None else flat_depth - 1
    if isinstance(obj, dict):
        rows = [f"{pad}{json.dumps(k)}: {_dump(v, indent + 2, width, deeper)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(rows) + "\n" + " " * indent + "}"
    return "[\n" + ",\n".join(pad + _dump(v, indent + 2, width, deeper) for v in obj) + "\n" + " " * indent + "]"


def write_config(cfg: EnsembleConfig, path: str | Path) -> Path:
    """The ensemble file, one line per clause type, so a diff of two tunings reads type by type."""
    raw = cfg.model_dump(mode="json")
    types = raw.pop("types")
    body = _dump(raw)
    text = body[:-2] + ',\n  "types": ' + _dump(types, 2, flat_depth=1) + "\n}\n"
    json.loads(text)  # the hand-joined text must still be JSON
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- what tuning and the report read --------------------------------------------------------------

@dataclass
class TuningData:
    """The components the mix was (or will be) tuned with, and each split's items and scores."""

    tax: Taxonomy
    meta: dict  # the adapter's reviewer.json: its own thresholds and risk rule
    labels: Labels
    tfidf: TfidfPredictor
    unfair: UnfairTosTfidfPredictor | None
    splits: dict[str, tuple[list[EvalItem], Scores]]  # validation (always), test (when in the probabilities)
    fingerprints: dict[str, Fingerprint | None]


def load_tuning_data(probs_file: str | Path, name: str | None = None, adapter: str | Path | None = None,
                     dataset: str | Path | None = None, tfidf_train: str | Path | None = None,
                     claudette: str | Path | None = None, unfair_tos: bool = True) -> TuningData:
    """Reviewer probabilities of `probs_file` (from the adapter folder `adapter`, default: shipped)
    paired with the dataset's split files, and the TF-IDF models fit as the mix would fit them."""
    tax = load_taxonomy()
    adapter = Path(adapter or DEFAULT_ADAPTER_DIR)
    meta = read_meta(adapter)
    labels = Labels.from_meta(meta)
    probs = read_probs(probs_file, name)
    tfidf = load_tfidf(tfidf_train)
    unfair = load_unfair_tos_tfidf(claudette or shipped_corpus("unfair-tos")) if unfair_tos else None
    splits = {}
    for split in ("validation", "test"):
        if split in probs:
            items = load_items(find_split_file(Path(dataset or DATASET_DIR), split))
            splits[split] = (items, split_scores(probs[split], items, labels, tfidf, unfair, tax))
    if "validation" not in splits:
        raise EnsembleError(f"{probs_file}: no validation split; tuning and cross-fitting need it")
    fingerprints = {"reviewer": reviewer_fingerprint(adapter), "tfidf": tfidf_fingerprint(tfidf),
                    "unfair_tos": unfair_fingerprint(unfair) if unfair is not None else None}
    return TuningData(tax, meta, labels, tfidf, unfair, splits, fingerprints)
