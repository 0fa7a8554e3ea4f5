"""The recipe's Unsloth backend with random weights (what the benchmark's Unsloth row runs), on the CPU.

Unsloth itself needs a GPU, so a stand-in `unsloth` module with its API (from_pretrained of a folder,
get_peft_model, for_training) checks the wiring: the random model is written once to a folder in the
cache with its tokenizer, loaded from there, and trained; a second run reuses the folder."""

from __future__ import annotations

import sys
import types
from pathlib import Path

from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.logging import read_log

CONFIGS = Path(__file__).resolve().parents[4] / "configs"


def _fake_unsloth(calls: list):
    class FastLanguageModel:
        @staticmethod
        def from_pretrained(model_name, max_seq_length, dtype, load_in_4bit, load_in_8bit, use_exact_model_name):
            from transformers import AutoModelForCausalLM, AutoTokenizer

            calls.append(("from_pretrained", model_name, max_seq_length, load_in_4bit, use_exact_model_name))
            return AutoModelForCausalLM.from_pretrained(model_name, dtype=dtype), AutoTokenizer.from_pretrained(model_name)

        @staticmethod
        def get_peft_model(model, r, lora_alpha, lora_dropout, target_modules, random_state, max_seq_length,
                           use_gradient_checkpointing):
            from peft import LoraConfig, get_peft_model

            calls.append(("get_peft_model", r, target_modules, use_gradient_checkpointing))
            return get_peft_model(model, LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                                    target_modules=target_modules, task_type="CAUSAL_LM"))

        @staticmethod
        def for_training(model):
            calls.append(("for_training",))
            model.train()

    mod = types.ModuleType("unsloth")
    mod.FastLanguageModel = FastLanguageModel
    return mod


def test_unsloth_backend_trains_a_random_model_through_a_saved_folder(small_dataset, tmp_path, tiny_overrides,
                                                                      monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "unsloth", _fake_unsloth(calls))
    monkeypatch.setenv("CONTRACT_REVIEW_CACHE", str(tmp_path / "cache"))
    over = {"backend": "unsloth", "train.max_steps": 2, "data.subset.limit": 4, "optim.batch_size": 2,
            "lora.target_modules": "all-linear", "lora.r": 4, "data.eval_split": "null"}
    for run in ("a", "b"):
        cfg = load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", tiny_overrides(small_dataset, tmp_path / run, **over))
        assert run_training(cfg, quiet=True) == 0
        losses = [e["loss"] for e in read_log(tmp_path / run) if e["event"] == "step"]
        assert len(losses) == 2 and all(x == x for x in losses)
        assert next(e for e in read_log(tmp_path / run) if e["event"] == "start")["backend"] == "unsloth"
    folders = list((tmp_path / "cache" / "models").glob("random-tiny-llama-*"))
    assert len(folders) == 1  # written once, reused by the second run
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (folders[0] / name).exists(), name
    loads = [c for c in calls if c[0] == "from_pretrained"]
    assert len(loads) == 2 and all(c[1] == str(folders[0]) and c[3] is False and c[4] for c in loads)
    assert ("get_peft_model", 4, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            "unsloth") in calls and ("for_training",) in calls  # the 7B config checkpoints activations
    # both runs start from the same weights and adapters: the same first loss
    first = [next(e["loss"] for e in read_log(tmp_path / r) if e["event"] == "step") for r in ("a", "b")]
    assert first[0] == first[1]
