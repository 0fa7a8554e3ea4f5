"""The LoRA recipe end to end on CPU: tiny random Llama, the real default model, kill and resume."""

from pathlib import Path

import pytest
import torch

from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.errors import TrainingError
from contract_review.training.logging import read_log
from contract_review.training.precision import cpu_precision
from contract_review.training.preflight import PreflightError
from contract_review.training.recipe.finetune import FineTuneRecipe

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def _losses(run_dir: Path) -> list[float]:
    return [e["loss"] for e in read_log(run_dir) if e["event"] == "step"]


def test_resume_without_a_checkpoint_says_so_before_building_the_model(small_dataset, tmp_path, tiny_overrides):
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(small_dataset, tmp_path / "c"))
    with pytest.raises(PreflightError, match="no checkpoint"):
        run_training(cfg, resume=True, quiet=True)
    assert not (tmp_path / "c").exists()


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

    monkeypatch.setattr(FineTuneRecipe, "train_step", oom)
    with pytest.raises(TrainingError) as err:
        run_training(cfg, quiet=True)
    msg = str(err.value)
    assert "out of memory" in msg and "peak seen" in msg and "grad_accum" in msg and "gradient_checkpointing" in msg


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


def test_early_stopping_keeps_the_best_adapter_and_says_why_it_stopped(small_dataset, tmp_path, tiny_overrides):
    """lr 1e-12: the eval loss does not move, so the second evaluation is no better than the first and
    patience 1 stops the run there; the adapter of the first evaluation is what the run returns."""
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "es", **{"optim.lr": 1e-12, "train.max_steps": 10, "train.eval_every": 1,
                                           "train.early_stopping_patience": 1, "data.subset.limit": 4,
                                           "optim.batch_size": 2, "optim.grad_accum": 1}))
    assert run_training(cfg, quiet=True) == 0
    events = read_log(tmp_path / "es")
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [1, 2] and [e["best"] for e in evals] == [True, False]
    assert next(e for e in events if e["event"] == "stop")["reason"] == "early_stopping"
    assert torch.load(tmp_path / "es" / "best" / "trainable.pt", weights_only=False)["step"] == 1
    assert (tmp_path / "es" / "adapter" / "adapter_model.safetensors").exists()


def test_auto_precision_trains_in_the_cpus_choice_and_logs_it(small_dataset, tmp_path, tiny_overrides):
    """The shipped CPU config asks for `auto`: the run uses the processor's choice (fp32 on a CPU
    without native bf16) and its start event says which, and why."""
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
        small_dataset, tmp_path / "auto", **{"train.precision": "auto", "train.max_steps": 1,
                                             "optim.batch_size": 2, "optim.grad_accum": 1, "data.subset.limit": 4}))
    assert load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml").train.precision == "auto"
    assert run_training(cfg, quiet=True) == 0
    start = next(e for e in read_log(tmp_path / "auto") if e["event"] == "start")
    choice = cpu_precision()
    assert start["precision"] == choice.precision and start["precision_reason"] == f"{choice.how}: {choice.reason}"


def test_the_graphed_step_path_trains_as_the_plain_step_does(small_dataset, tmp_path, tiny_overrides):
    """kernels.cuda_graph's step (training/backends/graph_step.py) where no CUDA graph can run: the same
    GraphedSteps the recipe uses on a GPU, eager here (rows padded to data.max_length, the loss divided by
    grad_accum inside the step); two steps give the plain step's losses and adapter weights."""
    from contract_review.training.backends.graph_step import GraphedSteps

    def two_steps(graphed: bool, name: str):
        cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(
            small_dataset, tmp_path / name, **{"optim.grad_accum": 2, "optim.batch_size": 2, "data.subset.limit": 8,
                                               "train.max_steps": 2}))
        recipe = FineTuneRecipe(cfg, quiet=True).setup()
        if graphed:
            recipe.graphed = GraphedSteps(recipe.strategy.net, recipe.objective, cfg, recipe.device, enabled=None)
        losses = [recipe.train_step()["loss"] for _ in range(2)]
        weights = {n: p.detach().clone() for n, p in recipe.model.named_parameters() if p.requires_grad}
        return losses, weights, recipe

    plain, w_plain, _ = two_steps(False, "plain")
    graphed, w_graphed, recipe = two_steps(True, "graphed")
    assert recipe.graphed.describe()["eager"] == 4 and not recipe.graphed.describe().get("captures")
    assert graphed == pytest.approx(plain, rel=1e-4)
    for n in w_plain:
        torch.testing.assert_close(w_graphed[n], w_plain[n], rtol=1e-4, atol=1e-6)
