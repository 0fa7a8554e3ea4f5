"""The reviewer model: the CPU default that labels every clause for the app and evaluation.

Generating the answer JSON with a 135M model runs at 6-13 tokens/s on two CPU cores, far too
slow for a contract of a thousand clauses. A forward pass alone runs at ~1,000 tokens/s, so
the reviewer reads the clause once and answers with three small heads on the final hidden
state:

    input  = prompt.build_input(text, party_names) + EOS       (data.encode_classify)
    h      = SmolLM2 decoder (+ LoRA) -> final hidden states
    pooled = [h at the last token ; mean of h over the tokens]  (`pooling: last_mean`)
    clause_type: 47 sigmoids (multi-label, the taxonomy's order), BCE with pos_weight
    party:        4-way softmax;  risk: 4-way softmax

Saved as a PEFT adapter folder: `adapter_model.safetensors` + `adapter_config.json` (the
LoRA weights, loadable with peft on the causal-LM base), `heads.safetensors` (the heads) and
`reviewer.json` (label orders, base model, pooling, per-type thresholds, data version).
`ReviewerPredictor` implements `contract_review.predictor.Predictor`; `load_reviewer_predictor()` loads the
shipped adapter in `data/model/reviewer/`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract_review.paths import DATA_DIR
from contract_review.prompt import Answer, build_input
from contract_review.records import ClauseRecord
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .data import encode_classify

DEFAULT_ADAPTER_DIR = DATA_DIR / "model" / "reviewer"
FIELDS = ("clause_type", "party", "risk")
META_FILE = "reviewer.json"
HEADS_FILE = "heads.safetensors"


class ReviewerError(ValueError):
    """A reviewer adapter folder that cannot be loaded; the message says what is missing."""


@dataclass(frozen=True)
class Labels:
    """Label order of each head (from the taxonomy when training; from reviewer.json when loading)."""

    clause_type: tuple[str, ...]
    party: tuple[str, ...]
    risk: tuple[str, ...]

    @classmethod
    def from_taxonomy(cls, tax: Taxonomy | None = None) -> "Labels":
        tax = tax or load_taxonomy()
        return cls(tax.clause_type_ids, tax.parties, tax.risk_levels)

    def sizes(self) -> dict[str, int]:
        return {f: len(getattr(self, f)) for f in FIELDS}

    def targets(self, record: ClauseRecord) -> dict[str, torch.Tensor]:
        types = torch.zeros(len(self.clause_type))
        for t in record.clause_types:
            types[self.clause_type.index(t)] = 1.0
        return {"clause_type": types,
                "party": torch.tensor(self.party.index(record.party)),
                "risk": torch.tensor(self.risk.index(record.risk))}


class ReviewerModel(nn.Module):
    """A causal LM's decoder (with LoRA via peft) and three heads on its pooled final state."""

    def __init__(self, backbone: nn.Module, hidden_size: int, labels: Labels, pooling: str = "last_mean",
                 dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone  # a PeftModel around a *ForCausalLM, or the plain model
        self.labels = labels
        self.pooling = pooling
        width = hidden_size * (2 if pooling == "last_mean" else 1)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({f: nn.Linear(width, n) for f, n in labels.sizes().items()})

    def decoder(self) -> nn.Module:
        """The bare decoder (no lm_head): the 49k-word output layer is a fifth of the model's
        FLOPs and the reviewer never needs it."""
        m = self.backbone
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        return m.model if hasattr(m, "model") and hasattr(m, "lm_head") else m

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.to(hidden.dtype)
        last_idx = mask.sum(1).long().clamp(min=1) - 1  # right padding: the last real token (EOS)
        last = hidden[torch.arange(hidden.size(0), device=hidden.device), last_idx]
        if self.pooling == "last":
            return last
        mean = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return mean if self.pooling == "mean" else torch.cat([last, mean], dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        hidden = self.decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = self.dropout(self.pool(hidden, attention_mask).float())
        return {f: head(pooled) for f, head in self.heads.items()}

    def init_type_bias(self, prior: torch.Tensor) -> None:
        """Start each type's sigmoid at its frequency in the training data (faster, calmer start)."""
        p = prior.clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.heads["clause_type"].bias.copy_(torch.log(p / (1 - p)))


def classify_loss(logits: dict[str, torch.Tensor], batch: dict, pos_weight: torch.Tensor | None,
                  weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    parts = {
        "clause_type": F.binary_cross_entropy_with_logits(logits["clause_type"], batch["clause_type"].float(),
                                                          pos_weight=pos_weight),
        "party": F.cross_entropy(logits["party"], batch["party"]),
        "risk": F.cross_entropy(logits["risk"], batch["risk"]),
    }
    total = sum(weights.get(k, 1.0) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def type_pos_weight(records: Sequence[ClauseRecord], labels: Labels, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(pos_weight, prior) per clause type: neg/pos capped at `cap`, and the share of positives."""
    counts = torch.zeros(len(labels.clause_type))
    for r in records:
        for t in r.clause_types:
            counts[labels.clause_type.index(t)] += 1
    n = max(len(records), 1)
    prior = counts / n
    pos_weight = ((n - counts) / counts.clamp(min=1)).clamp(min=1.0, max=cap)
    return pos_weight, prior


# -- saving and loading -----------------------------------------------------------------------

def cast_adapter(adapter_dir: str | Path, dtype: str) -> None:
    """Rewrite adapter_model.safetensors in `dtype` (bfloat16 halves a shipped adapter; peft
    casts it back to the model's dtype when loading)."""
    from safetensors.torch import load_file, save_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if dtype == "float32" or not path.exists():
        return
    weights = load_file(str(path))
    tmp = path.with_suffix(".tmp")
    save_file({k: v.to(getattr(torch, dtype)).contiguous() for k, v in weights.items()}, str(tmp),
              metadata={"format": "pt"})
    tmp.replace(path)


def save_reviewer(model: ReviewerModel, out_dir: str | Path, meta: dict, adapter_dtype: str = "float32") -> Path:
    """Write the adapter folder (PEFT adapter + heads + reviewer.json)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model.backbone, "save_pretrained") and hasattr(model.backbone, "peft_config"):
        model.backbone.save_pretrained(out, safe_serialization=True)
        cast_adapter(out, adapter_dtype)
    heads = {f"{f}.{k}": v.detach().float().cpu().contiguous() for f, h in model.heads.items()
             for k, v in h.state_dict().items()}
    save_file(heads, str(out / HEADS_FILE))
    full = {"format": "contract-review-reviewer/1", "pooling": model.pooling,
            "labels": {f: list(getattr(model.labels, f)) for f in FIELDS}, **meta}
    (out / META_FILE).write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def read_meta(adapter_dir: str | Path) -> dict:
    path = Path(adapter_dir) / META_FILE
    if not path.exists():
        raise ReviewerError(f"{adapter_dir}: no {META_FILE}; not a reviewer adapter folder "
                            "(train one with `contract-review train --config configs/smollm2-135m_reviewer_cpu.yaml`)")
    return json.loads(path.read_text(encoding="utf-8"))


def pick_device(device: str | None = None) -> torch.device:
    """`device` as given, else the first GPU when there is one, else the CPU."""
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _default_dtype(src, dev: torch.device) -> str:
    if dev.type != "cuda":
        return "float32"
    from transformers import AutoConfig

    from .models import hub_offline

    cfg = AutoConfig.from_pretrained(src, local_files_only=hub_offline())
    d, layers = cfg.hidden_size, cfg.num_hidden_layers
    approx = layers * (4 * d * d + 3 * d * getattr(cfg, "intermediate_size", 4 * d)) + cfg.vocab_size * d
    return "bfloat16" if approx > 1e9 else "float32"


def load_reviewer(adapter_dir: str | Path | None = None, base_model: str | None = None,
                  merge: bool = True, dtype: str | None = None,
                  device: str | None = None) -> tuple[ReviewerModel, object, dict]:
    """(model in eval mode, tokenizer, reviewer.json) from an adapter folder.

    `merge` folds LoRA into the base weights: the same outputs, one matmul per projection.
    `dtype` defaults to float32 (under bf16 autocast: the setting the shipped thresholds were tuned
    in) except for a base of over a billion parameters on a GPU, which gets bfloat16 weights.
    `dtype="bfloat16"` on a CPU casts
    the merged decoder (the heads stay float32): on a CPU with AVX512-BF16 this ran 2.3x faster
    than float32 weights under bf16 autocast (995 vs 436 tokens/s on two shared cores), with head
    probabilities within 0.04 of the autocast ones. `device` defaults to the first GPU when there
    is one: a 7B or 13B base is loaded straight onto it in bf16, never as float32 on the host."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from .models import hub_offline, load_tokenizer, resolve_model

    adapter_dir = Path(adapter_dir or DEFAULT_ADAPTER_DIR)
    meta = read_meta(adapter_dir)
    base = base_model or meta.get("base_model", "default")
    src = resolve_model(base)
    dev = pick_device(device)
    dtype = dtype or _default_dtype(src, dev)
    # on a CPU the merge runs in float32 and the cast follows; on a GPU the weights arrive in `dtype`
    load_dtype = torch.float32 if dev.type == "cpu" else getattr(torch, dtype)
    kwargs = {"device_map": {"": str(dev)}} if dev.type == "cuda" else {}
    lm = AutoModelForCausalLM.from_pretrained(src, dtype=load_dtype, local_files_only=hub_offline(), **kwargs)
    tokenizer = load_tokenizer(base)
    if (adapter_dir / "adapter_config.json").exists():
        lm = PeftModel.from_pretrained(lm, str(adapter_dir))
        if merge:
            lm = lm.merge_and_unload()
    if dtype != "float32" and dev.type == "cpu":
        if not merge:
            raise ReviewerError("a reduced-precision reviewer needs merge=True (LoRA folded into the weights)")
        lm = lm.to(getattr(torch, dtype))
    labels = Labels(**{f: tuple(meta["labels"][f]) for f in FIELDS})
    model = ReviewerModel(lm, lm.config.hidden_size, labels, pooling=meta.get("pooling", "last_mean"))
    state = load_file(str(adapter_dir / HEADS_FILE))
    for f, head in model.heads.items():
        head.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f + ".")})
    model.heads.to(dev)
    model.eval()
    return model, tokenizer, meta


# -- prediction ----------------------------------------------------------------------------------

@torch.inference_mode()
def predict_probs(model: ReviewerModel, tokenizer, inputs: Sequence[str], max_length: int = 256,
                  tokens_per_batch: int = 4096, autocast: bool = True, progress: bool = False) -> dict[str, torch.Tensor]:
    """Head probabilities for `input` strings, batched by length (padding kept small)."""
    encoded = [encode_classify(s, tokenizer, max_length) for s in inputs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = {f: torch.zeros(len(encoded), n) for f, n in model.labels.sizes().items()}
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * len(encoded[i]) > tokens_per_batch:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(encoded), desc="reviewer", unit="clause")
    device = next(model.parameters()).device
    for idx in batches:
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, : len(encoded[i])] = 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(ids.to(device), mask.to(device))
        out["clause_type"][idx] = torch.sigmoid(logits["clause_type"].float()).cpu()
        out["party"][idx] = torch.softmax(logits["party"].float(), -1).cpu()
        out["risk"][idx] = torch.softmax(logits["risk"].float(), -1).cpu()
        if bar:
            bar.update(len(idx))
    if bar:
        bar.close()
    return out


RISK_RULES = ("head", "types", "mixed", "highest")


def _risk_of(types: list[str], head_risk: str, rule: str, tax: Taxonomy) -> str:
    """The clause's risk under `rule`:
    - `head`: the risk head alone;
    - `types`: the highest default risk of the chosen types (how CUAD records are labelled);
    - `mixed`: per chosen type, the head's risk for a CLAUDETTE-mapped type (there the experts'
      fairness level sets the risk, which the type alone cannot tell) and the default risk
      otherwise; the highest of these, and the head's when no type is chosen;
    - `highest`: as `mixed`, but a CLAUDETTE-mapped type takes the higher of its default and the
      head's risk: for thresholds tuned to choose such a type only when it is unfair (the
      ensemble's, `eval/ensemble.py`), the head must not veto the type, while governing law
      (low by default) still needs the head to call it a risk."""
    if rule == "head" or types == ["other"]:
        return head_risk
    levels = []
    for t in types:
        ct = tax.clause_type(t)
        if rule == "mixed" and ct.claudette:
            levels.append(head_risk)
        elif rule == "highest" and ct.claudette:
            levels.append(max(ct.risk, head_risk, key=tax.risk_rank))
        else:
            levels.append(ct.risk)
    return max(levels, key=tax.risk_rank)


def answers_from_probs(probs: dict[str, torch.Tensor], labels: Labels, thresholds: Sequence[float],
                       tax: Taxonomy | None = None, risk_rule: str = "head") -> list[tuple[Answer, float, dict]]:
    """Turn head probabilities into (Answer, confidence, scores) per clause.

    Types above their threshold (`other` never listed beside a real type), ordered like the
    dataset (highest default risk first); risk from the risk head; risk category and reason
    from the taxonomy row of the top type (the most likely non-`other` type when the risk
    head sees a risk the types missed)."""
    tax = tax or load_taxonomy()
    thr = torch.tensor(list(thresholds))
    other = labels.clause_type.index("other")
    positive = [labels.risk.index(r) for r in labels.risk if r in tax.risk_positive]
    results = []
    for i in range(probs["clause_type"].size(0)):
        p = probs["clause_type"][i]
        chosen = [j for j in range(len(labels.clause_type)) if j != other and p[j] >= thr[j]]
        types = tax.order_types(labels.clause_type[j] for j in chosen)
        party = labels.party[int(probs["party"][i].argmax())]
        risk = _risk_of(types, labels.risk[int(probs["risk"][i].argmax())], risk_rule, tax)
        top = tax.clause_type(types[0])
        if top.id == "other" and risk != "none":
            masked = p.clone()
            masked[other] = -1
            top = tax.clause_type(labels.clause_type[int(masked.argmax())])
        category = top.risk_category if risk != "none" else "none"
        reason = tax.default_reason(top.id)
        p_risk = float(probs["risk"][i, positive].sum())
        if risk_rule != "head" and types != ["other"]:
            # the decision came (at least partly) from the types: its confidence is the top type's
            p_risk = max(p_risk, float(p[labels.clause_type.index(types[0])])) if risk in tax.risk_positive \
                else min(p_risk, 1.0 - float(p[labels.clause_type.index(types[0])]))
        confidence = p_risk if risk in tax.risk_positive else 1.0 - p_risk
        scores = {
            "clause_type": {t: round(float(p[j]), 4) for j, t in enumerate(labels.clause_type)},
            "party": {t: round(float(probs["party"][i, j]), 4) for j, t in enumerate(labels.party)},
            "risk": {t: round(float(probs["risk"][i, j]), 4) for j, t in enumerate(labels.risk)},
        }
        results.append((Answer(tuple(types), party, risk, category, reason), confidence, scores))
    return results


def f1_by_threshold(p: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of `p >= t` against the 0/1 targets `y`, for every t in `grid` (compared in p's dtype)."""
    pred = p[:, None] >= np.asarray(grid).astype(p.dtype)[None, :]
    tp = (pred & y[:, None]).sum(0)
    return 2 * tp / np.maximum(pred.sum(0) + y.sum(), 1)


def best_threshold(f1: np.ndarray, grid: Sequence[float]) -> tuple[float, float]:
    """(F1, threshold) of the best grid threshold; ties (within 1e-9) go to the threshold nearest 0.5:
    less fitted to this one sample."""
    k = 0
    for i in range(1, len(grid)):
        if f1[i] > f1[k] + 1e-9 or (abs(f1[i] - f1[k]) <= 1e-9 and abs(grid[i] - 0.5) < abs(grid[k] - 0.5)):
            k = i
    return float(f1[k]), float(grid[k])


def tune_thresholds(probs: torch.Tensor, targets: torch.Tensor, min_positives: int = 5,
                    default: float = 0.5, grid: Sequence[float] | None = None) -> list[float]:
    """Per-type threshold maximising F1 on held-out data; `default` where positives are too few
    for the choice to mean anything."""
    grid = grid or [round(x, 2) for x in torch.arange(0.05, 0.96, 0.05).tolist()]
    p = (probs.float() if probs.dtype == torch.bfloat16 else probs).detach().cpu().numpy()
    y = (targets > 0.5).cpu().numpy()
    return [default if int(y[:, j].sum()) < min_positives else best_threshold(f1_by_threshold(p[:, j], y[:, j], grid), grid)[1]
            for j in range(p.shape[1])]


class ReviewerPredictor:
    """`contract_review.predictor.Predictor` over a reviewer adapter: batched, bf16 autocast on CPU."""

    name = "reviewer"

    def __init__(self, model: ReviewerModel, tokenizer, meta: dict, max_length: int | None = None,
                 tokens_per_batch: int | None = None, autocast: bool | None = None):
        self.model, self.tokenizer, self.meta = model, tokenizer, meta
        self.labels = model.labels
        self.thresholds = meta.get("thresholds") or [0.5] * len(self.labels.clause_type)
        self.risk_rule = meta.get("risk_rule", "head")
        self.max_length = max_length or int(meta.get("max_length", 256))
        # a GPU wants wide batches; two CPU cores gain nothing past a few thousand tokens
        on_gpu = next(model.parameters()).device.type == "cuda"
        self.tokens_per_batch = tokens_per_batch if tokens_per_batch else (32768 if on_gpu else 4096)
        # bf16 autocast for float32 weights; weights already in bf16 need none
        self.autocast = autocast if autocast is not None else next(model.decoder().parameters()).dtype == torch.float32
        self.model_version = str(meta.get("model_version", "reviewer"))
        self.last_seconds: float | None = None

    def predict(self, clauses, progress: bool = False):
        from contract_review.predictor import ClausePrediction

        inputs = [build_input(c.text, c.party_names) for c in clauses]
        if not inputs:
            return []
        t0 = time.perf_counter()
        probs = predict_probs(self.model, self.tokenizer, inputs, self.max_length, self.tokens_per_batch,
                              self.autocast, progress)
        self.last_seconds = time.perf_counter() - t0
        return [ClausePrediction(answer=a, confidence=round(c, 4), scores=s)
                for a, c, s in answers_from_probs(probs, self.labels, self.thresholds, risk_rule=self.risk_rule)]


def load_reviewer_predictor(adapter_dir: str | Path | None = None, dtype: str | None = None,
                            device: str | None = None, **kwargs) -> ReviewerPredictor:
    """The reviewer predictor from an adapter folder (default: the shipped `data/model/reviewer/`).

    On a GPU when there is one (`device`). Default: float32 weights under bf16 autocast (the numbers in the adapter's card; ~440 tokens/s
    on two shared cores, a 1,000-clause contract in about 4 minutes). `dtype="bfloat16"` is the
    fast mode (~1,000 tokens/s) but it moved the shipped adapter's CLAUDETTE 8-category macro-F1
    from 61.9 to 54.7: its tuned thresholds sit near 0.9, where bf16 weights shift probabilities."""
    adapter_dir = Path(adapter_dir or DEFAULT_ADAPTER_DIR)
    if not adapter_dir.exists():
        raise ReviewerError(f"{adapter_dir}: reviewer adapter not found; train one with "
                            "`contract-review train --config configs/smollm2-135m_reviewer_cpu.yaml`")
    model, tokenizer, meta = load_reviewer(adapter_dir, dtype=dtype, device=device)
    if "num_threads" in kwargs:
        torch.set_num_threads(int(kwargs.pop("num_threads")))
    return ReviewerPredictor(model, tokenizer, meta, **kwargs)

