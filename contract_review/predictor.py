"""The prediction interface every model implements, what it returns, and the one way to choose a model.

Evaluation, the reviewer app and Label Studio pre-annotation all ask a `Predictor` for
labels of clauses; a model (the fine-tuned reviewer, its mix with TF-IDF, the base model
zero-shot, the TF-IDF baselines, the rule labeller) only has to turn `ClauseInput`s into
`ClausePrediction`s. A prediction whose model output could not be used carries `error`
(the `AnswerError` kind) and no answer, so callers count failures instead of guessing a label.

Every command names its model the same way (`--model NAME [--adapter DIR]`): `parse_model`
checks the choice, `load_predictor` loads it through the loader its package registered, and
`default` is the shipped served model everywhere.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from contract_review.prompt import Answer


@dataclass(frozen=True)
class ClauseInput:
    text: str
    party_names: dict[str, str] = field(default_factory=dict)
    # the other names the contract uses for each role ("Supplier", "ACME"): the `criteria` risk rule finds the
    # bearer and the criteria's facts by them; the models' prompts use party_names only
    party_aliases: dict[str, list[str]] = field(default_factory=dict)
    # a clause of a Terms of Service (the app's party finder says which): there the unfair-term types weigh on the user
    terms_of_service: bool = False


@dataclass
class ClausePrediction:
    answer: Answer | None
    confidence: float = 0.0  # probability of the predicted risk decision, 0..1
    # per label field ("clause_type", "party", "risk"): label -> probability
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    raw: str | None = None  # the model's text, when it generated one
    error: str | None = None  # "invalid_json" | "missing_key" | "unknown_label"


@runtime_checkable
class Predictor(Protocol):
    name: str  # e.g. "tfidf", "zero-shot", "reviewer"
    model_version: str  # recorded with every prediction (Label Studio, reports)

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]: ...


class PredictorError(ValueError):
    """A model choice that cannot be turned into a predictor; the message says what to give instead."""


# -- choosing a model by name: one registry for every command ---------------------------------------
#
# Core cannot import the packages that hold the models, so they register their loaders here when
# imported (reviewer/registry.py: the served model and the baselines; annotation/rule_predictor.py:
# `rules`), and contract_review/cli.py imports every package before a command runs.

DEFAULT = "default"


@dataclass(frozen=True)
class ModelSpec:
    """A model as the user names it: a registered name or a model folder (or hub name), and an
    adapter folder to put on it. `parse_model` makes one; `load_predictor` loads it."""

    model: str = DEFAULT
    adapter: str | None = None


@dataclass(frozen=True)
class LoadOptions:
    """How to load; each loader reads what applies to it."""

    decode: str = "score"  # a base model zero-shot: score the label options, or "generate" the JSON
    batch_size: int = 8  # clauses per forward pass of a zero-shot base model
    progress: bool = True  # progress bars while fitting or loading
    tfidf_train: str | None = None  # train file of the TF-IDF baseline (default: the shipped train split)
    claudette_root: str | None = None  # CLAUDETTE layout for LexGLUE's SVM (the mix defaults to the shipped one)


Loader = Callable[[ModelSpec, LoadOptions], Predictor]


@dataclass(frozen=True)
class ModelKind:
    name: str  # what the user types; "" for the loader of model folders
    summary: str  # one line for --help and error messages
    load: Loader
    adapter: bool = False  # whether it takes an adapter folder
    describe: Callable[[ModelSpec], str] | None = None  # what exactly this spec will load, for the UI and logs


_MODELS: dict[str, ModelKind] = {}
_RESERVED = ("", DEFAULT)  # never a folder, even when no package has registered `default`
_FOLDER: list[ModelKind] = []


def register_model(name: str, load: Loader, summary: str, adapter: bool = False,
                   describe: Callable[[ModelSpec], str] | None = None) -> None:
    """Make `name` a model every command can load."""
    _MODELS[name] = ModelKind(name, summary, load, adapter, describe)


def register_folder_loader(load: Loader, summary: str, describe: Callable[[ModelSpec], str] | None = None) -> None:
    """The loader of a model given as a folder (or hub name), with or without an adapter folder."""
    _FOLDER[:] = [ModelKind("", summary, load, True, describe)]


def _registered() -> list[ModelKind]:
    return sorted(_MODELS.values(), key=lambda k: k.name != DEFAULT)  # `default` first, then as registered


def model_choices() -> str:
    """The registered names and what else may be given, for help and error messages."""
    names = ", ".join(k.name for k in _registered()) or "none registered"
    return names + (", or a model folder (with --adapter DIR)" if _FOLDER else "")


def model_help(width: int = 100) -> str:
    """The registered models, one paragraph each, for a command's --help."""
    rows = [(k.name, k.summary) for k in _registered()] + [("FOLDER", k.summary) for k in _FOLDER]
    return "\n".join(textwrap.fill(summary, width, initial_indent=f"  {name:18} ", subsequent_indent=" " * 21)
                     for name, summary in rows)


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists()


