"""Choosing the model `contract-review eval` scores: a model spec (and an adapter folder) to a
`contract_review.predictor.Predictor`."""

from __future__ import annotations

from contract_review.predictor import Predictor, PredictorError

TFIDF = "tfidf"
UNFAIR_TOS = "tfidf-unfair-tos"  # LexGLUE's TF-IDF + SVM; CLAUDETTE layouts only
ZERO_SHOT = "zero-shot"
ENSEMBLE = "ensemble"  # the reviewer and the TF-IDF models mixed per type (reviewer/ensemble.py)
DEFAULT = "default"
DECODES = ("score", "generate")


def load_predictor(spec: str | None = DEFAULT, adapter: str | None = None, decode: str = "score",
                   batch_size: int = 8, progress: bool = True, tfidf_train: str | None = None,
                   claudette_root: str | None = None) -> Predictor:
    """A `Predictor` from a model spec, as the `eval` command takes it:

    - "tfidf": the TF-IDF + linear classifier baseline, fit on the shipped train split (or
      `tfidf_train`; cached);
    - "tfidf-unfair-tos": LexGLUE's TF-IDF + SVM baseline, fit on the LexGLUE train companies of
      the CLAUDETTE layout `claudette_root` (it knows only the 8 unfair categories);
    - "zero-shot": the default base model (SmolLM2-135M-Instruct) without any adapter;
    - "ensemble": the shipped reviewer (or the reviewer adapter `adapter`) mixed per clause type
      with the "tfidf" model (and "tfidf-unfair-tos" where the file gives it weight) by the
      `ensemble.json` in its folder (tuned on validation: `contract-review eval tune-ensemble`);
    - None / "default": the shipped reviewer adapter on the default base model
      (`reviewer/heads.py`), or the adapter folder given as `adapter`;
    - a model folder or hub name: with `adapter`, that adapter on this base; a reviewer adapter
      folder (with reviewer.json) given directly is loaded as one; anything else is the base
      model zero-shot.

    A PEFT adapter without reviewer heads (an SFT adapter) answers by generating the JSON;
    `decode` picks how a base model answers zero-shot: "score" (compare the label options'
    likelihoods; always valid) or "generate" (free JSON, invalid answers counted).
    """
    if decode not in DECODES:
        raise PredictorError(f"decode {decode!r}: use one of {', '.join(DECODES)}")
    spec = spec or DEFAULT
    if spec == TFIDF:
        if adapter:
            raise PredictorError("--adapter makes no sense with the tfidf baseline; drop one of them")
        from contract_review.reviewer.tfidf import load_tfidf

        return load_tfidf(tfidf_train, progress=progress)
    if spec == UNFAIR_TOS:
        if adapter or claudette_root is None:
            raise PredictorError(f"{UNFAIR_TOS} knows only CLAUDETTE's 8 categories: use it with --claudette "
                                 "and no --adapter")
        from contract_review.reviewer.tfidf import load_unfair_tos_tfidf

        return load_unfair_tos_tfidf(claudette_root, progress=progress)
    if spec == ENSEMBLE:
        from contract_review.reviewer.ensemble import EnsembleError, load_ensemble_predictor

        try:
            return load_ensemble_predictor(adapter, tfidf_train=tfidf_train, claudette_root=claudette_root,
                                           progress=progress)
        except EnsembleError as exc:
            raise PredictorError(str(exc)) from None
    from pathlib import Path

    if spec == ZERO_SHOT:
        return _zero_shot(DEFAULT, None, decode, batch_size, name=ZERO_SHOT)
    if spec == DEFAULT or adapter or (Path(spec) / "reviewer.json").exists():
        adapter_dir = adapter
        base = None if spec == DEFAULT else spec
        if adapter_dir is None and spec != DEFAULT:
            adapter_dir, base = spec, None  # a reviewer adapter folder given as the model
        return _adapter(base, adapter_dir, decode, batch_size)
    return _zero_shot(spec, None, decode, batch_size, name=ZERO_SHOT)


def _zero_shot(base: str, adapter: str | None, decode: str, batch_size: int, name: str) -> Predictor:
    from contract_review.reviewer.zero_shot import load_zero_shot

    return load_zero_shot(base, adapter, decode, batch_size, name)


def _adapter(base: str | None, adapter_dir: str | None, decode: str, batch_size: int) -> Predictor:
    from pathlib import Path

    from contract_review.paths import DATA_DIR

    shipped = DATA_DIR / "model" / "reviewer"
    folder = Path(adapter_dir) if adapter_dir else shipped
    if not folder.exists():
        if adapter_dir is None:
            raise PredictorError(
                f"the shipped reviewer adapter ({folder}) does not exist yet (issue 5 builds it); "
                "evaluate a baseline with --model tfidf or --model zero-shot, or give --adapter DIR")
        raise PredictorError(f"{folder}: adapter folder does not exist")
    if (folder / "reviewer.json").exists():
        try:
            from contract_review.reviewer.heads import load_reviewer_predictor
        except ImportError as exc:
            raise PredictorError(f"{folder} is a reviewer adapter but reviewer.heads cannot be "
                                 f"imported ({exc})") from None
        if base is not None:
            return load_reviewer_predictor(folder, base_model=base)
        return load_reviewer_predictor(folder)
    if (folder / "adapter_config.json").exists():
        # a generative (SFT) adapter: it answers with the JSON itself
        return _zero_shot(base or DEFAULT, str(folder), "generate", batch_size, name="adapter")
    raise PredictorError(f"{folder}: neither a reviewer adapter (reviewer.json) nor a PEFT adapter "
                         "(adapter_config.json)")
