"""training/adapters/lora.py on a tiny random Llama: which layers get adapters (target modules, a subset of
layers, DoRA) and what the saved PEFT folder holds (the dtype asked for)."""

import json

import torch
from safetensors.torch import load_file

from contract_review.training.adapters import lora
from contract_review.training.config import load_config
from contract_review.training.distributed.single import SingleDevice
from contract_review.training.models import load_causal_lm


def _tiny():
    return load_causal_lm(config="tiny-llama", random_init=True, vocab_size=512, seed=0)


def _adapted(model) -> dict[str, object]:
    return {n: m for n, m in model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")}


def test_target_modules_and_a_subset_of_layers():
    cfg = load_config(None, ["lora.target_modules=q_proj,down_proj", "lora.layers=[1]", "lora.r=4"])
    model = lora.wrap(_tiny(), cfg.lora, "CAUSAL_LM")
    names = sorted(_adapted(model))
    assert names == ["base_model.model.model.layers.1.mlp.down_proj", "base_model.model.model.layers.1.self_attn.q_proj"]
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_dora_adds_the_magnitude_vectors_and_is_saved_as_dora(tmp_path):
    cfg = load_config(None, ["lora.dora=true", "lora.r=4", "output.adapter_dtype=bfloat16"])
    model = lora.wrap(_tiny(), cfg.lora, "CAUSAL_LM")
    assert all("default" in m.lora_magnitude_vector for m in _adapted(model).values())
    lora.save(model, tmp_path, SingleDevice(cfg), cfg.output.adapter_dtype)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["use_dora"] is True
    weights = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert any("magnitude" in k for k in weights) and {v.dtype for v in weights.values()} == {torch.bfloat16}
