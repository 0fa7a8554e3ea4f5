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

from contract_review.training.config import dump_config, load_config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "training"))
import train_bench as tb  # noqa: E402

CONFIGS = ROOT / "configs"
H200 = 989.4e12


# -- rows from hand-written logs -------------------------------------------------------------------

def _run(tmp: Path, name: str, config: str, overrides: list[str], steps: list[tuple[float, float, int]] | None,
         stop: dict | None, fpt: float = 4.0e10, card: str = "NVIDIA H200") -> Path:
    """A run folder as the recipe writes it: config.yaml and metrics.jsonl (steps: (loss, step_s, tokens))."""
    run = tmp / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(load_config(CONFIGS / config, overrides)))
    events = [{"event": "start", "step": 0, "backend": "hf", "world_size": 1, "card": card, "flops_per_token": fpt,
               "peak_flops": H200, "train_rows": 100}]
    for i, (loss, dt, tok) in enumerate(steps or [], 1):
        events.append({"event": "step", "step": i, "loss": loss, "tokens": tok, "step_s": dt,
                       "tokens_per_s": tok / dt, "peak_mem_gib": 10.0})
    if stop is not None:
        events.append({"event": "stop", "step": len(steps or []), "reason": "max_steps", **stop})
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


def _add(rows: Path, run: Path, name: str, strategy: str, gpus: int, *extra: str, rc: int = 0, warmup: int = 2):
    assert tb.main(["add", "--name", name, "--phase", "x", "--strategy", strategy, "--gpus", str(gpus),
                    "--run-dir", str(run), "--rows", str(rows), "--rc", str(rc), "--cap", "100",
                    "--warmup", str(warmup), "--command", f"cmd {name}", "--run-id", "R1", *extra]) == 0


BENCH = ["model.config=llama2-7b", "lora.r=16", "lora.target_modules=all-linear", "data.max_length=2048",
         "optim.batch_size=4"]


