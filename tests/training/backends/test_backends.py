"""The backends through the real recipe on CPU (tiny random Llama): what each builds, and that a backend
that cannot run here stops the run with the cause and the fix instead of training as another."""

import sys
import typing
from pathlib import Path

import pytest

from contract_review.training.backends.registry import BACKENDS
from contract_review.training.cli import run_training
from contract_review.training.config import Config, load_config
from contract_review.training.errors import TrainingError
from contract_review.training.logging import read_log
from contract_review.training.recipe.finetune import FineTuneRecipe

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_every_backend_the_config_accepts_has_its_file():
    assert set(typing.get_args(Config.model_fields["backend"].annotation)) == set(BACKENDS)


def _cfg(small_dataset, run_dir, tiny_overrides, **extra):
    return load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, run_dir, **{"train.max_steps": 1, "data.subset.limit": 2, **extra}))


def test_native_backend_without_a_gpu_stops_with_the_reason_and_the_fix(small_dataset, tmp_path, tiny_overrides,
                                                                       monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # tests/conftest.py turns the interpreter on for kernel tests
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "g", **{"backend": "native", "train.max_steps": 1, "data.subset.limit": 2}))
    with pytest.raises(TrainingError) as err:
        run_training(cfg, quiet=True)
    msg = str(err.value)
    assert "backend native" in msg and "CUDA device" in msg and "backend: hf" in msg
    assert not (tmp_path / "g" / "adapter").exists()  # nothing trained under another backend's name


def test_native_backend_whose_patch_fails_stops_with_the_cause(small_dataset, tmp_path, tiny_overrides, monkeypatch):
    from contract_review.kernels.patching import monkey_patch

    def broken(model, **kwargs):
        raise RuntimeError("no kernel for this layer")

    monkeypatch.setattr(monkey_patch, "patch", broken)
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "h", **{"backend": "native", "train.max_steps": 1, "data.subset.limit": 2}))
    with pytest.raises(TrainingError, match=r"kernels.patch failed \(RuntimeError: no kernel for this layer\)") as err:
        run_training(cfg, quiet=True)
    assert isinstance(err.value.__cause__, RuntimeError)


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
    recipe = FineTuneRecipe(cfg, quiet=True).setup()
    patched = recipe.model._kernels_patch_counts
    assert {k: patched[k] for k in counts} == counts
    start = next(e for e in read_log(tmp_path / "k") if e["event"] == "start")
    assert start["backend"] == "native" and start["kernels_patched"] == patched


def test_unsloth_where_it_is_not_installed_stops_with_the_fix(small_dataset, tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "unsloth", None)  # `import unsloth` fails, as where it is not installed
    with pytest.raises(TrainingError, match="unsloth is not installed here") as err:
        run_training(_cfg(small_dataset, tmp_path / "u", tiny_overrides, backend="unsloth"), quiet=True)
    assert "contract-review[unsloth]" in str(err.value)


def test_liger_on_the_cpu_stops_with_the_fix(small_dataset, tmp_path, tiny_overrides):
    with pytest.raises(TrainingError, match="backend liger: .*CUDA device.*backend: hf"):
        run_training(_cfg(small_dataset, tmp_path / "l", tiny_overrides, backend="liger"), quiet=True)
