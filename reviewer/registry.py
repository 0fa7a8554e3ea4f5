"""The reviewer package's models, registered by name in `contract_review.predictor`.

    default            the shipped served model: the reviewer's heads mixed per clause type with
                       TF-IDF when the adapter folder has an ensemble.json, else the heads alone
    reviewer           the reviewer's heads alone (of the shipped adapter, or --adapter DIR)
    ensemble           the mix, required: an adapter folder without ensemble.json is an error
    tfidf              TF-IDF + LinearSVC fit on the shipped train split (cached)
    tfidf-unfair-tos   LexGLUE's TF-IDF + SVM, fit on the CLAUDETTE layout's train companies
    zero-shot          the default base model without any adapter, scoring the label options
    FOLDER [--adapter DIR]
                       a base model folder (or hub name "org/name"): with a reviewer adapter, its
                       heads on that base; with a PEFT (SFT) adapter, generating the JSON; alone,
                       zero-shot. A reviewer adapter folder given as the model is the heads on
                       their own base.

Importing this module is cheap (no torch): each loader imports the model code it runs when it
runs, because that code pulls in torch, transformers and scikit-learn (seconds), and every
command, `--help` included, imports this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

from contract_review.predictor import (DEFAULT, LoadOptions, ModelSpec, Predictor, PredictorError,
                                       register_folder_loader, register_model)

from .shipped import DEFAULT_ADAPTER_DIR, ENSEMBLE_FILE

REVIEWER = "reviewer"
ENSEMBLE = "ensemble"
TFIDF = "tfidf"
UNFAIR_TOS = "tfidf-unfair-tos"  # LexGLUE's TF-IDF + SVM; CLAUDETTE layouts only
ZERO_SHOT = "zero-shot"
DECODES = ("score", "generate")
HEADS_ALONE = "`--model reviewer` serves the reviewer's heads alone"

log = logging.getLogger("contract_review.reviewer")


def _adapter_dir(spec: ModelSpec) -> Path:
    return Path(spec.adapter) if spec.adapter else DEFAULT_ADAPTER_DIR


def _has_mix(spec: ModelSpec) -> bool:
    return (_adapter_dir(spec) / ENSEMBLE_FILE).exists()


def _where(spec: ModelSpec) -> str:
    return "the shipped reviewer adapter" if spec.adapter is None else f"reviewer adapter {spec.adapter}"


def _heads(adapter_dir: Path, base: str | None = None) -> Predictor:
    from .heads import load_reviewer_predictor

    return load_reviewer_predictor(adapter_dir, base_model=base)


def _mix(spec: ModelSpec, options: LoadOptions) -> Predictor:
    from .ensemble import load_ensemble_predictor

    return load_ensemble_predictor(_adapter_dir(spec), tfidf_train=options.tfidf_train,
                                   claudette_root=options.claudette_root, progress=options.progress)


def _load_default(spec: ModelSpec, options: LoadOptions) -> Predictor:
    from .heads import is_reviewer_folder

    folder = _adapter_dir(spec)
    if not folder.exists():
        raise PredictorError(f"{folder}: the reviewer adapter is missing; train one with `contract-review train "
                             "--config configs/smollm2-135m_reviewer_cpu.yaml` (or restore data/model/reviewer/ from "
                             "the repository), or choose --model tfidf or --model rules meanwhile")
    if _has_mix(spec):
        try:
            return _mix(spec, options)
        except (ValueError, OSError) as exc:
            raise PredictorError(f"the default model (the reviewer mixed with TF-IDF by {folder / ENSEMBLE_FILE}) "
                                 f"could not be loaded: {exc}\n{HEADS_ALONE}") from exc
    if not is_reviewer_folder(folder):
        return _adapter_on(None, folder, options)
    # said once, at load; the predictor's name (reviewer) and model_version record what ran
    log.warning("%s has no %s: the default model is the reviewer's heads alone (tune a mix with "
                "`contract-review eval tune-ensemble`)", folder, ENSEMBLE_FILE)
    return _adapter_on(None, folder, options)


def _load_reviewer(spec: ModelSpec, options: LoadOptions) -> Predictor:
    return _heads(_adapter_dir(spec))


def _load_ensemble(spec: ModelSpec, options: LoadOptions) -> Predictor:
    return _mix(spec, options)


def _load_tfidf(spec: ModelSpec, options: LoadOptions) -> Predictor:
    from .tfidf import load_tfidf

    return load_tfidf(options.tfidf_train, progress=options.progress)


def _load_unfair_tos(spec: ModelSpec, options: LoadOptions) -> Predictor:
    if options.claudette_root is None:
        raise PredictorError(f"{UNFAIR_TOS} knows only CLAUDETTE's 8 categories: use it with --claudette")
    from .tfidf import load_unfair_tos_tfidf

    return load_unfair_tos_tfidf(options.claudette_root, progress=options.progress)


def _zero_shot(base: str | None, adapter: str | None, options: LoadOptions, decode: str | None = None,
               name: str = ZERO_SHOT) -> Predictor:
    decode = decode or options.decode
    if decode not in DECODES:
        raise PredictorError(f"decode {decode!r}: use one of {', '.join(DECODES)}")
    from .zero_shot import load_zero_shot

    return load_zero_shot(base, adapter, decode, options.batch_size, name)


def _load_zero_shot(spec: ModelSpec, options: LoadOptions) -> Predictor:
    return _zero_shot(None, None, options)


def _adapter_on(base: str | None, folder: Path, options: LoadOptions) -> Predictor:
    """An adapter folder on `base` (None: the base its reviewer.json names, or the default)."""
    from .heads import is_reviewer_folder

    if is_reviewer_folder(folder):
        return _heads(folder, base)
    if (folder / "adapter_config.json").exists():  # a generative (SFT) adapter: it answers with the JSON itself
        return _zero_shot(base, str(folder), options, decode="generate", name="adapter")
    raise PredictorError(f"{folder}: neither a reviewer adapter (reviewer.json) nor a PEFT adapter "
                         "(adapter_config.json)")


def _load_folder(spec: ModelSpec, options: LoadOptions) -> Predictor:
    from .heads import is_reviewer_folder

    if spec.adapter:
        return _adapter_on(spec.model, Path(spec.adapter), options)
    if is_reviewer_folder(spec.model):  # a reviewer adapter folder given as the model
        return _heads(Path(spec.model))
    return _zero_shot(spec.model, None, options)


def _describe_default(spec: ModelSpec) -> str:
    if _has_mix(spec):
        return f"SmolLM2-135M + {_where(spec)}, mixed per clause type with TF-IDF ({ENSEMBLE_FILE})"
    return f"SmolLM2-135M + {_where(spec)} (heads alone: no {ENSEMBLE_FILE})"


def _describe_folder(spec: ModelSpec) -> str:
    alone = " (zero-shot, or the reviewer folder's own heads)"
    return spec.model + (f" + adapter {spec.adapter}" if spec.adapter else alone)


register_model(DEFAULT, _load_default, "the served model: the reviewer's heads mixed per clause type with TF-IDF "
               "(the adapter folder's ensemble.json; without one, the heads alone); --adapter DIR: another reviewer",
               adapter=True, describe=_describe_default)
register_model(REVIEWER, _load_reviewer, "the reviewer's heads alone (no TF-IDF)", adapter=True,
               describe=lambda spec: f"SmolLM2-135M + {_where(spec)} (heads alone)")
register_model(ENSEMBLE, _load_ensemble, "the mix, required: fails where the adapter folder has no ensemble.json",
               adapter=True, describe=lambda spec: f"SmolLM2-135M + {_where(spec)}, mixed with TF-IDF")
register_model(TFIDF, _load_tfidf, "TF-IDF + LinearSVC per label field, fit on the shipped train split (cached)")
register_model(UNFAIR_TOS, _load_unfair_tos, "LexGLUE's TF-IDF + SVM baseline (with --claudette only)")
register_model(ZERO_SHOT, _load_zero_shot, "the base model SmolLM2-135M-Instruct without adapter, zero-shot")
register_folder_loader(_load_folder, "a base model folder (or hub name org/name) with --adapter DIR (a reviewer "
                       "or PEFT adapter); alone: zero-shot; a reviewer adapter folder alone: its heads",
                       describe=_describe_folder)
