"""LoRA adapters (peft): how the base model is made trainable, saved and merged.

    wrap(lm, cfg.lora, task_type)   LoRA on `lora.target_modules` (or all-linear), a subset of layers
                                    (`lora.layers`), DoRA (`lora.dora`); the base weights stay frozen
    save(model, out, ...)           the PEFT adapter folder (adapter_model.safetensors + adapter_config.json),
                                    gathered first under ZeRO-3, cast to `output.adapter_dtype`
    merge(model)                    the base model with the adapter folded in (`output.merge`)

QLoRA is LoRA on a base loaded quantized: the backend loads it (training/backends/hf.py). Full
fine-tuning would be a module beside this one with the same three functions (wrap: everything
trainable; save: the whole model), chosen by the backends where they call this one.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from torch import nn

from ..config import LoraConfig
from ..reviewer_model import cast_adapter


def wrap(lm: nn.Module, cfg: LoraConfig, task_type: str | None) -> nn.Module:
    """``lm`` with LoRA layers (a peft model); ``task_type`` is peft's (CAUSAL_LM for the generative
    objective, None where the caller reads the decoder itself)."""
    kwargs = dict(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.modules(),
                  use_dora=cfg.dora, bias="none")
    if cfg.layers is not None:
        kwargs["layers_to_transform"] = cfg.layers
    if task_type:
        kwargs["task_type"] = task_type
    return get_peft_model(lm, PeftLoraConfig(**kwargs))


def save(model: nn.Module, out: Path, strategy, dtype: str) -> None:
    """Every rank calls it (under ZeRO-3 the gather is collective); the main rank writes."""
    with strategy.gathered([p for p in model.parameters() if p.requires_grad], modifier_rank=0):
        if strategy.is_main:
            model.save_pretrained(out, safe_serialization=True)
    if strategy.is_main:
        cast_adapter(out, dtype)


def merge(model: nn.Module) -> nn.Module:
    return model.merge_and_unload()
