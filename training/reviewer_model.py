"""The reviewer model as training builds it: a causal LM's decoder with LoRA and four heads.

Generating the answer JSON with a 135M model runs at 6-13 tokens/s on two CPU cores, far too
slow for a contract of a thousand clauses. A forward pass alone runs at ~1,000 tokens/s, so
the reviewer reads the clause once and answers with four small heads on the final hidden
state:

    input  = prompt.build_input(text, party_names) + EOS       (data.encode_classify)
    h      = SmolLM2 decoder (+ LoRA) -> final hidden states
    pooled = [h at the last token ; mean of h over the tokens]  (`pooling: last_mean`)
    clause_type: one sigmoid per taxonomy type (multi-label, the taxonomy's order), BCE with pos_weight
    party:       4-way softmax (who must act)
    risk_to:     4-way softmax (who bears the risk: first_party, second_party, both, none)
    severity:    4-way softmax (none, low, medium, high: how severe for that party)

An adapter trained before bearers existed (reviewer.json format 1) has one `risk` head instead of the
last two; it loads with that head as the severity head and no bearer head.

Here: the module and its label orders (`ReviewerModel`, `Labels`), the loss (`classify_loss`,
`type_pos_weight`), head probabilities in length-sorted batches (`predict_probs`), per-type
thresholds tuned on held-out data (`tune_thresholds`), and the adapter folder it is saved as
(`save_reviewer`): `adapter_model.safetensors` + `adapter_config.json` (the LoRA weights,
loadable with peft on the causal-LM base), `heads.safetensors` (the heads) and `reviewer.json`
(label orders, base model, pooling, per-type thresholds, data version). Serving that folder
(loading, decision rules, the `Predictor`) is the reviewer package's (`reviewer/heads.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from contract_review.records import ClauseRecord
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .data import encode_classify

FIELDS = ("clause_type", "party", "risk_to", "severity")
# the heads of an adapter trained before bearers existed: one `risk` head, which was the severity
LEGACY_FIELDS = ("clause_type", "party", "risk")
META_FILE = "reviewer.json"
HEADS_FILE = "heads.safetensors"


@dataclass(frozen=True)
class Labels:
    """Label order of each head (from the taxonomy when training; from reviewer.json when loading).

    `risk_to` is empty for an adapter trained before bearers existed: it has no bearer head, and its
    one `risk` head is read as the severity head (`from_meta`)."""

    clause_type: tuple[str, ...]
    party: tuple[str, ...]
    risk_to: tuple[str, ...]
    severity: tuple[str, ...]

    @classmethod
    def from_taxonomy(cls, tax: Taxonomy | None = None) -> "Labels":
        tax = tax or load_taxonomy()
        return cls(tax.clause_type_ids, tax.parties, tax.risk_bearers, tax.severity_levels)

    @classmethod
    def from_meta(cls, meta: dict) -> "Labels":
        """The label orders an adapter folder's reviewer.json records (what `save_reviewer` wrote)."""
        labels = meta["labels"]
        if "severity" not in labels and "risk" in labels:  # a legacy adapter: its risk head is the severity
            return cls(tuple(labels["clause_type"]), tuple(labels["party"]), (), tuple(labels["risk"]))
        return cls(**{f: tuple(labels[f]) for f in FIELDS})

    @property
    def has_bearer(self) -> bool:
        return bool(self.risk_to)

    def sizes(self) -> dict[str, int]:
        """Heads and their widths (a legacy adapter has no risk_to head)."""
        return {f: len(getattr(self, f)) for f in FIELDS if getattr(self, f)}

    def targets(self, record: ClauseRecord) -> dict[str, torch.Tensor]:
        types = torch.zeros(len(self.clause_type))
        for t in record.clause_types:
            types[self.clause_type.index(t)] = 1.0
        return {"clause_type": types,
                "party": torch.tensor(self.party.index(record.party)),
                "risk_to": torch.tensor(self.risk_to.index(record.risk_to)),
                "severity": torch.tensor(self.severity.index(record.severity))}


class ReviewerModel(nn.Module):
    """A causal LM's decoder (with LoRA via peft, or all weights trained) and the heads on its pooled final state."""

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
    parts = {"clause_type": F.binary_cross_entropy_with_logits(logits["clause_type"], batch["clause_type"].float(),
                                                               pos_weight=pos_weight)}
    for f in ("party", "risk_to", "severity"):
        parts[f] = F.cross_entropy(logits[f], batch[f])
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


# -- saving -----------------------------------------------------------------------

def cast_adapter(adapter_dir: str | Path, dtype: str) -> None:
    """Rewrite adapter_model.safetensors in `dtype` (bfloat16 halves a shipped adapter; peft
    casts it back to the model's dtype when loading)."""
    path = Path(adapter_dir) / "adapter_model.safetensors"
    if dtype == "float32" or not path.exists():
        return
    weights = load_file(str(path))
    tmp = path.with_suffix(".tmp")
    save_file({k: v.to(getattr(torch, dtype)).contiguous() for k, v in weights.items()}, str(tmp),
              metadata={"format": "pt"})
    tmp.replace(path)


def save_reviewer(model: ReviewerModel, out_dir: str | Path, meta: dict, adapter_dtype: str = "float32",
                  save_backbone=None) -> Path:
    """Write the adapter folder (PEFT adapter + heads + reviewer.json). `save_backbone(out)` writes the
    backbone's part instead of peft's save_pretrained (full fine-tuning: `adapters/full.py`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if save_backbone is not None:
        save_backbone(out)
        cast_adapter(out, adapter_dtype)
    elif hasattr(model.backbone, "save_pretrained") and hasattr(model.backbone, "peft_config"):
        model.backbone.save_pretrained(out, safe_serialization=True)
        cast_adapter(out, adapter_dtype)
    heads = {f"{f}.{k}": v.detach().float().cpu().contiguous() for f, h in model.heads.items()
             for k, v in h.state_dict().items()}
    save_file(heads, str(out / HEADS_FILE))
    full = {"format": "contract-review-reviewer/2", "pooling": model.pooling,
            "labels": {f: list(getattr(model.labels, f)) for f in FIELDS}, **meta}
    (out / META_FILE).write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


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
    bar = tqdm(total=len(encoded), desc="reviewer", unit="clause") if progress else None
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
        for f in out:
            if f != "clause_type":
                out[f][idx] = torch.softmax(logits[f].float(), -1).cpu()
        if bar:
            bar.update(len(idx))
    if bar:
        bar.close()
    return out


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
