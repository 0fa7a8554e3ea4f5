"""The ensemble: the reviewer's heads and the TF-IDF baselines, mixed per clause type.

The reviewer (a fine-tuned 135M model) and the TF-IDF + LinearSVC baselines (exact word
n-grams) make different mistakes: on CUAD the reviewer only ties TF-IDF, on CLAUDETTE it is
below LexGLUE's per-category SVM. Per clause type t the ensemble's probability is

    p_t = w_r * p_reviewer_t + w_f * platt_f(d_tfidf_t) + w_u * platt_u(d_unfair_t)

- p_reviewer: the reviewer's clause-type sigmoid (`training.reviewer_model.predict_probs`);
- d_tfidf: the joint TF-IDF baseline's decision value for t (`reviewer.tfidf.load_tfidf`);
- d_unfair: LexGLUE's per-category SVM (`reviewer.tfidf.load_unfair_tos_tfidf`), for the 8
  CLAUDETTE-mapped types only;
- platt(d) = sigmoid(a * d + b): SVM margins are not probabilities; a logistic fit on
  validation puts them on a probability scale before averaging.

Party and risk probabilities are the reviewer's heads. Then the reviewer's own decision
(`answers_from_probs`) with the ensemble's per-type thresholds and risk rule, so types,
party, risk, category and reason are decided exactly as the reviewer decides them. The
tuned rule is `highest` (`reviewer.decisions.risk_of`): the CLAUDETTE-mapped types are
tuned to be chosen only when unfair, so the risk head must not veto them.

Every number is chosen on the validation split (`tune`), from precomputed reviewer head
probabilities (`bench/training/reviewer_probs.py`), so tuning needs no model run; the test
split is for reporting only. Weights and threshold are global per group of types with the
same sources (the 8 CLAUDETTE-mapped types, which alone have LexGLUE's SVM, and the rest);
a type gets its own only with `min_positives` validation positives (see `TuneSettings` for
why that is more than any type has now). The choices are a small JSON file
(`data/model/reviewer/ensemble.json`) that names the reviewer heads and the TF-IDF fits it
was tuned with; a mismatch is an error, never a silent mix of other models' scores.

    python -m contract_review.eval.ensemble tune --probs PROBS.pt --out data/model/reviewer/ensemble.json
    python -m contract_review.eval.ensemble report --probs PROBS.pt --config data/model/reviewer/ensemble.json
    contract-review eval --data data/dataset/test.jsonl.gz --model ensemble
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract_review.command import run
from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .items import EvalItem

FORMAT = "contract-review-ensemble/1"
ENSEMBLE_FILE = "ensemble.json"
SPEC = "ensemble"
RETUNE = "re-tune it: python -m contract_review.eval.ensemble tune --probs PROBS.pt --adapter ADAPTER_DIR --out FILE"


class EnsembleError(ValueError):
    """An ensemble file that cannot be used with the models at hand; the message says why and how to fix it."""


# -- the ensemble file ------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Platt(_Strict):
    """p = sigmoid(a * decision_value + b)."""

    a: float
    b: float

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * d + self.b)))


class TypeRule(_Strict):
    """How one clause type's probability is mixed and decided."""

    reviewer: float = Field(ge=0, le=1)
    tfidf: float = Field(0.0, ge=0, le=1)
    unfair_tos: float = Field(0.0, ge=0, le=1)
    threshold: float = Field(gt=0, le=1)
    tfidf_platt: Platt | None = None
    unfair_tos_platt: Platt | None = None
    chosen: Literal["type", "global"] = Field(description="weights and threshold tuned on this type's validation "
                                                           "positives, or the global ones (too few positives)")
    positives: int = Field(ge=0, description="validation positives of the tuning target")

    @model_validator(mode="after")
    def _weights(self):
        if abs(self.reviewer + self.tfidf + self.unfair_tos - 1.0) > 1e-6:
            raise ValueError(f"weights reviewer + tfidf + unfair_tos must sum to 1, got "
                             f"{self.reviewer + self.tfidf + self.unfair_tos:.6f}")
        for source in ("tfidf", "unfair_tos"):
            if getattr(self, source) > 0 and getattr(self, f"{source}_platt") is None:
                raise ValueError(f"{source} has weight {getattr(self, source)} but no {source}_platt calibration")
        return self


