"""The LoRA recipe end to end on CPU: tiny random Llama, the real default model, kill and resume."""

import json
import math
from pathlib import Path

import pytest

from contract_review.taxonomy import load_taxonomy
from contract_review.training.checkpoint import latest
from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.logging import read_log
from contract_review.training.recipe.finetune import FineTuneRecipe

CONFIGS = Path(__file__).resolve().parents[4] / "configs"


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
    real_step = FineTuneRecipe.train_step
    calls = {"n": 0}

    def dying_step(self):
        calls["n"] += 1
        if calls["n"] == 5:  # killed during step 5, after the checkpoint of step 3
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(FineTuneRecipe, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_training(killed, quiet=True)
    monkeypatch.setattr(FineTuneRecipe, "train_step", real_step)
    assert latest(tmp_path / "b" / "checkpoints").name == "step-000003"
    run_training(killed, resume=True, quiet=True)

    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    assert any(e["event"] == "resume" for e in read_log(tmp_path / "b"))


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
    # one threshold per type of the taxonomy, the checklist types among them; the four heads' labels
    types = list(load_taxonomy().clause_type_ids)
    assert meta["labels"]["clause_type"] == types and len(meta["thresholds"]) == len(types)
    assert {"indemnification", "force_majeure", "confidentiality"} <= set(types)
    assert set(meta["labels"]) >= {"clause_type", "party", "risk_to", "severity"} and "risk" not in meta["labels"]
    assert (adapter / "heads.safetensors").exists() and (adapter / "adapter_model.safetensors").exists()


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
