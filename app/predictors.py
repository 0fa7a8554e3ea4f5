"""Which model labels the clauses: the choice a user makes, and loading it once.

    ModelChoice("default")                          SmolLM2-135M + the shipped reviewer adapter, mixed per
                                                    clause type with TF-IDF by its ensemble.json (CPU)
    ModelChoice("reviewer")                         the same reviewer's heads alone (no TF-IDF)
    ModelChoice("default", adapter="runs/x/adapter") the default base model with another adapter (its
                                                    ensemble.json when it has one, else its heads alone)
    ModelChoice("/models/llama-3b", adapter="DIR")   a local base model folder + a reviewer adapter
    ModelChoice("rules")                            `annotation.rule_predictor.RulePredictor` (no model)

The default mixes in TF-IDF because that scores better on validation (CUAD risk F1 58.2 vs 55.9,
CLAUDETTE 8-category macro-F1 71.2 vs 61.8; reviewer/ensemble.py); the TF-IDF models are fit once on
the shipped train split (~1 min on two cores) and cached. Loading takes seconds, so predictors are
cached per choice: every review in a server
process shares one loaded model. A choice that cannot be loaded raises `ModelUnavailable`
saying what is missing and how to get it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from contract_review.predictor import Predictor

GET_REVIEWER = ("train it with `contract-review train --config configs/smollm2-135m_reviewer_cpu.yaml` "
                "(or restore data/model/reviewer/ from the repository), or review with `--model rules` meanwhile")


class ModelUnavailable(ValueError):
    """The chosen model cannot be loaded; the message names the fix."""


@dataclass(frozen=True)
class ModelChoice:
    model: str = "default"  # "default" | "reviewer" | "rules" | a local base model folder
    adapter: str | None = None  # a reviewer adapter folder (None: the shipped one)

    @classmethod
    def parse(cls, model: str | None, adapter: str | None = None) -> "ModelChoice":
        model = (model or "default").strip()
        adapter = (adapter or "").strip() or None
        if model == "rules" and adapter:
            raise ModelUnavailable("the rules predictor takes no adapter; drop --adapter or choose a model")
        if model not in ("default", "reviewer", "rules"):
            path = Path(model).expanduser()
            if not path.is_dir():
                raise ModelUnavailable(f"{model}: no such base model folder; give 'default', 'reviewer', 'rules' "
                                       "or a folder written by save_pretrained")
            if not adapter:
                raise ModelUnavailable(f"a local base model ({model}) needs its reviewer adapter: add --adapter DIR")
            model = str(path.resolve())
        if adapter:
            adir = Path(adapter).expanduser()
            if not adir.is_dir():
                raise ModelUnavailable(f"{adapter}: no such adapter folder")
            adapter = str(adir.resolve())
        return cls(model, adapter)

    def describe(self) -> str:
        if self.model == "rules":
            return "rules (no model)"
        base = "SmolLM2-135M (CPU default)" if self.model in ("default", "reviewer") else self.model
        text = f"{base} + {'shipped reviewer adapter' if not self.adapter else self.adapter}"
        return text + (" mixed with TF-IDF" if self.uses_ensemble() else "")

    def adapter_dir(self) -> Path | None:
        if self.adapter:
            return Path(self.adapter)
        try:
            from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR
        except ImportError:
            return None
        return Path(DEFAULT_ADAPTER_DIR)

    def uses_ensemble(self) -> bool:
        """The default on the default base mixes in TF-IDF when the adapter folder has an ensemble.json."""
        if self.model != "default":
            return False
        from contract_review.reviewer.ensemble import ENSEMBLE_FILE

        folder = self.adapter_dir()
        return folder is not None and (folder / ENSEMBLE_FILE).exists()


_cache: dict[ModelChoice, Predictor] = {}
_lock = threading.Lock()


def load_predictor(choice: ModelChoice) -> Predictor:
    """The predictor for `choice`, loaded once per process (thread-safe: concurrent reviews wait)."""
    with _lock:
        if choice not in _cache:
            _cache[choice] = _load(choice)
        return _cache[choice]


def _load(choice: ModelChoice) -> Predictor:
    if choice.model == "rules":
        from contract_review.annotation.rule_predictor import RulePredictor

        return RulePredictor()
    try:
        from contract_review.reviewer import heads as reviewer_model
    except ImportError as exc:
        raise ModelUnavailable(f"the reviewer model code is not installed ({exc}); {GET_REVIEWER}") from None
    if choice.uses_ensemble():
        from contract_review.reviewer.ensemble import EnsembleError, load_ensemble_predictor

        try:
            return load_ensemble_predictor(choice.adapter)
        except (EnsembleError, reviewer_model.ReviewerError, FileNotFoundError, OSError) as exc:
            raise ModelUnavailable(f"the default model (reviewer mixed with TF-IDF) could not be loaded: {exc}; "
                                   "`--model reviewer` uses the reviewer's heads alone") from None
    try:
        if choice.model in ("default", "reviewer"):
            return reviewer_model.load_reviewer_predictor(choice.adapter)
        return reviewer_model.load_reviewer_predictor(choice.adapter, base_model=choice.model)
    except (reviewer_model.ReviewerError, FileNotFoundError, OSError) as exc:
        hint = GET_REVIEWER if "contract-review train" not in str(exc) else "or review with `--model rules` meanwhile"
        raise ModelUnavailable(f"the reviewer model could not be loaded: {exc}; {hint}") from None
    except ValueError as exc:  # training.models.ModelError and transformers' config errors
        raise ModelUnavailable(f"the model could not be loaded: {exc}") from None


def default_available() -> bool:
    """Whether the shipped reviewer adapter is present (loading it may still fetch the base model)."""
    try:
        from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR, is_reviewer_folder
    except ImportError:
        return False
    return is_reviewer_folder(DEFAULT_ADAPTER_DIR)
