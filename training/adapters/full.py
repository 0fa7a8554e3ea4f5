"""Full fine-tuning (`lora.enabled: false`): the weights themselves train, and what is shipped is
their update as a low-rank extraction in PEFT's LoRA format.

    wrap(lm, cfg)                  every parameter trains except the token embeddings (tied to the LM
                                   head: 28M of SmolLM2-135M's 135M weights, a fifth of the model,
                                   whose update a classifier never needs and a CLM run would spread
                                   over 49k rows); `lora.layers` limits training to those decoder layers
    extract(model, out, r)         the update W - W0 of every linear layer as its rank-`r` SVD
                                   (B = U_r S_r, A = V_r^T, lora_alpha = r: scale 1) and the trained
                                   norm weights as PEFT `modules_to_save`, written as a PEFT adapter
                                   folder that `PeftModel.from_pretrained` loads on the base and merges

Why extract: a 135M model in bfloat16 is 270 MB, more than the repository can carry; the rank-`r`
extraction is `r x 10,176` numbers per layer (the size of a LoRA adapter of that rank). It is an
approximation of the trained model: `extraction_error` measures it (relative Frobenius error of the
update per matrix) and the list that trains such a model scores both the exact model and the
extraction, so what is shipped is what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from safetensors.torch import save_file
from torch import nn

from ..config import ALL_LINEAR, LoraConfig

INITIAL = "_full_ft_initial"  # the attribute holding the starting weights the update is measured from
NORMS = ("input_layernorm", "post_attention_layernorm", "norm")


def _trains(name: str, layers: list[int] | None) -> bool:
    if "embed_tokens" in name or name.startswith("lm_head") or ".lm_head" in name:
        return False
    if layers is None:
        return True
    parts = name.split(".")
    if "layers" in parts:
        return int(parts[parts.index("layers") + 1]) in layers
    return name.endswith("norm.weight")  # the final norm trains with any layer subset


def wrap(lm: nn.Module, cfg: LoraConfig, task_type: str | None = None) -> nn.Module:
    """``lm`` with its weights trainable (the embeddings and LM head frozen) and a copy of the starting
    weights kept on the host, which `extract` measures the update from."""
    initial = {}
    for name, p in lm.named_parameters():
        p.requires_grad_(_trains(name, cfg.layers))
        if p.requires_grad:
            initial[name] = p.detach().to("cpu", copy=True)
    if not initial:
        raise ValueError(f"lora.layers {cfg.layers}: no decoder layer of that number; nothing would train")
    object.__setattr__(lm, INITIAL, initial)  # not a submodule or buffer: never saved, moved or trained
    return lm


def is_full(model: nn.Module) -> bool:
    return hasattr(model, INITIAL)


@torch.no_grad()
def extract(model: nn.Module, out: Path, r: int, dtype: torch.dtype = torch.float32) -> dict:
    """Write the update of a `wrap`ped model as a rank-`r` PEFT LoRA adapter folder; returns what was
    extracted and the relative error of the low-rank part."""
    initial: dict[str, torch.Tensor] = getattr(model, INITIAL)
    params = dict(model.named_parameters())
    tensors, targets, norms, err_num, err_den = {}, set(), set(), 0.0, 0.0
    for name, w0 in initial.items():
        w = params[name].detach().float()
        delta = w - w0.to(w.device, torch.float32)
        module, leaf = name.rsplit(".", 1)
        kind = module.rsplit(".", 1)[-1]
        if kind in ALL_LINEAR and leaf == "weight":
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            k = min(r, s.numel())
            b = (u[:, :k] * s[:k]).contiguous()
            a = vh[:k].contiguous()
            if k < r:  # a matrix narrower than r: pad with zero directions so every adapter has rank r
                b = torch.cat([b, b.new_zeros(b.shape[0], r - k)], 1)
                a = torch.cat([a, a.new_zeros(r - k, a.shape[1])], 0)
            tensors[f"base_model.model.{module}.lora_A.weight"] = a.to("cpu", dtype)
            tensors[f"base_model.model.{module}.lora_B.weight"] = b.to("cpu", dtype)
            err_num += float((delta - b @ a).pow(2).sum())
            err_den += float(delta.pow(2).sum())
            targets.add(kind)
        elif kind in NORMS:
            tensors[f"base_model.model.{module}.{leaf}"] = w.to("cpu", dtype)
            norms.add(kind)
        elif delta.abs().max() > 0:
            raise ValueError(f"{name}: a trained weight that is neither a linear layer nor a norm cannot be "
                             "written as a LoRA adapter")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = PeftLoraConfig(r=r, lora_alpha=r, lora_dropout=0.0, target_modules=sorted(targets), bias="none",
                            modules_to_save=sorted(norms) or None)
    config.save_pretrained(str(out))
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    info = {"method": "full fine-tuning, update extracted at rank r (SVD)", "r": r,
            "relative_error": round((err_num / err_den) ** 0.5, 4) if err_den else 0.0,
            "targets": sorted(targets), "norms": sorted(norms)}
    (out / "extraction.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
