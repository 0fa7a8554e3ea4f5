"""DeepSpeed ZeRO-3 (parameters partitioned, one CPU rank over gloo): a patched tiny Llama with peft LoRA
trains to the same losses as the unpatched one. Under ZeRO-3 the LoRA projections take peft's path (their
weights are partitioned and hooked), RMSNorm/RoPE/SwiGLU run ours, and the fused loss reads lm_head as
ZeRO-3 gathered it. Runs in its own process (zero3_check.py): DeepSpeed initialises torch.distributed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")


# the first run on a machine compiles DeepSpeed's CPU comm op (~1-2 min); later ~20 s
def test_zero3_partitioned_training_matches_unpatched():
    here = Path(__file__).resolve().parents[2]  # tests/kernels, where zero3_check.py lives
    env = dict(os.environ, DS_ACCELERATOR="cpu", KERNELS_TEST_DEVICE="cpu", MASTER_PORT="29531")
    proc = subprocess.run([sys.executable, str(here / "zero3_check.py")], capture_output=True, text=True,
                          timeout=600, env=env, cwd=here.parent.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ZERO3 ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    curves = json.loads(lines[-1][len("ZERO3 "):])
    for a, b in zip(curves["ours"], curves["ref"]):
        assert abs(a - b) <= 1e-4 * abs(b), curves
