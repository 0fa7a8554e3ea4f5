"""bench/training: the rows of the training benchmark, and its device script run on the CPU.

- fast: rows from hand-written run logs (median after the warm-up, MFU, per-rank peak memory, scaling
  efficiency against the single-GPU native row, loss-curve differences, error and skipped rows);
- ~30 s: `gpu_run.sh E` with SMOKE=1 (tiny model, gloo, ZeRO-3 in 2 processes): the real launch
  commands of the loss-curve phase, their rows and the PNG;
- slow: every other phase of both device calls, scaled down the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench" / "training"))

CONFIGS = ROOT / "configs"
H200 = 989.4e12


# -- rows from hand-written logs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The default model's tokenizer files without its weights: what .gpuassets/smollm2-tok holds."""
    from contract_review.training.models import default_model_dir

    src = default_model_dir()
    if not (src / "tokenizer.json").exists():
        pytest.skip("the default model (its tokenizer) is not cached here")
    dest = tmp_path_factory.mktemp("tok")
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, dest / f.name)
    return dest


def _smoke(phases: str, tmp: Path, data: Path, tok: Path, budget: int = 400) -> dict[str, dict]:
    out = tmp / "out"
    env = {**os.environ, "SMOKE": "1", "PY": sys.executable, "DATA": str(data), "TOK": str(tok), "OUT": str(out),
           "RUNS": str(tmp / "runs"), "CONTRACT_REVIEW_CACHE": str(tmp / "cache"), "RUN_ID": "smoke"}
    env.pop("PYTHONPATH", None)
    p = subprocess.run(["bash", "bench/training/gpu_run.sh", phases, str(budget)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=budget + 60)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, (out / "train_bench.jsonl").read_text().splitlines())}
    assert rows, p.stdout[-3000:]
    return rows


def test_gpu_run_loss_curve_phase_on_cpu(small_dataset, tokenizer_dir, tmp_path):
    """Phase E as on the device: one saved model, 1 process vs ZeRO-3 in 1 and 2 processes, same global batch."""
    rows = _smoke("E", tmp_path, small_dataset, tokenizer_dir)
    assert set(rows) == {"E.curve_single", "E.curve_z3n1", "E.curve_z3n2"}
    for r in rows.values():
        assert "error" not in r, r.get("error")
        assert len(r["loss"]) == 4 and r["run_id"] == "smoke" and r["global_batch"] == 4
    z2 = rows["E.curve_z3n2"]
    assert z2["gpus"] == 2 and len(z2["peak_mem_gib_per_rank"]) == 2 and z2["micro_batch"] == 2
    assert "torch.distributed.run" in z2["command"] and "--nproc_per_node 2" in z2["command"]
    # fp32 on the CPU: the same weights, adapters and batches; ranks' mean losses averaged is the only change
    assert rows["E.curve_z3n1"]["loss_vs_single"]["max_abs_diff"] < 1e-4
    assert z2["loss_vs_single"]["max_abs_diff"] < 1e-2
    assert (tmp_path / "out" / "loss_1v2.png").exists()
    assert (tmp_path / "out" / "runs" / "E.curve_z3n2" / "metrics.jsonl").exists()


def test_gpu_run_every_other_phase_on_cpu(small_dataset, tokenizer_dir, tmp_path):
    """call1 and call2's other phases (A7 B2 U C13n D C13h) scaled down: every run leaves a row."""
    rows = _smoke("A7 B2 U C13n D C13h", tmp_path, small_dataset, tokenizer_dir, budget=500)
    expect = {"A7.single_hf7", "A7.single_native7", "A7.z3n1_native7", "A7.z3n1_hf7", "B2.z3n2_native7",
              "B2.z3n2_hf7", "U.single_native13", "U.single_hf7", "U.single_native7", "U.single_unsloth7",
              "C13n.z3n2_native13", "D.offload13", "C13h.z3n2_hf13"}
    assert set(rows) == expect
    try:
        import unsloth  # noqa: F401
        has_unsloth = True
    except ImportError:
        has_unsloth = False
    for name, r in rows.items():
        if name == "U.single_unsloth7" and not has_unsloth:
            assert "unsloth is not installed" in r["error"]
            continue
        assert "error" not in r, (name, r.get("error"))
        assert r["tokens_per_s"] > 0 and r["peak_mem_gib_per_rank"]
    assert rows["D.offload13"]["zero"]["offload_params"] and rows["D.offload13"]["strategy"] == "zero3_offload"
    assert rows["B2.z3n2_native7"]["scaling_efficiency"] is not None  # against A7.single_native7, same call
    assert rows["C13n.z3n2_native13"]["scaling_reference"].startswith("U.single_native13")
