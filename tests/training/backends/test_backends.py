"""The backends through the real recipe on CPU (tiny random Llama): what each builds, and that a backend
that cannot run here stops the run with the cause and the fix instead of training as another."""

import sys
import typing
from pathlib import Path

import pytest

from contract_review.training.backends.registry import BACKENDS
from contract_review.training.cli import run_training
from contract_review.training.config import Config, load_config
from contract_review.training.diagnose import diagnose_run
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
    ({}, {"offload": 0, "offload_mlp": 0, "trim_recompute": 2, "fused_qkv": 2}),
    ({"kernels.trim_recompute": "false", "kernels.fuse_qkv": "false", "kernels.cuda_graph": "false"},
     {"offload": 0, "offload_mlp": 0, "trim_recompute": 0, "fused_qkv": 0}),
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


def test_native_run_says_once_what_took_the_fast_path_and_what_auto_turned_off(small_dataset, tmp_path,
                                                                              tiny_overrides, capsys):
    """A CPU run (Triton's interpreter) of a config with LoRA dropout: every projection, MLP, norm and RoPE
    call on the fast path, counted once at start in the log and in the start event; the CUDA graph and the
    offloads that `auto` cannot use here are off, with the reason, in both."""
    run = tmp_path / "f"
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, run, **{"backend": "native", "model.gradient_checkpointing": "true", "lora.dropout": 0.1,
                               "train.max_steps": 1, "data.subset.limit": 2, "data.max_length": 192,
                               "optim.batch_size": 1, "optim.grad_accum": 1, "lora.target_modules": "all-linear"}))
    run_training(cfg, quiet=True)
    err = capsys.readouterr().err
    assert err.count("kernels fast path: ") == 1 and err.count("kernels: cuda_graph") == 1
    assert "kernels fast path: 14/14 LoRA projections, 2/2 MLPs, 5/5 RMSNorms, 2/2 RoPE" in err
    assert "kernels: cuda_graph off (auto: off (no CUDA device" in err and "offload_activations off" in err
    assert "WARNING" not in err
    start = next(e for e in read_log(run) if e["event"] == "start")
    assert start["fast_path"]["lora"] == {"fast": 14, "total": 14, "off": {}}
    assert start["fast_path_off_majority"] == []
    plan = start["kernels_plan"]
    assert (plan["cuda_graph"], plan["offload_activations"], plan["offload_mlp"]) == (False, False, 0.0)
    assert "no CUDA device" in plan["why"]["cuda_graph"] and "no CUDA device" in plan["why"]["offload_activations"]
    assert any(e["event"] == "step" for e in read_log(run))
    # the run doctor reads the same counts back
    fast = next(f for f in diagnose_run(run) if f.name == "fast path")
    assert fast.severity == "ok" and "kernels fast path: 14/14 lora, 2/2 mlp" in fast.detail
    assert "cuda_graph False" in fast.detail


def test_native_run_names_the_projections_off_the_fast_path_and_warns_when_most_are(small_dataset, tmp_path,
                                                                                   tiny_overrides, capsys):
    run = tmp_path / "d"
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, run, **{"backend": "native", "lora.dora": "true", "train.max_steps": 1,
                               "data.subset.limit": 2, "lora.target_modules": "all-linear"}))
    FineTuneRecipe(cfg, quiet=True).setup()
    err = capsys.readouterr().err
    assert "  14 LoRA projections off the fast path: DoRA or another LoRA variant" in err
    assert "WARNING: the kernels' fast path is off for 14 of 14 LoRA projections" in err
    start = next(e for e in read_log(run) if e["event"] == "start")
    assert start["fast_path"]["lora"] == {"fast": 0, "total": 14, "off": {"DoRA or another LoRA variant": 14}}
    assert set(start["fast_path_off_majority"]) == {"lora", "mlp"}
    fast = next(f for f in diagnose_run(run) if f.name == "fast path")
    assert fast.severity == "problem" and "14 lora: DoRA or another LoRA variant" in fast.detail


def test_doctor_fast_path_previews_a_shipped_config_without_a_gpu(capsys):
    """The 7B legal config's skeleton on the meta device: 32 layers x (q, o) LoRA projections, dropout 0.05
    included, on the fast path; what auto would choose on one CUDA GPU."""
    from contract_review.cli import main

    assert main(["doctor", "--fast-path", str(CONFIGS / "llama2-7b_lora_1gpu.yaml")]) == 0
    out = capsys.readouterr().out
    assert "kernels fast path: 64/64 LoRA projections, 32/32 MLPs, 65/65 RMSNorms, 32/32 RoPE" in out
    assert "kernels: cuda_graph on (auto: on" in out and "offload_mlp 0.5" in out
    assert "off the fast path" not in out and "WARNING" not in out


@pytest.mark.parametrize("option, what", [
    ("kernels.cuda_graph=true", "kernels.cuda_graph: true cannot run here: no CUDA device"),
    ("kernels.offload_activations=true", "kernels.offload_activations: true needs a CUDA device"),
    ("kernels.offload_mlp=0.5", "kernels.offload_mlp: 0.5 needs a CUDA device")])
def test_a_kernels_option_the_cpu_cannot_honour_is_refused_at_start(small_dataset, tmp_path, tiny_overrides, option,
                                                                   what):
    key, value = option.split("=")
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "c", **{"backend": "native", "model.gradient_checkpointing": "true",
                                          "train.max_steps": 1, "data.subset.limit": 2, key: value}))
    with pytest.raises(TrainingError) as err:
        run_training(cfg, quiet=True)
    assert what in str(err.value) and ("false (or auto)" in str(err.value) or "0 (or auto)" in str(err.value))
    assert not (tmp_path / "c" / "adapter").exists()


def test_unsloth_where_it_is_not_installed_stops_with_the_fix(small_dataset, tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "unsloth", None)  # `import unsloth` fails, as where it is not installed
    with pytest.raises(TrainingError, match="unsloth is not installed here") as err:
        run_training(_cfg(small_dataset, tmp_path / "u", tiny_overrides, backend="unsloth"), quiet=True)
    assert "contract-review[unsloth]" in str(err.value)


def test_liger_on_the_cpu_stops_with_the_fix(small_dataset, tmp_path, tiny_overrides):
    with pytest.raises(TrainingError, match="backend liger: .*CUDA device.*backend: hf"):
        run_training(_cfg(small_dataset, tmp_path / "l", tiny_overrides, backend="liger"), quiet=True)
