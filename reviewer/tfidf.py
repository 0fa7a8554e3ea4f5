"""The classic baselines as predictors: TF-IDF features and linear classifiers.

As in LexGLUE's TF-IDF + SVM baseline (word n-grams, TF-IDF weighting, one-vs-rest
LinearSVC), fit on the shipped train split: clause types multi-label (one-vs-rest; no type
above 0 means `other`), obligated party and severity (`risk`) single-label; it predicts no bearer (its answers leave
`risk_to` unsaid, and directional risk counts them as wrong). Risk category and
reason come from the taxonomy row of the top predicted type, by the reviewer's own rule
(`decisions.answer_from_types`).
Decision values are squashed into scores (sigmoid for types, softmax for party and risk):
they rank clauses for precision-recall curves but are not calibrated probabilities.

The fitted model is cached under the cache directory, keyed by the train file's hash and
the settings, so later runs load it in a second.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC
from tqdm import tqdm

from contract_review.annotation import claudette
from contract_review.paths import DATASET_DIR, cache_dir
from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.records import find_split_file, read_records
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .decisions import answer_from_types


SETTINGS = {"ngram_range": (1, 2), "min_df": 3, "max_features": 200_000, "sublinear_tf": True, "C": 0.5,
            "version": 1}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class TfidfPredictor:
    """`Predictor` over fitted TF-IDF + LinearSVC models."""

    name = "tfidf"

    def __init__(self, fitted: dict, tax: Taxonomy | None = None):
        self.fitted = fitted
        self.tax = tax or load_taxonomy()
        self.model_version = f"tfidf-linearsvc-{fitted['train_sha'][:10]}"

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        f = self.fitted
        out: list[ClausePrediction] = []
        chunk = 512
        with tqdm(total=len(clauses), desc="tfidf", unit="clause", disable=not progress) as bar:
            for s in range(0, len(clauses), chunk):
                part = clauses[s : s + chunk]
                x = f["vectorizer"].transform([c.text for c in part])
                t_dec = f["types"].decision_function(x)
                p_prob = _softmax(f["party"].decision_function(x))
                r_prob = _softmax(f["risk"].decision_function(x))
                t_prob = 1 / (1 + np.exp(-t_dec))
                for i in range(len(part)):
                    type_scores = {t: round(float(t_prob[i, j]), 4) for j, t in enumerate(f["type_classes"])}
                    chosen = [t for j, t in enumerate(f["type_classes"]) if t_dec[i, j] > 0]
                    party = f["party"].classes_[int(p_prob[i].argmax())]
                    risk = f["risk"].classes_[int(r_prob[i].argmax())]
                    answer = answer_from_types(chosen, risk, party, self.tax, type_scores)
                    risk_scores = {str(c): round(float(r_prob[i, j]), 4) for j, c in enumerate(f["risk"].classes_)}
                    p_pos = sum(v for k, v in risk_scores.items() if self.tax.is_risk_clause(k))
                    out.append(ClausePrediction(
                        answer=answer,
                        confidence=round(p_pos if self.tax.is_risk_clause(risk) else 1 - p_pos, 4),
                        scores={"clause_type": type_scores,
                                "party": {str(c): round(float(p_prob[i, j]), 4)
                                          for j, c in enumerate(f["party"].classes_)},
                                "risk": risk_scores},
                    ))
                bar.update(len(part))
        return out


def fit_tfidf(train_file: str | Path, tax: Taxonomy | None = None, progress: bool = True) -> dict:
    tax = tax or load_taxonomy()
    records = read_records(train_file)
    texts = [r.text for r in records]
    t0 = time.perf_counter()
    if progress:
        print(f"fitting the TF-IDF baseline on {len(records):,} train records of {train_file} ...", file=sys.stderr)
    vec = TfidfVectorizer(ngram_range=SETTINGS["ngram_range"], min_df=SETTINGS["min_df"],
                          max_features=SETTINGS["max_features"], sublinear_tf=SETTINGS["sublinear_tf"],
                          strip_accents="unicode", lowercase=True, dtype=np.float32)
    x = vec.fit_transform(texts)
    # only types seen in training get a classifier; the others are never predicted
    classes = [t for t in tax.clause_type_ids if any(t in r.clause_types for r in records)]
    mlb = MultiLabelBinarizer(classes=classes)
    y_types = mlb.fit_transform([[t for t in r.clause_types if t in classes] for r in records])
    C = SETTINGS["C"]
    # liblinear stops at its iteration cap on a few rare types; the fit is still usable
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    types = OneVsRestClassifier(LinearSVC(C=C, class_weight="balanced"), n_jobs=-1).fit(x, y_types)
    party = LinearSVC(C=C, class_weight="balanced").fit(x, [r.party for r in records])
    risk = LinearSVC(C=C, class_weight="balanced").fit(x, [r.risk for r in records])
    if progress:
        print(f"fitted in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {"vectorizer": vec, "types": types, "type_classes": classes, "party": party, "risk": risk,
            "train_sha": _sha(train_file), "settings": SETTINGS, "n_train": len(records)}


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_tfidf(train_file: str | Path | None = None, progress: bool = True) -> TfidfPredictor:
    """The TF-IDF baseline fit on `train_file` (default: the shipped train split), from the cache
    when it was fit before with the same file and settings."""
    train_file = Path(train_file) if train_file else find_split_file(DATASET_DIR, "train")
    if not train_file.exists():
        raise FileNotFoundError(f"{train_file}: train file for the tfidf baseline not found")
    where = hashlib.sha256(str(train_file.resolve()).encode()).hexdigest()[:8]
    key = hashlib.sha256((_sha(train_file) + repr(sorted(SETTINGS.items()))).encode()).hexdigest()[:16]
    path = cache_dir() / "eval" / f"tfidf-{where}-{key}.pkl"
    if path.exists():
        with open(path, "rb") as fh:
            return TfidfPredictor(pickle.load(fh))
    fitted = fit_tfidf(train_file, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump(fitted, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    for stale in path.parent.glob(f"tfidf-{where}-*.pkl"):  # older fits of this file (it was rebuilt)
        if stale != path:
            stale.unlink(missing_ok=True)
    return TfidfPredictor(fitted)


# -- LexGLUE's UNFAIR-ToS baseline: TF-IDF + one LinearSVC per unfair category -------------------

UNFAIR_SETTINGS = {"ngram_range": (1, 3), "sublinear_tf": True, "C": 1.0, "class_weight": "balanced",
                   "version": 1}


class UnfairTosTfidfPredictor:
    """The classic LexGLUE UNFAIR-ToS baseline as a `Predictor`: TF-IDF word 1-3-grams and one
    one-vs-rest LinearSVC per CLAUDETTE category, fit on the sentences of LexGLUE's train
    companies with their own per-category labels. It only knows the 8 unfair categories, so it
    answers with the mapped clause type(s) at medium risk, or `other` at no risk; its figures on
    anything but a CLAUDETTE split mean nothing and `eval` offers it only with `--claudette`."""

    name = "tfidf-unfair-tos"

    def __init__(self, fitted: dict, tax: Taxonomy | None = None):
        self.fitted = fitted
        self.tax = tax or load_taxonomy()
        self.model_version = f"tfidf-unfair-tos-{fitted['corpus_sha'][:10]}"

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        f = self.fitted
        by_code = self.tax.by_claudette()
        if not clauses:
            return []
        x = f["vectorizer"].transform([c.text for c in clauses])
        dec = np.stack([f["models"][code].decision_function(x) for code in f["codes"]], axis=1)
        out = []
        for i in range(len(clauses)):
            codes = [code for j, code in enumerate(f["codes"]) if dec[i, j] > 0]
            types = [by_code[c].id for c in codes] or ["other"]
            risk = "medium" if codes else "none"
            scores = {by_code[c].id: round(float(1 / (1 + np.exp(-dec[i, j]))), 4) for j, c in enumerate(f["codes"])}
            p_unfair = max(scores.values())
            # an unfair Terms-of-Service term weighs on the user, as the dataset's labels say
            answer = answer_from_types(types, risk, "none", self.tax, scores, risk_to=self.tax.terms_of_service_bearer)
            out.append(ClausePrediction(answer=answer,
                                        confidence=round(p_unfair if codes else 1 - p_unfair, 4),
                                        scores={"clause_type": scores}))
        return out


def fit_unfair_tos_tfidf(root: str | Path, progress: bool = True) -> dict:
    """Fit on the sentences of LexGLUE's train companies found in a CLAUDETTE layout folder."""
    root = Path(root)
    texts, labels = [], []
    for company in claudette.companies(root):
        if claudette.lexglue_split(company) == "train":
            for s in claudette.read_company(root, company).sentences:
                texts.append(s.text)
                labels.append(set(s.labels))
    if not texts:
        raise FileNotFoundError(f"{root}: no company of LexGLUE's train split; the UNFAIR-ToS baseline cannot be fit")
    t0 = time.perf_counter()
    s = UNFAIR_SETTINGS
    vec = TfidfVectorizer(ngram_range=s["ngram_range"], sublinear_tf=s["sublinear_tf"], strip_accents="unicode",
                          lowercase=True, dtype=np.float32)
    x = vec.fit_transform(texts)
    codes = [c for c in load_taxonomy().claudette_codes if any(c in y for y in labels)]
    models = {c: LinearSVC(C=s["C"], class_weight=s["class_weight"]).fit(x, [c in y for y in labels])
              for c in codes}
    if progress:
        print(f"fitted the UNFAIR-ToS TF-IDF baseline on {len(texts):,} sentences in "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return {"vectorizer": vec, "models": models, "codes": codes, "corpus_sha": digest, "settings": s,
            "n_train": len(texts)}


def load_unfair_tos_tfidf(root: str | Path, progress: bool = True) -> UnfairTosTfidfPredictor:
    """Fit every time (a few seconds): the corpus folder is the cache key's only sure source."""
    return UnfairTosTfidfPredictor(fit_unfair_tos_tfidf(root, progress=progress))
