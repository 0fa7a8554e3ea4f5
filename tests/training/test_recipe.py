"""The LoRA recipe end to end on CPU: tiny random Llama, the real default model, kill and resume."""

import json
import math
from pathlib import Path

import pytest

from contract_review.training.checkpoint import latest
from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.logging import read_log
from contract_review.training.recipe.lora import LoRARecipe, TrainingError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _losses(run_dir: Path) -> list[float]:
    return [e["loss"] for e in read_log(run_dir) if e["event"] == "step"]


def test_tiny_llama_sft_loss_decreases_and_writes_every_artifact(small_dataset, tmp_path, tiny_overrides):
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "run", **{"train.max_steps": 12, "optim.lr": 3e-2, "optim.batch_size": 2,
                                            "lora.target_modules": "all-linear",
                                            "optim.grad_accum": 1, "data.subset.limit": 4, "train.eval_every": 6,
                                            "output.merge": "true"}))
    assert run_training(cfg, quiet=True) == 0
    run = tmp_path / "run"
    losses = _losses(run)
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    # a random model starts at ln(vocab) ~ 10.8; memorising 4 examples takes it well below
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses
    for name in ("metrics.jsonl", "loss_curve.png", "README.md", "config.yaml", "adapter/adapter_model.safetensors",
                 "adapter/adapter_config.json", "adapter/README.md", "merged/config.json"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    step = next(e for e in read_log(run) if e["event"] == "step")
    for key in ("loss", "lr", "tokens_per_s", "peak_mem_gib", "mfu", "grad_norm"):
        assert key in step
    card = (run / "adapter" / "README.md").read_text()
    assert "tiny-llama" in card and "version sha256:" in card and "best eval loss" in card


def test_kill_and_resume_gives_the_same_loss_curve(small_dataset, tmp_path, monkeypatch, tiny_overrides):
    over = {"train.max_steps": 6, "train.save_every": 3, "optim.lr": 2e-3, "optim.batch_size": 2,
            "optim.grad_accum": 2, "lora.dropout": 0.1, "optim.scheduler": "cosine", "optim.warmup_steps": 2,
            "data.subset.limit": 12}
    path = CONFIGS / "smollm2-135m_lora_cpu.yaml"
    straight = load_config(path, tiny_overrides(small_dataset, tmp_path / "a", **over))
    run_training(straight, quiet=True)

    killed = load_config(path, tiny_overrides(small_dataset, tmp_path / "b", **over))
    real_step = LoRARecipe.train_step
    calls = {"n": 0}

    def dying_step(self):
        calls["n"] += 1
        if calls["n"] == 5:  # killed during step 5, after the checkpoint of step 3
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(LoRARecipe, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_training(killed, quiet=True)
    monkeypatch.setattr(LoRARecipe, "train_step", real_step)
    assert latest(tmp_path / "b" / "checkpoints").name == "step-000003"
    run_training(killed, resume=True, quiet=True)

    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    assert any(e["event"] == "resume" for e in read_log(tmp_path / "b"))


def test_resume_without_a_checkpoint_says_so(small_dataset, tmp_path, tiny_overrides):
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(small_dataset, tmp_path / "c"))
    with pytest.raises(TrainingError, match="no checkpoint"):
        run_training(cfg, resume=True, quiet=True)


def test_nan_loss_stops_with_the_step_and_advice(small_dataset, tmp_path, tiny_overrides):
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "d", **{"optim.lr": 0.9, "train.max_steps": 30, "train.max_loss": 1e-3,
                                          "data.subset.limit": 4, "optim.batch_size": 2, "optim.grad_accum": 1}))
    with pytest.raises(TrainingError) as err:
        run_training(cfg, quiet=True)
    assert "step 1" in str(err.value) and "optim.lr" in str(err.value)
    assert read_log(tmp_path / "d")[-1]["kind"] == "exploding"


def test_oom_message_names_the_peak_and_what_to_change(small_dataset, tmp_path, monkeypatch, tiny_overrides):
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(small_dataset, tmp_path / "e",
                                                                            **{"data.subset.limit": 4}))

    def oom(self):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(LoRARecipe, "train_step", oom)
    with pytest.raises(TrainingError) as err:
        run_training(cfg, quiet=True)
    msg = str(err.value)
    assert "out of memory" in msg and "peak seen" in msg and "grad_accum" in msg and "gradient_checkpointing" in msg


