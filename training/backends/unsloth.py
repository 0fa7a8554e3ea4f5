"""`backend: unsloth`: Unsloth's FastLanguageModel loads the model and adds the LoRA layers (its own
kernels, its own gradient checkpointing with offload). A comparison backend in its own environment
(it pins its own torch and transformers: pip install 'contract-review[unsloth]'); objective sft, one
GPU per process, not under DeepSpeed (the config refuses the rest).

Unsloth loads folders only: a random-weight preset is written once to a cached folder with the run's
tokenizer (`models.random_model_folder`) and loaded from there. Its library is imported before
transformers (`base.preload`, which the CLI and the benchmarks call first).
"""

from __future__ import annotations

import contextlib

import torch

from ..config import Config
from ..errors import TrainingError
from ..models import random_model_folder, resolve_model
from .base import Backend, BuildSpec, BuiltModel
from .hf import DTYPES


class UnslothBackend(Backend):
    name = "unsloth"

    def build(self, cfg: Config, spec: BuildSpec) -> BuiltModel:
        try:
            # a comparison backend in its own environment: imported only when it is chosen (base.preload
            # imported it first, before transformers, when it is installed)
            from unsloth import FastLanguageModel
        except ImportError:
            raise TrainingError("backend unsloth: unsloth is not installed here. It pins its own torch and "
                                "transformers: install it in its own environment (pip install "
                                "'contract-review[unsloth]') or use backend hf / native") from None
        lc, m = cfg.lora, cfg.model
        dtype = DTYPES[m.dtype]
        if m.random_init:
            # no weights exist for the presets offline: write the random model once (on the GPU, then
            # to disk) and let Unsloth load it like any checkpoint
            src = random_model_folder(m.config, tokenizer=spec.tokenizer, dtype=dtype,
                                      attn_implementation=m.attn_implementation, overrides=m.overrides,
                                      seed=cfg.train.seed, device=spec.device if spec.device.type == "cuda" else None)
        else:
            src = resolve_model(m.name)
        lm, _ = FastLanguageModel.from_pretrained(str(src), max_seq_length=cfg.data.max_length, dtype=dtype,
                                                  load_in_4bit=lc.quantize == "4bit", load_in_8bit=lc.quantize == "8bit",
                                                  use_exact_model_name=True)
        torch.manual_seed(cfg.train.seed + 1)
        lm = FastLanguageModel.get_peft_model(lm, r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                              target_modules=lc.modules(), random_state=cfg.train.seed,
                                              max_seq_length=cfg.data.max_length,
                                              use_gradient_checkpointing="unsloth" if m.gradient_checkpointing else False)
        with contextlib.suppress(Exception):  # older Unsloth versions have no for_training
            FastLanguageModel.for_training(lm)
        return BuiltModel(lm, lm.config, on_device=True,
                          notes={"gradient_checkpointing": "unsloth (checkpointed activations offloaded to CPU)"
                                 if m.gradient_checkpointing else None})
