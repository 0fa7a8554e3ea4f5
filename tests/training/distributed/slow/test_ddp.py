"""DDP on CPU: two processes over gloo, started with torchrun, as on a GPU host."""

import os
import subprocess
import sys
from pathlib import Path

from contract_review.training.logging import read_log

ROOT = Path(__file__).resolve().parents[4]


def test_ddp_two_processes_on_cpu_train_checkpoint_and_save_an_adapter(small_dataset, tmp_path, tiny_overrides):
    over = tiny_overrides(small_dataset, tmp_path / "ddp", **{
        "distributed.strategy": "ddp", "distributed.backend": "gloo", "train.max_steps": 4, "train.save_every": 2,
        "optim.batch_size": 1, "optim.grad_accum": 2, "optim.lr": 1e-2, "data.subset.limit": 8,
        "train.eval_every": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TRITON_INTERPRET": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           "-m", "contract_review.cli", "train", "--config", str(ROOT / "configs" / "smollm2-135m_lora_cpu.yaml"),
           *over]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    events = read_log(tmp_path / "ddp")
    start = next(e for e in events if e["event"] == "start")
    assert start["world_size"] == 2 and start["strategy"] == "ddp"
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 4 and all(e["loss"] == e["loss"] for e in steps)
    # both ranks' tokens are counted: two micro-batches of one packed row each, on each of two ranks
    assert all(e["tokens"] > 0 for e in steps)
    assert [e["step"] for e in events if e["event"] == "eval"] == [2, 4]
    stop = next(e for e in events if e["event"] == "stop")
    assert len(stop["peak_mem_gib_per_rank"]) == 2
    assert (tmp_path / "ddp" / "adapter" / "adapter_model.safetensors").exists()
    assert (tmp_path / "ddp" / "checkpoints" / "step-000004" / "state.pt").exists()