def test_tiny_reviewer_classify_loss_decreases(small_dataset, tmp_path, tiny_overrides):
    cfg = load_config(CONFIGS / "smollm2-135m_reviewer_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "f", **{"train.max_steps": 15, "optim.lr": 3e-3, "optim.head_lr": 1e-2,
                                          "optim.batch_size": 8, "data.max_length": 64, "output.export": "null",
                                          "data.subset.limit": 8, "lora.target_modules": "all-linear"}))
    run_training(cfg, quiet=True)
    losses = _losses(tmp_path / "f")
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3])
    adapter = tmp_path / "f" / "adapter"
    meta = json.loads((adapter / "reviewer.json").read_text())
    assert len(meta["thresholds"]) == len(meta["labels"]["clause_type"]) == 47
    assert (adapter / "heads.safetensors").exists() and (adapter / "adapter_model.safetensors").exists()


def test_native_backend_falls_back_to_hf_with_a_message_on_cpu(small_dataset, tmp_path, capsys, tiny_overrides,
                                                               monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # tests/conftest.py turns the interpreter on for kernel tests
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "g", **{"backend": "native", "train.max_steps": 1, "data.subset.limit": 2}))
    recipe = LoRARecipe(cfg, quiet=True).setup()
    assert recipe.backend == "hf"
    assert "backend native" in capsys.readouterr().err


@pytest.mark.parametrize("options, counts", [
    ({}, {"offload": 0, "offload_mlp": 0, "trim_recompute": 2}),
    ({"kernels.offload_activations": "true", "kernels.offload_mlp": 0.5, "kernels.trim_recompute": "false"},
     {"offload": 2, "offload_mlp": 1, "trim_recompute": 0}),
], ids=["defaults", "options"])
def test_native_backend_passes_the_kernels_options_to_kernels_patch(small_dataset, tmp_path, tiny_overrides, options,
                                                                    counts):
    """The real kernels.patch on the tiny Llama (2 layers; Triton's interpreter on CPU, tests/conftest.py)."""
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "k", **{"backend": "native", "model.gradient_checkpointing": "true",
                                          "train.max_steps": 1, "data.subset.limit": 2,
                                          "lora.target_modules": "all-linear", **options}))
    recipe = LoRARecipe(cfg, quiet=True).setup()
    assert recipe.backend == "native"
    patched = recipe.model._kernels_patch_counts
    assert {k: patched[k] for k in counts} == counts and recipe.kernels_patched == patched
    start = next(e for e in read_log(tmp_path / "k") if e["event"] == "start")
    assert {k: start["kernels_patched"][k] for k in counts} == counts


def test_real_default_model_reviewer_loss_decreases(small_dataset, tmp_path):
    """A few steps of SmolLM2-135M itself (the cached default model) as the reviewer, on one batch."""
    cfg = load_config(CONFIGS / "smollm2-135m_reviewer_cpu.yaml", [
        f"data.dir={small_dataset}", f"output.dir={tmp_path / 'h'}", "data.subset.limit=4", "optim.batch_size=4",
        "train.max_steps=5", "optim.lr=3e-4", "optim.head_lr=3e-3", "optim.warmup_steps=0",
        "optim.scheduler=constant", "data.max_length=48", "data.eval_split=null", "train.progress=false",
        "lora.dropout=0.0", "train.save_every=1000", "output.export=null", "classify.tune_thresholds=false"])
    run_training(cfg, quiet=True)
    losses = _losses(tmp_path / "h")
    assert len(losses) == 5 and max(losses[-2:]) < 0.7 * losses[0], losses


def test_a_gpu_config_with_flex_attention_trains_on_the_cpu_with_sdpa(small_dataset, tmp_path, tiny_overrides, capsys):
    """The shipped 7B config asks for flex_attention (no backward on the CPU in torch): the same run
    falls back to sdpa, says so, and still trains."""
    cfg = load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "flex", **{"train.max_steps": 2, "optim.batch_size": 2, "optim.grad_accum": 1,
                                             "data.subset.limit": 4, "backend": "hf"}))
    assert cfg.model.attn_implementation == "flex_attention"
    assert run_training(cfg, quiet=True) == 0
    assert "training with sdpa" in capsys.readouterr().err
    assert len(_losses(tmp_path / "flex")) == 2
