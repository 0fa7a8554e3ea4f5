"""How the base model is made trainable: LoRA (`lora.enabled: true`, `lora.py`) or full fine-tuning
(`lora.enabled: false`, `full.py`). The backends call `wrap`; the objectives `save`."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..config import LoraConfig
from ..reviewer_model import cast_adapter
from . import full, lora


def wrap(lm: nn.Module, cfg: LoraConfig, task_type: str | None) -> nn.Module:
    return lora.wrap(lm, cfg, task_type) if cfg.enabled else full.wrap(lm, cfg, task_type)


def save(model: nn.Module, out: Path, strategy, cfg: LoraConfig, dtype: str) -> dict:
    """The adapter folder of `model` (the causal LM): LoRA's own weights, or the full update extracted
    at rank `lora.r`. Every rank calls it; the main rank writes."""
    if not full.is_full(model):
        lora.save(model, out, strategy, dtype)
        return {}
    info = {}
    with strategy.gathered([p for p in model.parameters() if p.requires_grad], modifier_rank=0):
        if strategy.is_main:
            info = full.extract(model, out, cfg.r)
            cast_adapter(out, dtype)
    return {"extraction": info} if info else {}
