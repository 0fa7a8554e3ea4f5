"""`backend: hf`: transformers builds (or loads) the model, peft adds the LoRA layers. The native and liger
backends are this one plus their kernels (`adapt`, `before_load`).

- weights: a local folder or hub name, or random weights of an architecture preset (`model.random_init`),
  built on the GPU they train on, or partitioned while built under ZeRO-3;
- QLoRA (`lora.quantize`): the base loaded quantized by bitsandbytes (GPU only), then peft's k-bit
  preparation; DoRA and layer subsets come with the adapters (training/adapters/lora.py);
- gradient checkpointing: torch's non-reentrant checkpoint;
- attention: `model.attn_implementation`; flex_attention has no backward on the CPU, so a CPU run
  uses sdpa (the same packed-example mask, dense) and says so.
"""

from __future__ import annotations

import sys

import torch
from peft import prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig

from ..adapters import method
from ..config import Config
from ..errors import TrainingError
from ..models import load_causal_lm
from .base import Backend, BuildSpec, BuiltModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFBackend(Backend):
    name = "hf"

    def build(self, cfg: Config, spec: BuildSpec) -> BuiltModel:
        self.check(cfg, spec)
        self.before_load(cfg, spec)
        lm, quantized = self.load(cfg, spec)
        # the adapters' initial values depend on train.seed alone, not on how much randomness building
        # the base model drew (CPU, GPU, ZeRO-3's zero.Init): 1-GPU and N-GPU runs start identical
        torch.manual_seed(cfg.train.seed + 1)
        lm = method.wrap(lm, cfg.lora, spec.task_type)  # LoRA, or full fine-tuning (lora.enabled: false)
        notes = {"attn_implementation": cfg.model.attn_implementation}
        notes.update(self.adapt(lm, cfg, spec))
        return BuiltModel(lm, lm.config, on_device=quantized, notes=notes)

    def check(self, cfg: Config, spec: BuildSpec) -> None:
        """Refuses, before anything is loaded, what cannot run here."""
        if cfg.lora.quantize and spec.device.type != "cuda":
            raise TrainingError("lora.quantize (QLoRA) needs a CUDA device (bitsandbytes); on CPU remove lora.quantize")

    def before_load(self, cfg: Config, spec: BuildSpec) -> None:
        """Kernels that replace transformers' classes go in before the model is built (liger)."""

    def adapt(self, lm, cfg: Config, spec: BuildSpec) -> dict:
        """After the adapters exist: our kernels go in (native). Returns notes for the run's log."""
        return {}

    def checkpointing_kwargs(self, cfg: Config, spec: BuildSpec) -> dict:
        """torch's checkpoint options for the decoder layers (non-reentrant)."""
        return {"use_reentrant": False}

    def load(self, cfg: Config, spec: BuildSpec):
        """(the base causal LM, whether it was loaded quantized)."""
        m = cfg.model
        if m.attn_implementation == "flex_attention" and spec.device.type != "cuda":
            if spec.main:
                print("model.attn_implementation flex_attention: no backward on the CPU; training with sdpa "
                      "(the same packed-example mask, dense)", file=sys.stderr)
            m.attn_implementation = "sdpa"
        quant = quantization_config(cfg)
        # random weights are built where they train (a GPU initialises 13B in seconds); under ZeRO-3
        # deepspeed.zero.Init places and partitions them instead
        build_on = spec.device if spec.device.type == "cuda" and not spec.partitioned else None
        vocab = len(spec.tokenizer) if m.random_init and spec.tokenizer is not None else None
        lm = load_causal_lm(m.name, config=m.config, random_init=m.random_init, dtype=DTYPES[m.dtype],
                            attn_implementation=m.attn_implementation, overrides=m.overrides, vocab_size=vocab,
                            quantization_config=quant, device_map={"": spec.device} if quant else None,
                            seed=cfg.train.seed, device=build_on)
        if quant:
            lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=m.gradient_checkpointing)
        elif m.gradient_checkpointing:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=self.checkpointing_kwargs(cfg, spec))
            lm.enable_input_require_grads()
        lm.config.use_cache = False
        return lm, quant is not None


def quantization_config(cfg: Config) -> BitsAndBytesConfig | None:
    if not cfg.lora.quantize:
        return None
    try:
        import bitsandbytes  # noqa: F401  (an optional extra, needed only for QLoRA)
    except ImportError:
        raise TrainingError("lora.quantize needs bitsandbytes: pip install 'contract-review[qlora]'") from None
    if cfg.lora.quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)
