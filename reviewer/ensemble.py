"""The served model's mix: the reviewer's heads and the TF-IDF baselines, per clause type.

The reviewer (a fine-tuned 135M model) and the TF-IDF + LinearSVC baselines (exact word
n-grams) make different mistakes: on CUAD the reviewer only ties TF-IDF, on CLAUDETTE it is
below LexGLUE's per-category SVM. Per clause type t the ensemble's probability is

    p_t = w_r * p_reviewer_t + w_f * platt_f(d_tfidf_t) + w_u * platt_u(d_unfair_t)

- p_reviewer: the reviewer's clause-type sigmoid (`heads.ReviewerPredictor.head_probs`);
- d_tfidf: the joint TF-IDF baseline's decision value for t (`tfidf.load_tfidf`);
- d_unfair: LexGLUE's per-category SVM (`tfidf.load_unfair_tos_tfidf`), for the 8
  CLAUDETTE-mapped types only;
- platt(d) = sigmoid(a * d + b): SVM margins are not probabilities; a logistic fit on
  validation puts them on a probability scale before averaging.

Party, bearer (risk_to) and severity probabilities are the reviewer's heads. Then the reviewer's own decision
(`decisions.answers_from_probs`) with the ensemble's per-type thresholds and risk rule, so
types, party, risk, category and reason are decided exactly as the reviewer decides them.

This module reads the mix's file (`data/model/reviewer/ensemble.json`, beside the adapter it was
tuned with) and runs it; choosing its numbers on validation is evaluation's job
(`contract-review eval tune-ensemble`, eval/ensemble_tune.py). The file names the reviewer heads
and the TF-IDF fits it was tuned with; a mismatch is an error, never a silent mix of other
models' scores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract_review.annotation.corpora import shipped_corpus
from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.taxonomy import Taxonomy, load_taxonomy
from contract_review.training.reviewer_model import HEADS_FILE, Labels

from .decisions import BEARER_CONFIDENT, RISK_RULES, answers_from_probs
from .heads import ReviewerPredictor, load_reviewer_predictor, read_meta
from .shipped import DEFAULT_ADAPTER_DIR, ENSEMBLE_FILE
from .tfidf import TfidfPredictor, UnfairTosTfidfPredictor, load_tfidf, load_unfair_tos_tfidf

FORMAT = "contract-review-ensemble/1"
SPEC = "ensemble"
RETUNE = "re-tune it: contract-review eval tune-ensemble --probs PROBS.pt --adapter ADAPTER_DIR --out FILE"


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

    rule: Literal[RISK_RULES]
    # rule criteria only: the bearer head's probability at which it replaces the bearer found in the text
    # (None: never, except where the text gives none); chosen with the rule on validation
    bearer_confident: float | None = Field(default=BEARER_CONFIDENT, gt=0.0, le=1.0)


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


# -- fingerprints of the components -----------------------------------------------------------

def _plain(settings: dict) -> dict:
    return json.loads(json.dumps(settings))  # tuples become lists, as in the JSON file


def reviewer_fingerprint(adapter_dir: str | Path) -> Fingerprint:
    meta = read_meta(adapter_dir)
    sha = hashlib.sha256((Path(adapter_dir) / HEADS_FILE).read_bytes()).hexdigest()[:16]
    return Fingerprint(model_version=str(meta.get("model_version", "reviewer")), sha=sha)


def tfidf_fingerprint(tfidf: TfidfPredictor) -> Fingerprint:
    f = tfidf.fitted
    return Fingerprint(model_version=tfidf.model_version, sha=f["train_sha"], settings=_plain(f["settings"]))


def unfair_fingerprint(unfair: UnfairTosTfidfPredictor) -> Fingerprint:
    f = unfair.fitted
    return Fingerprint(model_version=unfair.model_version, sha=f["corpus_sha"], settings=_plain(f["settings"]))


def check_components(cfg: EnsembleConfig, source: str, reviewer: Fingerprint, labels: Labels, tfidf: Fingerprint,
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

    reviewer: dict[str, torch.Tensor]  # head probabilities: clause_type (N, T), party, risk_to, severity (N, 4)
    tfidf: np.ndarray  # (N, T) decision values; NaN for a type the TF-IDF model has no classifier for
    unfair_tos: np.ndarray  # (N, T) decision values of the 8 CLAUDETTE-mapped types; NaN elsewhere

    def take(self, rows: Sequence[int]) -> "Scores":
        idx = np.asarray(rows, dtype=int)
        return Scores({k: v[torch.as_tensor(idx)] for k, v in self.reviewer.items()}, self.tfidf[idx],
                      self.unfair_tos[idx])


def baseline_scores(texts: Sequence[str], labels: Labels, tfidf: TfidfPredictor,
                    unfair: UnfairTosTfidfPredictor | None = None,
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
        if t in types:  # a reviewer trained on an older taxonomy lacks the newer types
            t_dec[:, types.index(t)] = dec[:, j]
    if unfair is not None:
        g = unfair.fitted
        xu = g["vectorizer"].transform(list(texts))
        by_code = tax.by_claudette()
        for code in g["codes"]:
            if by_code[code].id in types:
                u_dec[:, types.index(by_code[code].id)] = g["models"][code].decision_function(xu)
    return t_dec, u_dec


# -- mixing and deciding ------------------------------------------------------------------------

def mix(cfg: EnsembleConfig, labels: Labels, scores: Scores) -> dict[str, torch.Tensor]:
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
    # party, bearer and severity are the reviewer's heads
    return {"clause_type": torch.from_numpy(out).float(),
            **{k: v.float() for k, v in scores.reviewer.items() if k != "clause_type"}}


def decide(cfg: EnsembleConfig, labels: Labels, scores: Scores, tax: Taxonomy | None = None,
           with_scores: bool = True, clauses: Sequence[ClauseInput] | None = None) -> list[ClausePrediction]:
    """Predictions from component scores: the reviewer's decision on the mixed probabilities (`clauses`, the
    scored clauses in order, for a risk rule that reads their text: `criteria`)."""
    thresholds = [cfg.types[t].threshold for t in labels.clause_type]
    return [ClausePrediction(answer=a, confidence=round(c, 4), scores=s)
            for a, c, s in answers_from_probs(mix(cfg, labels, scores), labels, thresholds, tax, cfg.risk.rule,
                                              with_scores, clauses, cfg.risk.bearer_confident)]


class EnsemblePredictor:
    """`contract_review.predictor.Predictor`: the reviewer and the TF-IDF models, mixed by an ensemble file."""

    name = SPEC

    def __init__(self, reviewer: ReviewerPredictor, tfidf: TfidfPredictor, unfair: UnfairTosTfidfPredictor | None,
                 cfg: EnsembleConfig, reviewer_print: Fingerprint, source: str = ENSEMBLE_FILE):
        check_components(cfg, source, reviewer_print, reviewer.labels, tfidf_fingerprint(tfidf),
                         unfair_fingerprint(unfair) if unfair is not None else None)
        self.reviewer, self.tfidf, self.unfair, self.cfg = reviewer, tfidf, unfair, cfg
        self.tax = load_taxonomy()
        self.model_version = f"ensemble:{reviewer.model_version}+{tfidf.model_version}" + (
            f"+{unfair.model_version}" if unfair is not None else "")
        self.precision = reviewer.precision  # the TF-IDF models have none

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        if not clauses:
            return []
        labels = self.reviewer.labels
        probs = self.reviewer.head_probs(clauses, progress)
        t_dec, u_dec = baseline_scores([c.text for c in clauses], labels, self.tfidf, self.unfair, self.tax)
        return decide(self.cfg, labels, Scores(probs, t_dec, u_dec), self.tax, clauses=clauses)


def load_ensemble_predictor(adapter_dir: str | Path | None = None, config: str | Path | None = None,
                            tfidf_train: str | Path | None = None, claudette_root: str | Path | None = None,
                            progress: bool = True) -> EnsemblePredictor:
    """The ensemble of a reviewer adapter folder (default: the shipped one) and its `ensemble.json`
    (or `config`), with the cached TF-IDF fit of `tfidf_train` (default: the shipped train split)
    and LexGLUE's SVM fit on the train companies of `claudette_root` (default: the shipped corpus)."""
    adapter_dir = Path(adapter_dir or DEFAULT_ADAPTER_DIR)
    path = Path(config) if config else adapter_dir / ENSEMBLE_FILE
    cfg = read_config(path)  # a bad file fails before any model is loaded
    tfidf = load_tfidf(tfidf_train, progress=progress)
    unfair = None
    if cfg.unfair_tos is not None:
        unfair = load_unfair_tos_tfidf(claudette_root or shipped_corpus("unfair-tos"), progress=progress)
    # a mismatch fails here, before the reviewer's seconds of loading
    labels = Labels.from_meta(read_meta(adapter_dir))
    fingerprint = reviewer_fingerprint(adapter_dir)
    check_components(cfg, str(path), fingerprint, labels, tfidf_fingerprint(tfidf),
                     unfair_fingerprint(unfair) if unfair is not None else None)
    reviewer = load_reviewer_predictor(adapter_dir)
    return EnsemblePredictor(reviewer, tfidf, unfair, cfg, fingerprint, source=str(path))
