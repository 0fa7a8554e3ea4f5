"""The reviewer's heads as the served model: load an adapter folder, predict clauses.

The folder `contract-review train` writes (`training/reviewer_model.py: save_reviewer`) holds the
LoRA weights (PEFT format; for a fully fine-tuned reviewer its update extracted as LoRA),
`heads.safetensors` and `reviewer.json` (label orders, base model, pooling, per-type thresholds,
risk rule). The base model may be an adapted base folder (`training/models.py: resolve_model`).
An adapter of reviewer.json format 1 (a `risk` head, no bearer head) loads too: its answers leave
`risk_to` unsaid. `load_reviewer` puts it back together on its base model
(LoRA merged, eval mode); `ReviewerPredictor` is the `contract_review.predictor.Predictor` over it:
head probabilities in length-sorted batches (`training.reviewer_model.predict_probs`), then the
decision rules of `decisions.py`. `load_reviewer_predictor()` loads the shipped adapter in
`data/model/reviewer/`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoConfig

from contract_review.predictor import ClauseInput, ClausePrediction
from contract_review.prompt import build_input
from contract_review.taxonomy import Taxonomy
from contract_review.training.models import hub_offline, load_causal_lm, load_tokenizer, resolve_model
from contract_review.training.precision import cpu_precision
from contract_review.training.reviewer_model import HEADS_FILE, META_FILE, Labels, ReviewerModel, predict_probs

from .decisions import answers_from_probs
from .shipped import DEFAULT_ADAPTER_DIR

TRAIN_ONE = "train one with `contract-review train --config configs/smollm2-135m_reviewer_cpu.yaml`"


class ReviewerError(ValueError):
    """A reviewer adapter folder that cannot be loaded; the message says what is missing."""


def read_meta(adapter_dir: str | Path) -> dict:
    path = Path(adapter_dir) / META_FILE
    if not path.exists():
        raise ReviewerError(f"{adapter_dir}: no {META_FILE}; not a reviewer adapter folder ({TRAIN_ONE})")
    return json.loads(path.read_text(encoding="utf-8"))


def is_reviewer_folder(folder: str | Path) -> bool:
    return (Path(folder) / META_FILE).exists()


def pick_device(device: str | None = None) -> torch.device:
    """`device` as given, else the first GPU when there is one, else the CPU."""
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _default_dtype(base: str, dev: torch.device) -> str:
    if dev.type != "cuda":
        return "float32"
    cfg = AutoConfig.from_pretrained(resolve_model(base), local_files_only=hub_offline())
    d, layers = cfg.hidden_size, cfg.num_hidden_layers
    approx = layers * (4 * d * d + 3 * d * getattr(cfg, "intermediate_size", 4 * d)) + cfg.vocab_size * d
    return "bfloat16" if approx > 1e9 else "float32"


def load_reviewer(adapter_dir: str | Path | None = None, base_model: str | None = None,
                  merge: bool = True, dtype: str | None = None,
                  device: str | None = None) -> tuple[ReviewerModel, object, dict]:
    """(model in eval mode, tokenizer, reviewer.json) from an adapter folder.

    `merge` folds LoRA into the base weights: the same outputs, one matmul per projection.
    `dtype` defaults to float32 (run under bf16 autocast where that is fast: the setting the shipped
    thresholds were tuned in; see `load_reviewer_predictor`) except for a base of over a billion parameters on a GPU, which gets bfloat16 weights.
    `dtype="bfloat16"` on a CPU casts the merged decoder (the heads stay float32): on a CPU with
    AVX512-BF16 this ran 2.3x faster than float32 weights under bf16 autocast (995 vs 436 tokens/s
    on two shared cores), with head probabilities within 0.04 of the autocast ones. `device`
    defaults to the first GPU when there is one: a 7B or 13B base is loaded straight onto it in
    bf16, never as float32 on the host."""
    adapter_dir = Path(adapter_dir or DEFAULT_ADAPTER_DIR)
    meta = read_meta(adapter_dir)
    base = base_model or meta.get("base_model", "default")
    dev = pick_device(device)
    dtype = dtype or _default_dtype(base, dev)
    # on a CPU the merge runs in float32 and the cast follows; on a GPU the weights arrive in `dtype`
    load_dtype = torch.float32 if dev.type == "cpu" else getattr(torch, dtype)
    lm = load_causal_lm(base, dtype=load_dtype, device_map={"": str(dev)} if dev.type == "cuda" else None)
    tokenizer = load_tokenizer(base)
    if (adapter_dir / "adapter_config.json").exists():
        lm = PeftModel.from_pretrained(lm, str(adapter_dir))
        if merge:
            lm = lm.merge_and_unload()
    if dtype != "float32" and dev.type == "cpu":
        if not merge:
            raise ReviewerError("a reduced-precision reviewer needs merge=True (LoRA folded into the weights)")
        lm = lm.to(getattr(torch, dtype))
    model = ReviewerModel(lm, lm.config.hidden_size, Labels.from_meta(meta), pooling=meta.get("pooling", "last_mean"))
    state = load_file(str(adapter_dir / HEADS_FILE))
    for f, head in model.heads.items():
        # an adapter trained before bearers existed stored its severity head as `risk`
        prefix = "risk" if f == "severity" and not any(k.startswith("severity.") for k in state) else f
        head.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(prefix + ".")})
    model.heads.to(dev)
    model.eval()
    return model, tokenizer, meta


def head_answers(probs: dict[str, torch.Tensor], meta: dict, labels: Labels,
                 tax: Taxonomy | None = None, clauses: Sequence[ClauseInput] | None = None) -> list[ClausePrediction]:
    """Predictions from head probabilities by the adapter's own decision rules (its reviewer.json's
    per-type thresholds, 0.5 where it has none, and its risk rule)."""
    thresholds = meta.get("thresholds") or [0.5] * len(labels.clause_type)
    return [ClausePrediction(answer=a, confidence=round(c, 4), scores=s) for a, c, s in
            answers_from_probs(probs, labels, thresholds, tax, meta.get("risk_rule", "head"), clauses=clauses)]


class ReviewerPredictor:
    """`contract_review.predictor.Predictor` over a reviewer adapter: batched; bf16 autocast on a GPU
    and on a CPU with native bf16, fp32 on other CPUs (`default_autocast`; `precision` says which)."""

    name = "reviewer"

    def __init__(self, model: ReviewerModel, tokenizer, meta: dict, max_length: int | None = None,
                 tokens_per_batch: int | None = None, autocast: bool | None = None):
        self.model, self.tokenizer, self.meta = model, tokenizer, meta
        self.labels = model.labels
        self.max_length = max_length or int(meta.get("max_length", 256))
        # a GPU wants wide batches; two CPU cores gain nothing past a few thousand tokens
        on_gpu = next(model.parameters()).device.type == "cuda"
        self.tokens_per_batch = tokens_per_batch if tokens_per_batch else (32768 if on_gpu else 4096)
        self.autocast = autocast if autocast is not None else default_autocast(model)
        weights = next(model.decoder().parameters()).dtype
        self.precision = ("bf16 autocast" if self.autocast else "fp32") if weights == torch.float32 else str(weights)
        self.model_version = str(meta.get("model_version", "reviewer"))
        self.last_seconds: float | None = None

    def head_probs(self, clauses: Sequence[ClauseInput], progress: bool = False) -> dict[str, torch.Tensor]:
        """The heads' probabilities (clause_type (N, T) sigmoids; party, risk_to, severity (N, 4) softmaxes)."""
        inputs = [build_input(c.text, c.party_names) for c in clauses]
        return predict_probs(self.model, self.tokenizer, inputs, self.max_length, self.tokens_per_batch,
                             self.autocast, progress)

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        if not clauses:
            return []
        t0 = time.perf_counter()
        probs = self.head_probs(clauses, progress)
        self.last_seconds = time.perf_counter() - t0
        return head_answers(probs, self.meta, self.labels, clauses=clauses)