def test_rows_scaling_mfu_curves_and_error_rows_from_logs(tmp_path, monkeypatch):
    monkeypatch.delenv("RUN_ID", raising=False)
    rows = tmp_path / "rows"
    # two warm-up steps (slow, excluded), then 8192 tokens in 1.0 s, 0.8 s, 1.2 s -> median 8192 tokens/s
    warm = [(10.9, 5.0, 8192), (10.8, 2.0, 8192)]
    native = _run(tmp_path, "native", "llama2-7b_lora_1gpu.yaml", BENCH + ["backend=native"],
                  warm + [(10.7, 1.0, 8192), (10.6, 0.8, 8192), (10.5, 1.2, 8192)],
                  {"peak_mem_gib": 16.1, "peak_mem_gib_per_rank": [16.1]})
    hf = _run(tmp_path, "hf", "llama2-7b_lora_1gpu.yaml", BENCH + ["backend=hf"],
              [(10.9, 5.0, 8192), (10.8, 2.0, 8192), (10.71, 2.0, 8192), (10.61, 2.0, 8192)],
              {"peak_mem_gib": 18.0, "peak_mem_gib_per_rank": [18.0]})
    z3 = ["distributed.strategy=deepspeed", "backend=native"]
    z3n2 = _run(tmp_path, "z3n2", "llama2-13b_lora_zero3.yaml", BENCH + z3,
                warm + [(10.7, 1.0, 14746), (10.6, 1.0, 14746)], {"peak_mem_gib": 14.3, "peak_mem_gib_per_rank": [14.3, 14.2]})
    z3n1 = _run(tmp_path, "z3n1", "llama2-13b_lora_zero3.yaml", BENCH + z3,
                warm + [(10.7, 2.0, 8192)], {"peak_mem_gib": 18.9, "peak_mem_gib_per_rank": [18.9]})
    killed = _run(tmp_path, "killed", "llama2-13b_lora_zero3.yaml", BENCH + z3 + ["model.config=llama2-13b"],
                  warm + [(10.7, 4.0, 4096)], None)
    log = tmp_path / "killed.log"
    log.write_text("step 3\n[rank0]: RuntimeError: NCCL timeout in all_gather\nChildFailedError:\n")
    curve = ["model.config=tiny-llama", "optim.batch_size=8"]
    c1 = _run(tmp_path, "c1", "llama2-7b_lora_1gpu.yaml", curve, [(10.8, 0.1, 4096), (9.0, 0.1, 4096), (8.0, 0.1, 4096)],
              {"peak_mem_gib": 1.0, "peak_mem_gib_per_rank": [1.0]})
    c2 = _run(tmp_path, "c2", "llama2-13b_lora_zero3.yaml", curve[:1] + ["optim.batch_size=4"],
              [(10.8, 0.1, 4096), (9.05, 0.1, 4096), (7.98, 0.1, 4096)],
              {"peak_mem_gib": 1.0, "peak_mem_gib_per_rank": [1.0, 1.0]})

    _add(rows, native, "native", "single", 1, "--t-launch", "1")
    _add(rows, hf, "hf", "single", 1, "--t-launch", "2")
    _add(rows, z3n2, "z3n2", "zero3", 2, "--t-launch", "3")
    _add(rows, z3n1, "z3n1", "zero3", 1, "--t-launch", "4")
    _add(rows, killed, "killed", "zero3", 2, "--t-launch", "5", "--log", str(log), rc=124)
    _add(rows, tmp_path / "never", "skipped", "zero3_offload", 1, "--t-launch", "6", "--skipped", "only 10s left",
         "--", "--config", str(CONFIGS / "llama2-13b_lora_zero3.yaml"), "model.config=llama2-13b",
         "optim.batch_size=1")
    _add(rows, c1, "c1", "single", 1, "--t-launch", "7", "--curve", "single", warmup=0)
    _add(rows, c2, "c2", "zero3", 2, "--t-launch", "8", "--curve", "zero3_2gpu", warmup=0)
    out, png = tmp_path / "train_bench.jsonl", tmp_path / "loss_1v2.png"
    assert tb.main(["finalize", "--rows", str(rows), "--out", str(out), "--plot", str(png)]) == 0
    got = {r["name"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(got) == ["native", "hf", "z3n2", "z3n1", "killed", "skipped", "c1", "c2"]  # launch order

    n = got["native"]
    for key in ("backend", "model", "micro_batch", "seq_len", "lora_r", "tokens_per_s", "peak_mem_gib", "mfu", "card",
                "gpus", "run_id", "versions", "command", "strategy", "loss", "peak_mem_gib_per_rank"):
        assert key in n, key
    assert (n["backend"], n["model"], n["micro_batch"], n["seq_len"], n["lora_r"]) == ("native", "llama2-7b", 4, 2048, 16)
    assert n["tokens_per_s"] == pytest.approx(8192) and n["n_timed"] == 3  # the warm-up steps are not counted
    assert n["mfu"] == pytest.approx(8192 * 4.0e10 / H200)
    assert n["loss"] == [10.9, 10.8, 10.7, 10.6, 10.5] and n["run_id"] == "R1" and "torch" in n["versions"]
    assert "6*N_linear + 4*N_lm_head + 8*T*d*L" in n["mfu_formula"]
    assert n["loss_vs_hf"]["step1_abs_diff"] == pytest.approx(0) and n["loss_vs_hf"]["max_abs_diff"] == pytest.approx(0.01)

    z = got["z3n2"]
    assert z["peak_mem_gib_per_rank"] == [14.3, 14.2] and z["peak_mem_gib"] == 14.3
    assert z["zero"]["stage"] == 3 and z["zero"]["param_persistence_threshold"] == 1_000_000
    assert z["tokens_per_s"] == pytest.approx(14746)
    assert z["mfu"] == pytest.approx(14746 * 4.0e10 / (2 * H200))
    assert z["scaling_efficiency"] == pytest.approx(14746 / (2 * 8192))            # vs single-GPU native
    assert z["scaling_efficiency_vs_zero3_1gpu"] == pytest.approx(14746 / (2 * 4096))
    assert "scaling_efficiency" not in got["z3n1"]                                   # one GPU: nothing to scale

    k = got["killed"]
    assert k["error"].startswith("killed at the 100s time cap (rc 124)") and "NCCL timeout" in k["error"]
    assert k["tokens_per_s"] == pytest.approx(1024) and k["model"] == "llama2-13b"  # what it measured before
    assert "rank 0 only" in k["peak_mem_note"]
    s = got["skipped"]
    assert s["error"] == "skipped: only 10s left" and s["micro_batch"] == 1 and s["model"] == "llama2-13b"

    c = got["c2"]["loss_vs_single"]
    assert c["max_abs_diff"] == pytest.approx(0.05) and c["max_abs_diff_at_step"] == 2 and c["first_step_abs_diff"] == 0
    assert png.exists() and png.stat().st_size > 10_000


# -- the device script on the CPU ------------------------------------------------------------------

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


def test_every_device_run_has_a_valid_config(tmp_path):
    """CHECK=1: each run of both device calls, at full size, through `train --check` (no training)."""
    env = {**os.environ, "CHECK": "1", "PY": sys.executable, "OUT": str(tmp_path)}
    p = subprocess.run(["bash", "bench/training/gpu_run.sh", "call1 call2"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    lines = [x for x in p.stdout.splitlines() if x.startswith("CHECK ")]
    assert p.returncode == 0 and len(lines) == 16, p.stdout[-2000:] + p.stderr[-2000:]
    assert all(" rc=0 " in x for x in lines), [x[:200] for x in lines if " rc=0 " not in x]
    z3 = next(x for x in lines if x.startswith("CHECK B2.z3n2_native7 "))
    assert "CUDA_VISIBLE_DEVICES=0,1" in z3 and "--nproc_per_node 2" in z3 and "model.config=llama2-7b" in z3
    assert "distributed.param_persistence_threshold=1000000" in z3 and "data.max_length=2048" in z3
    off = next(x for x in lines if x.startswith("CHECK D.offload13 "))
    assert "distributed.offload_params=true" in off and "optim.batch_size=1" in off and "llama2-13b" in off


def test_reviewer_gpu_script_parses_and_refuses_parts_that_do_not_join(tmp_path):
    """bench/training/reviewer_gpu.sh: valid bash; `train` stops with a message when the base model's
    wheel parts are missing (here: none carried), before any install or training."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "bench" / "training" / "reviewer_gpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    r = subprocess.run(["bash", str(script), "train"], cwd=tmp_path, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "PARTS": str(tmp_path / "parts")})
    assert r.returncode == 1 and "missing part" in r.stdout and "stash" in r.stdout
