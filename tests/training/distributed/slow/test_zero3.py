"""DeepSpeed ZeRO-3 on CPU: two processes over gloo, started with torchrun, as on a GPU host."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contract_review.training.logging import read_log

pytest.importorskip("deepspeed", reason="DeepSpeed is an optional extra: pip install 'contract-review[deepspeed]'")

ROOT = Path(__file__).resolve().parents[4]
CPU_ENV = {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TRITON_INTERPRET": "0"}


def _torchrun_zero3(overrides: list[str], port: int) -> None:
    """`torchrun --nproc_per_node 2 -m contract_review.cli train` of the shipped ZeRO-3 config, on the CPU."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "contract_review.cli", "train", "--config", str(ROOT / "configs" / "llama2-13b_lora_zero3.yaml"),
           *overrides]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **CPU_ENV}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_zero3_two_processes_on_cpu_train_and_save_an_adapter(small_dataset, tmp_path, tiny_overrides):
    over = tiny_overrides(small_dataset, tmp_path / "z3", **{
        "distributed.strategy": "deepspeed", "distributed.zero_stage": 3, "distributed.backend": "gloo",
        "train.max_steps": 3, "train.save_every": 2, "optim.batch_size": 1, "optim.grad_accum": 1,
        "optim.lr": 1e-2, "data.subset.limit": 8, "train.eval_every": 3})
    _torchrun_zero3(over, port=29517)
    events = read_log(tmp_path / "z3")
    assert next(e for e in events if e["event"] == "start")["world_size"] == 2
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert len(losses) == 3 and all(x == x for x in losses)
    assert (tmp_path / "z3" / "adapter" / "adapter_model.safetensors").exists()
    assert (tmp_path / "z3" / "checkpoints" / "step-000002" / "deepspeed").exists()


def test_zero3_with_parameters_and_optimizer_offloaded_to_the_cpu_trains(small_dataset, tmp_path, tiny_overrides):
    over = tiny_overrides(small_dataset, tmp_path / "off", **{
        "distributed.strategy": "deepspeed", "distributed.zero_stage": 3, "distributed.backend": "gloo",
        "distributed.offload_params": "true", "distributed.offload_optimizer": "true", "train.max_steps": 2,
        "optim.batch_size": 1, "optim.grad_accum": 1, "optim.lr": 1e-2, "data.subset.limit": 8})
    _torchrun_zero3(over, port=29519)
    events = read_log(tmp_path / "off")
    assert next(e for e in events if e["event"] == "start")["strategy"] == "deepspeed"
    assert len([e for e in events if e["event"] == "step"]) == 2
    assert (tmp_path / "off" / "adapter" / "adapter_model.safetensors").exists()


def test_the_deepspeed_launcher_starts_the_same_zero3_run(small_dataset, tmp_path, tiny_overrides):
    """`deepspeed --num_gpus N --module contract_review.cli train ...`: the launcher puts --local_rank=N
    before the command, which the CLI must accept; both ranks train and rank 0 logs world size 2."""
    import shutil

    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    over = tiny_overrides(small_dataset, tmp_path / "ds", **{
        "distributed.strategy": "deepspeed", "distributed.zero_stage": 3, "distributed.backend": "gloo",
        "train.max_steps": 2, "optim.batch_size": 1, "optim.grad_accum": 1, "data.subset.limit": 8})
    env = {**os.environ, **CPU_ENV}
    cmd = [launcher, "--num_gpus", "2", "--master_port", "29523", "--module", "contract_review.cli", "train",
           "--config", str(ROOT / "configs" / "llama2-13b_lora_zero3.yaml"), *over]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    events = read_log(tmp_path / "ds")
    assert next(e for e in events if e["event"] == "start")["world_size"] == 2
    assert len([e for e in events if e["event"] == "step"]) == 2