class RiskRule(_Strict):
    """How risk is decided from the chosen types and the reviewer's risk head."""

    rule: Literal["head", "types", "mixed", "highest"]  # reviewer.decisions.RISK_RULES


class Fingerprint(_Strict):
    """Which fitted model the weights were tuned against."""

    model_version: str
    sha: str = Field(description="reviewer: heads.safetensors; tfidf: the train file; unfair_tos: the train sentences")
    settings: dict[str, Any] = Field(default_factory=dict)


class EnsembleConfig(_Strict):
    format: Literal["contract-review-ensemble/1"]
    reviewer: Fingerprint
    tfidf: Fingerprint
    unfair_tos: Fingerprint | None = None
    types: dict[str, TypeRule] = Field(description="one rule per reviewer clause type")
    risk: RiskRule
    tuned: dict[str, Any] = Field(default_factory=dict, description="provenance; not read back")

    @model_validator(mode="after")
    def _unfair_needs_model(self):
        if self.unfair_tos is None and any(r.unfair_tos > 0 for r in self.types.values()):
            raise ValueError("types give unfair_tos a weight but the file names no unfair_tos model")
        return self


def read_config(path: str | Path) -> EnsembleConfig:
    path = Path(path)
    if not path.exists():
        raise EnsembleError(f"{path}: no ensemble file; {RETUNE}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EnsembleError(f"{path}: not JSON ({exc}); {RETUNE}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise EnsembleError(f"{path}: format {got!r}, expected {FORMAT!r}; {RETUNE}")
    try:
        return EnsembleConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise EnsembleError(f"{path}: invalid ensemble file:\n  " + "\n  ".join(lines) + f"\n{RETUNE}") from None


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


# -- fingerprints of the components -----------------------------------------------------------

def _plain(settings: dict) -> dict:
    return json.loads(json.dumps(settings))  # tuples become lists, as in the JSON file


def reviewer_fingerprint(adapter_dir: str | Path) -> Fingerprint:
    from contract_review.reviewer.heads import read_meta
    from contract_review.training.reviewer_model import HEADS_FILE

    meta = read_meta(adapter_dir)
    sha = hashlib.sha256((Path(adapter_dir) / HEADS_FILE).read_bytes()).hexdigest()[:16]
    return Fingerprint(model_version=str(meta.get("model_version", "reviewer")), sha=sha)


def tfidf_fingerprint(tfidf) -> Fingerprint:
    f = tfidf.fitted
    return Fingerprint(model_version=tfidf.model_version, sha=f["train_sha"], settings=_plain(f["settings"]))


def unfair_fingerprint(unfair) -> Fingerprint:
    f = unfair.fitted
    return Fingerprint(model_version=unfair.model_version, sha=f["corpus_sha"], settings=_plain(f["settings"]))


def check_components(cfg: EnsembleConfig, source: str, reviewer: Fingerprint, labels, tfidf: Fingerprint,
                     unfair: Fingerprint | None) -> None:
    """The ensemble file must have been tuned with exactly these models."""
    problems = []
    for name, want, have in (("reviewer", cfg.reviewer, reviewer), ("tfidf", cfg.tfidf, tfidf),
                             ("unfair_tos", cfg.unfair_tos, unfair)):
        if want is None:
            continue
        if have is None:
            problems.append(f"it was tuned with a {name} model ({want.model_version}) that was not loaded")
        elif (want.sha, want.settings) != (have.sha, have.settings):
            problems.append(f"{name}: tuned with {want.model_version} (sha {want.sha[:16]}, settings {want.settings}), "
                            f"but the loaded one is {have.model_version} (sha {have.sha[:16]}, settings {have.settings})")
    if set(cfg.types) != set(labels.clause_type):
        problems.append(f"its clause types differ from the reviewer's ({len(cfg.types)} vs {len(labels.clause_type)})")
    if problems:
        raise EnsembleError(f"{source} does not match the models it would mix:\n  " + "\n  ".join(problems)
                            + f"\n{RETUNE}")


# -- component scores, in the reviewer's label order --------------------------------------------

@dataclass
class Scores:
    """Every component's raw output on N clauses."""

    reviewer: dict[str, torch.Tensor]  # head probabilities: clause_type (N, T), party (N, P), risk (N, R)
    tfidf: np.ndarray  # (N, T) decision values; NaN for a type the TF-IDF model has no classifier for
    unfair_tos: np.ndarray  # (N, T) decision values of the 8 CLAUDETTE-mapped types; NaN elsewhere

    def take(self, rows: Sequence[int]) -> "Scores":
        idx = np.asarray(rows, dtype=int)
        return Scores({k: v[torch.as_tensor(idx)] for k, v in self.reviewer.items()}, self.tfidf[idx],
                      self.unfair_tos[idx])


def baseline_scores(texts: Sequence[str], labels, tfidf, unfair=None,
                    tax: Taxonomy | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clause-type decision values of the TF-IDF models (joint, LexGLUE's), columns in the reviewer's order."""
    tax = tax or load_taxonomy()
    n, types = len(texts), list(labels.clause_type)
    t_dec = np.full((n, len(types)), np.nan)
    u_dec = np.full((n, len(types)), np.nan)
    if not n:
        return t_dec, u_dec
    f = tfidf.fitted
    dec = f["types"].decision_function(f["vectorizer"].transform(list(texts)))
    for j, t in enumerate(f["type_classes"]):
        t_dec[:, types.index(t)] = dec[:, j]
    if unfair is not None:
        g = unfair.fitted
        xu = g["vectorizer"].transform(list(texts))
        by_code = tax.by_claudette()
        for code in g["codes"]:
            u_dec[:, types.index(by_code[code].id)] = g["models"][code].decision_function(xu)
    return t_dec, u_dec


# -- mixing and deciding ------------------------------------------------------------------------

def mix(cfg: EnsembleConfig, labels, scores: Scores) -> dict[str, torch.Tensor]:
    """The ensemble's head probabilities (same keys and shapes as the reviewer's)."""
    p_rev = scores.reviewer["clause_type"].double().numpy()
    out = np.zeros_like(p_rev)
    for j, t in enumerate(labels.clause_type):
        r = cfg.types[t]
        p = r.reviewer * p_rev[:, j]
        if r.tfidf > 0:
            p = p + r.tfidf * r.tfidf_platt(scores.tfidf[:, j])
        if r.unfair_tos > 0:
            p = p + r.unfair_tos * r.unfair_tos_platt(scores.unfair_tos[:, j])
        out[:, j] = p
    return {"clause_type": torch.from_numpy(out).float(), "party": scores.reviewer["party"].float(),
            "risk": scores.reviewer["risk"].float()}


def decide(cfg: EnsembleConfig, labels, scores: Scores, tax: Taxonomy | None = None) -> list[ClausePrediction]:
    """Predictions from component scores: the reviewer's decision on the mixed probabilities."""
    from contract_review.reviewer.decisions import answers_from_probs

    thresholds = [cfg.types[t].threshold for t in labels.clause_type]
    return [ClausePrediction(answer=a, confidence=round(c, 4), scores=s)
            for a, c, s in answers_from_probs(mix(cfg, labels, scores), labels, thresholds, tax, cfg.risk.rule)]


class EnsemblePredictor:
    """`contract_review.predictor.Predictor`: the reviewer and the TF-IDF models, mixed by an ensemble file."""

    name = SPEC

    def __init__(self, reviewer, tfidf, unfair, cfg: EnsembleConfig, reviewer_print: Fingerprint,
                 source: str = ENSEMBLE_FILE):
        check_components(cfg, source, reviewer_print, reviewer.labels, tfidf_fingerprint(tfidf),
                         unfair_fingerprint(unfair) if unfair is not None else None)
        self.reviewer, self.tfidf, self.unfair, self.cfg = reviewer, tfidf, unfair, cfg
        self.tax = load_taxonomy()
        self.model_version = f"ensemble:{reviewer.model_version}+{tfidf.model_version}" + (
            f"+{unfair.model_version}" if unfair is not None else "")

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        from contract_review.prompt import build_input
        from contract_review.training.reviewer_model import predict_probs

        if not clauses:
            return []
        r = self.reviewer
        probs = predict_probs(r.model, r.tokenizer, [build_input(c.text, c.party_names) for c in clauses],
                              r.max_length, r.tokens_per_batch, r.autocast, progress)
        t_dec, u_dec = baseline_scores([c.text for c in clauses], r.labels, self.tfidf, self.unfair, self.tax)
        return decide(self.cfg, r.labels, Scores(probs, t_dec, u_dec), self.tax)


def load_ensemble_predictor(adapter_dir: str | Path | None = None, config: str | Path | None = None,
                            tfidf_train: str | Path | None = None, claudette_root: str | Path | None = None,
                            progress: bool = True) -> EnsemblePredictor:
    """The ensemble of a reviewer adapter folder (default: the shipped one) and its `ensemble.json`
    (or `config`), with the cached TF-IDF fit of `tfidf_train` (default: the shipped train split)
    and LexGLUE's SVM fit on the train companies of `claudette_root` (default: the shipped corpus)."""
    from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR, load_reviewer_predictor, read_meta
    from contract_review.training.reviewer_model import Labels

    from contract_review.reviewer.tfidf import load_tfidf, load_unfair_tos_tfidf

    adapter_dir = Path(adapter_dir or DEFAULT_ADAPTER_DIR)
    path = Path(config) if config else adapter_dir / ENSEMBLE_FILE
    cfg = read_config(path)  # a bad file fails before any model is loaded
    tfidf = load_tfidf(tfidf_train, progress=progress)
    unfair = None
    if cfg.unfair_tos is not None:
        if claudette_root is None:
            from contract_review.annotation.corpora import shipped_corpus

            claudette_root = shipped_corpus("unfair-tos")
        unfair = load_unfair_tos_tfidf(claudette_root, progress=progress)
    # a mismatch fails here, before the reviewer's seconds of loading
    meta = read_meta(adapter_dir)
    labels = Labels.from_meta(meta)
    fingerprint = reviewer_fingerprint(adapter_dir)
    check_components(cfg, str(path), fingerprint, labels, tfidf_fingerprint(tfidf),
                     unfair_fingerprint(unfair) if unfair is not None else None)
    reviewer = load_reviewer_predictor(adapter_dir)
    return EnsemblePredictor(reviewer, tfidf, unfair, cfg, fingerprint, source=str(path))


# -- tuning on validation ---------------------------------------------------------------------

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
    risk_rules: tuple[str, ...] = ("mixed", "highest", "types", "head")
    # what a CLAUDETTE-mapped type is tuned for: its presence ("type") or, on CLAUDETTE clauses, its
    # presence at a level LexGLUE counts as unfair ("unfair"; 0 to 1.3 points of cross-fit m-F1 better
    # on the three adapters)
    claudette_target: Literal["type", "unfair"] = "unfair"

    def __post_init__(self):
        if self.min_positives < 1:
            raise ValueError(f"min_positives must be at least 1, got {self.min_positives}")
        if not 0 < self.weight_step <= 1 or abs(round(1 / self.weight_step) * self.weight_step - 1) > 1e-9:
            raise ValueError(f"weight_step must divide 1 (0.1, 0.25, 0.5), got {self.weight_step}")
        from contract_review.reviewer.decisions import RISK_RULES

        unknown = set(self.risk_rules) - set(RISK_RULES)
        if unknown or not self.risk_rules:
            raise ValueError(f"risk_rules: unknown {sorted(unknown)}; use some of {', '.join(RISK_RULES)}")


def targets(items: Sequence[EvalItem], labels, tax: Taxonomy, claudette_target: str = "unfair") -> np.ndarray:
    """(N, T) 0/1 tuning targets: the gold types; for a CLAUDETTE clause and a CLAUDETTE-mapped type
    under "unfair", the type only when the clause is unfair for its category (what LexGLUE scores)."""
    index = {t: j for j, t in enumerate(labels.clause_type)}
    mapped = {ct.id: code for code, ct in tax.by_claudette().items()}
    y = np.zeros((len(items), len(index)), dtype=bool)
    for i, it in enumerate(items):
        for t in it.clause_types:
            if claudette_target == "unfair" and it.unfair is not None and t in mapped and mapped[t] not in it.unfair:
                continue
            y[i, index[t]] = True
    return y


def fit_platt(d: np.ndarray, y: np.ndarray) -> Platt | None:
    """Logistic fit of y on decision values d (mild L2: a type with few positives still gets a sane slope)."""
    from sklearn.linear_model import LogisticRegression

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


def tune_types(scores: Scores, y: np.ndarray, labels, settings: TuneSettings) -> dict[str, TypeRule]:
    """Per type: Platt calibration, mixing weights and threshold maximising the type's F1 on `y`."""
    from contract_review.training.reviewer_model import best_threshold, f1_by_threshold

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
    """The issue's two targets, by the eval package's definitions: risk F1 on CUAD clauses and the
    8-category UNFAIR-ToS macro-F1 on CLAUDETTE sentences."""
    from .metrics import decisions, point_metrics

    out = {}
    for source, key in (("cuad", "risk.f1"), ("claudette", "unfair_tos.macro_f1_8")):
        idx = [i for i, it in enumerate(items) if it.source == source]
        if idx:
            out[f"{source}/{key}"] = point_metrics(decisions([items[i] for i in idx], [preds[i] for i in idx], tax))[key]
    return out


def tune(scores: Scores, items: Sequence[EvalItem], labels, fingerprints: dict[str, Fingerprint | None],
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
    best, best_value, tried = None, -1.0, []
    for rule in settings.risk_rules:
        cfg = _config(fingerprints, rules, RiskRule(rule=rule), {})
        m = target_metrics(items, decide(cfg, labels, scores, tax), tax)
        # the two targets weigh the same: their mean decides
        value = float(np.mean([v for v in m.values() if v is not None])) if m else 0.0
        tried.append({"rule": rule, **{k: round(v, 4) for k, v in m.items() if v is not None}})
        if value > best_value + 1e-9:
            best, best_value = cfg.risk, value
    tuned = {"split": "validation", "records": len(items), "sources_considered": considered,
             "settings": _plain(settings.__dict__), "risk_choices": tried, **(provenance or {})}
    return _config(fingerprints, rules, best, tuned)


def _config(fingerprints, rules, risk, tuned) -> EnsembleConfig:
    return EnsembleConfig(format=FORMAT, reviewer=fingerprints["reviewer"], tfidf=fingerprints["tfidf"],
                          unfair_tos=fingerprints.get("unfair_tos"), types=rules, risk=risk, tuned=tuned)


def crossfit(scores: Scores, items: Sequence[EvalItem], labels, fingerprints, settings: TuneSettings | None = None,
             folds: int = 5, seed: int = 0, tax: Taxonomy | None = None) -> list[ClausePrediction]:
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
        for i, p in zip(held, decide(cfg, labels, scores.take(held), tax)):
            preds[i] = p
    return preds  # type: ignore[return-value]


# -- reading precomputed reviewer probabilities -------------------------------------------------

def read_probs(path: str | Path, name: str | None = None) -> dict[str, dict]:
    """{split: {"ids", "clause_type", "party", "risk"}} from a file of `bench/training/reviewer_probs.py`,
    or one entry of a {name: {split: ...}} file."""
    if not Path(path).exists():
        raise EnsembleError(f"{path}: no such file; write it with bench/training/reviewer_probs.py ADAPTER_DIR {path}")
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
        missing = {"ids", "clause_type", "party", "risk"} - set(part)
        if missing:
            raise EnsembleError(f"{path}: split {split} lacks {', '.join(sorted(missing))}")
    return raw


def split_scores(probs: dict, items: Sequence[EvalItem], labels, tfidf, unfair, tax: Taxonomy) -> Scores:
    """Scores of a split's items: the reviewer's rows from `probs` (checked against the items' ids)."""
    ids = list(probs["ids"])
    if ids != [it.id for it in items]:
        raise EnsembleError(f"the probabilities' {len(ids)} record ids are not the split file's {len(items)} in "
                            "order; recompute them with bench/training/reviewer_probs.py on this dataset")
    for key, n in labels.sizes().items():
        if probs[key].shape[1] != n:
            raise EnsembleError(f"probabilities of {key} have {probs[key].shape[1]} columns, the reviewer {n}")
    reviewer = {k: probs[k].float() for k in ("clause_type", "party", "risk")}
    t, u = baseline_scores([it.text for it in items], labels, tfidf, unfair, tax)
    return Scores(reviewer, t, u)


# -- the command line ---------------------------------------------------------------------------

def _setup(args) -> tuple:
    from contract_review.paths import DATASET_DIR
    from contract_review.records import find_split_file
    from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR, read_meta
    from contract_review.training.reviewer_model import Labels

    from contract_review.reviewer.tfidf import load_tfidf, load_unfair_tos_tfidf
    from .items import load_items

    tax = load_taxonomy()
    adapter = Path(args.adapter or DEFAULT_ADAPTER_DIR)
    meta = read_meta(adapter)
    labels = Labels.from_meta(meta)
    probs = read_probs(args.probs, args.name)
    tfidf = load_tfidf(args.tfidf_train)
    from contract_review.annotation.corpora import shipped_corpus

    unfair = None if args.no_unfair_tos else load_unfair_tos_tfidf(args.claudette or shipped_corpus("unfair-tos"))
    data = Path(args.data or DATASET_DIR)
    splits = {}
    for split in ("validation", "test"):
        if split in probs:
            items = load_items(find_split_file(data, split))
            splits[split] = (items, split_scores(probs[split], items, labels, tfidf, unfair, tax))
    if "validation" not in splits:
        raise EnsembleError(f"{args.probs}: no validation split; tuning and cross-fitting need it")
    fingerprints = {"reviewer": reviewer_fingerprint(adapter), "tfidf": tfidf_fingerprint(tfidf),
                    "unfair_tos": unfair_fingerprint(unfair) if unfair is not None else None}
    return tax, meta, labels, tfidf, unfair, splits, fingerprints


def _tune(args) -> int:
    tax, meta, labels, _, _, splits, prints = _setup(args)
    items, scores = splits["validation"]
    settings = TuneSettings(min_positives=args.min_positives, claudette_target=args.claudette_target)
    cfg = tune(scores, items, labels, prints, settings, tax,
               provenance={"probs": str(args.probs), "name": args.name})
    write_config(cfg, args.out)
    chosen = sum(r.chosen == "type" for r in cfg.types.values())
    print(f"wrote {args.out}: {chosen} types tuned on their own, {len(cfg.types) - chosen} global; risk rule "
          f"{cfg.risk.rule}", file=sys.stderr)
    return 0


def _report(args) -> int:
    """Reviewer alone, TF-IDF alone and the ensemble on every split and source, by `eval.runner.score`
    (the code path of `contract-review eval`, bootstrap intervals by document included), and the
    ensemble's paired difference from the reviewer (`eval compare`'s bootstrap)."""
    from contract_review.reviewer.decisions import answers_from_probs

    from .bootstrap import paired_intervals
    from .metrics import count_tables, decisions
    from .runner import RunResult, score

    tax, meta, labels, tfidf, unfair, splits, prints = _setup(args)
    cfg = read_config(args.config) if args.config else None
    if cfg is not None:
        check_components(cfg, args.config, prints["reviewer"], labels, prints["tfidf"], prints["unfair_tos"])
    rows, diffs = [], []
    for split, (items, scores) in splits.items():
        inputs = [it.clause_input() for it in items]
        runs = {"reviewer": [ClausePrediction(answer=a, confidence=round(c, 4), scores=s) for a, c, s in
                             answers_from_probs(scores.reviewer, labels, meta.get("thresholds") or
                                                [0.5] * len(labels.clause_type), tax, meta.get("risk_rule", "head"))],
                "tfidf": tfidf.predict(inputs)}
        if unfair is not None:
            runs["tfidf-unfair-tos"] = unfair.predict(inputs)
        if cfg is not None:
            runs["ensemble"] = decide(cfg, labels, scores, tax)
        if split == "validation" and args.crossfit:
            settings = TuneSettings(min_positives=args.min_positives, claudette_target=args.claudette_target)
            runs[f"ensemble, {args.crossfit}-fold cross-fit"] = crossfit(scores, items, labels, prints, settings,
                                                                         args.crossfit, tax=tax)
        for name, preds in runs.items():
            for source in sorted({it.source for it in items}):
                idx = [i for i, it in enumerate(items) if it.source == source]
                if name == "tfidf-unfair-tos" and source != "claudette":
                    continue
                run = RunResult(name, name, [items[i] for i in idx], [preds[i] for i in idx])
                m = score(run, {"split": split, "source": source}, resamples=args.resamples)
                rows.append({"split": f"{source}/{split}", "model": name, "records": len(idx),
                             **{k: m[k] for k in REPORT_KEYS}})
                if name.startswith("ensemble"):
                    sub = [items[i] for i in idx]
                    pair = paired_intervals(count_tables(decisions(sub, run.preds, tax)),
                                            count_tables(decisions(sub, [runs["reviewer"][i] for i in idx], tax)),
                                            [it.doc_id for it in sub], args.resamples)
                    diffs.append({"split": f"{source}/{split}", "model": f"{name} - reviewer", "records": len(idx),
                                  **{k: {"value": pair[k]["diff"], "ci": pair[k]["ci"]} for k in REPORT_KEYS}})
    print(format_report(rows))
    print("\nPaired differences (same document resamples for both):\n")
    print(format_report(diffs))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "paired": diffs}, indent=1) + "\n", encoding="utf-8")
    return 0


