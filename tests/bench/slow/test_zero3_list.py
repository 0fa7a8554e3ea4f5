"""bench/lists/zero3.sh on the CPU, scaled down (the tiny model, 2 steps, the Triton interpreter, DeepSpeed on
one gloo process): the list's three entries run the code the GPU call will run, each leaves its row, the
ZeRO-3 rows record how they gathered, and the profile part leaves a ranked table per gather."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="DeepSpeed is an optional extra: pip install 'contract-review[deepspeed]'")

ROOT = Path(__file__).resolve().parents[3]


def _build_deepspeed_cpu_comm_op(env: dict) -> None:
    """DeepSpeed on the CPU compiles a shared-memory comm op at its first start (minutes on two busy cores, over
    the list's GPU-sized caps; a GPU never builds it): built here first, outside the entries' caps."""
    code = "from deepspeed.comm.torch import build_shm_op; build_shm_op()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=600)


def test_the_zero3_list_runs_its_three_entries_on_a_tiny_model(tmp_path, small_dataset):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"),
           "INSTALL": "0", "RUN_ID": "cpu-zero3", "BENCH_RUNS": str(tmp_path / "runs"), "TRITON_INTERPRET": "1",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu", "TOK": "default",
           "BENCH_RESULTS": str(tmp_path / "out" / "runs.jsonl"), "MIN": "3",
           "ZERO3_MODEL": (f"model.config=tiny-llama model.dtype=float32 train.precision=fp32 data.max_length=128 "
                           f"data.subset.limit=16 data.dir={small_dataset}"),
           "ZERO3_STEPS": "train.max_steps=2", "PART": "all", "ZERO3_EXTRA": "distributed.param_persistence_threshold=0"}
    _build_deepspeed_cpu_comm_op(env)
    p = subprocess.run(["bash", "bench/gpu_run.sh", "zero3", "600"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, (tmp_path / "out" / "runs.jsonl").read_text().splitlines())}
    assert set(rows) == {"single_native7", "zero3_layer_native7", "zero3_module_native7"}, p.stdout[-3000:]
    for name, r in rows.items():
        assert not r.get("error"), (name, r.get("error"), p.stdout[-3000:])
        assert r["steps_done"] == 2 and r["tokens_per_s"] > 0 and r["backend"] == "native"
    assert rows["single_native7"]["strategy"] == "single"
    layer, module = rows["zero3_layer_native7"], rows["zero3_module_native7"]
    assert layer["strategy"] == module["strategy"] == "zero3"
    assert layer["zero"]["gather"] == "layer" and module["zero"]["gather"] == "module"
    counts = layer["zero3"]["counts"]
    assert layer["zero3"]["decoder_layers"] == 2 and counts["hits"] > 0 and counts.get("recompute_gathers", 0) == 0
    assert module["zero3"] == {"gather": "module"}
    # the profile part: one profiled step per gather, its ranked table in the call's profiles file
    profiles = (tmp_path / "out" / "profiles_cpu-zero3.txt").read_text()
    for gather in ("layer", "module"):
        assert f"### profile_zero3_{gather}.txt" in profiles and "1 profiled step(s)" in profiles, p.stdout[-3000:]
