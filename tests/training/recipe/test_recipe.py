"""The LoRA recipe end to end on CPU: tiny random Llama, the real default model, kill and resume."""

from pathlib import Path

import pytest

from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.logging import read_log
from contract_review.training.recipe.lora import LoRARecipe, TrainingError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _losses(run_dir: Path) -> list[float]:
    return [e["loss"] for e in read_log(run_dir) if e["event"] == "step"]


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