def _looks_like_hub_name(model: str) -> bool:
    return model.count("/") == 1 and " " not in model  # "org/name", as the Hugging Face hub names models


def parse_model(model: str | None = DEFAULT, adapter: str | Path | None = None) -> ModelSpec:
    """A `ModelSpec` from what the user gave, checked before anything loads: a registered name, or
    an existing model folder (a hub name where the folder loader accepts one), and an existing
    adapter folder where the model takes one. Folders come back absolute, so one model is one spec."""
    model = (model or DEFAULT).strip()
    adapter = str(adapter).strip() if adapter else None
    kind = _MODELS.get(model)
    if kind is None:
        if not _FOLDER:
            raise PredictorError(f"unknown model {model!r}: choose {model_choices()}")
        if _looks_like_path(model):
            folder = Path(model).expanduser()
            if not folder.is_dir():
                raise PredictorError(f"{model}: model folder does not exist; choose {model_choices()}")
            model = str(folder.resolve())
        elif not _looks_like_hub_name(model):
            raise PredictorError(f"unknown model {model!r}: choose {model_choices()}")
    elif adapter and not kind.adapter:
        raise PredictorError(f"--model {model} takes no adapter; drop --adapter DIR or choose a model that takes "
                             f"one ({', '.join(k.name for k in _MODELS.values() if k.adapter)}, or a model folder)")
    if adapter:
        folder = Path(adapter).expanduser()
        if not folder.is_dir():
            raise PredictorError(f"{adapter}: adapter folder does not exist")
        adapter = str(folder.resolve())
    return ModelSpec(model, adapter)


def _kind(spec: ModelSpec) -> ModelKind:
    kind = _MODELS.get(spec.model) or (_FOLDER[0] if _FOLDER and spec.model not in _RESERVED else None)
    if kind is None:
        raise PredictorError(f"no model {spec.model!r} is registered: choose {model_choices()} (packages register "
                             "their models when imported; `contract_review.cli` imports them all)")
    return kind


def describe_model(spec: ModelSpec) -> str:
    """What `spec` loads, in words (the app shows it and records it with every review)."""
    kind = _kind(spec)
    if kind.describe is not None:
        return kind.describe(spec)
    return (kind.name or spec.model) + (f" + adapter {spec.adapter}" if spec.adapter else "")


def load_predictor(spec: ModelSpec, options: LoadOptions | None = None) -> Predictor:
    """The predictor of a registered model; a model that cannot be loaded raises `PredictorError`
    whose message names the model, the problem and the fix."""
    kind = _kind(spec)
    try:
        return kind.load(spec, options or LoadOptions())
    except PredictorError:
        raise
    except (ValueError, OSError) as exc:  # the loaders' errors name the file and the fix
        raise PredictorError(str(exc)) from exc