def default_autocast(model: ReviewerModel) -> bool:
    """bf16 autocast for float32 weights on a GPU, and on a CPU where it is the faster choice
    (`cpu_precision`: native bf16, else fp32); weights already in a 16-bit type need none."""
    param = next(model.decoder().parameters())
    if param.dtype != torch.float32:
        return False
    return param.device.type == "cuda" or cpu_precision().precision == "bf16"


def load_reviewer_predictor(adapter_dir: str | Path | None = None, base_model: str | None = None,
                            dtype: str | None = None, device: str | None = None, **kwargs) -> ReviewerPredictor:
    """The reviewer predictor from an adapter folder (default: the shipped `data/model/reviewer/`),
    on its own base model or `base_model`.

    On a GPU when there is one (`device`). Default: float32 weights, under bf16 autocast on a GPU and
    on a CPU with native bf16 (the setting of the numbers in the adapter's card; ~440 tokens/s on two
    shared cores of such a CPU), in plain fp32 on a CPU without it, where emulated bf16 is several
    times slower (`training.precision.cpu_precision`; `CONTRACT_REVIEW_CPU_PRECISION` forces it). `dtype="bfloat16"` is the fast mode (~1,000 tokens/s) but it moved the shipped
    adapter's CLAUDETTE 8-category macro-F1 from 61.9 to 54.7: its tuned thresholds sit near 0.9,
    where bf16 weights shift probabilities."""
    adapter_dir = Path(adapter_dir or DEFAULT_ADAPTER_DIR)
    if not adapter_dir.exists():
        raise ReviewerError(f"{adapter_dir}: reviewer adapter not found; {TRAIN_ONE}")
    model, tokenizer, meta = load_reviewer(adapter_dir, base_model=base_model, dtype=dtype, device=device)
    if "num_threads" in kwargs:
        torch.set_num_threads(int(kwargs.pop("num_threads")))
    return ReviewerPredictor(model, tokenizer, meta, **kwargs)