REPORT_KEYS = ("risk.f1", "risk.precision", "risk.recall", "unfair_tos.macro_f1_8", "clause_type.macro_f1")


def format_report(rows: list[dict]) -> str:
    def cell(m):
        if m["value"] is None:
            return "-"
        ci = m["ci"]
        return f"{100 * m['value']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")

    lines = ["| split (records) | model | " + " | ".join(REPORT_KEYS) + " |", "|---" * (len(REPORT_KEYS) + 2) + "|"]
    for r in rows:
        lines.append(f"| {r['split']} ({r['records']}) | {r['model']} | " + " | ".join(cell(r[k]) for k in REPORT_KEYS)
                     + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contract_review.eval.ensemble", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for cmd, help_ in (("tune", "choose the ensemble on the validation split; write the ensemble file"),
                       ("report", "reviewer, TF-IDF and ensemble figures on every split in the probabilities")):
        p = sub.add_parser(cmd, help=help_)
        p.add_argument("--probs", required=True, metavar="PROBS.pt",
                       help="reviewer head probabilities (bench/training/reviewer_probs.py)")
        p.add_argument("--name", help="the adapter's entry when PROBS.pt holds several ({name: {split: ...}})")
        p.add_argument("--adapter", metavar="DIR", help="the adapter the probabilities came from (default: shipped)")
        p.add_argument("--data", metavar="DIR", help="dataset folder with validation/test files (default data/dataset)")
        p.add_argument("--tfidf-train", metavar="FILE", help="train file of the TF-IDF model (default: shipped)")
        p.add_argument("--claudette", metavar="DIR", help="CLAUDETTE layout for LexGLUE's SVM (default: shipped)")
        p.add_argument("--no-unfair-tos", action="store_true", help="mix without LexGLUE's per-category SVM")
        p.add_argument("--min-positives", type=int, default=TuneSettings.min_positives,
                       help="validation positives a type needs for its own weights and threshold "
                            f"(default {TuneSettings.min_positives})")
        p.add_argument("--claudette-target", choices=("type", "unfair"), default=TuneSettings.claudette_target,
                       help="what CLAUDETTE-mapped types are tuned for (default unfair)")
        if cmd == "tune":
            p.add_argument("--out", required=True, metavar="FILE", help="ensemble file to write")
        else:
            p.add_argument("--config", metavar="FILE", help="an ensemble file to score (tuned on these probabilities)")
            p.add_argument("--crossfit", type=int, default=5, metavar="K",
                           help="also score a K-fold by-document cross-fit on validation (0: no; default 5)")
            p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
            p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    return run(_tune if args.command == "tune" else _report, args)


if __name__ == "__main__":
    sys.exit(main())
