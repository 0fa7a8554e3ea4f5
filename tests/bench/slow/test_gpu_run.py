"""bench/gpu_run.sh and bench/train.py on the CPU, scaled down: a list of real benchmark commands under one time
budget (every entry leaves a row: measured, killed at its cap, skipped), and the loss-curve check of the
multi-GPU list (one process against ZeRO-3 in two, same global batch, same saved model) over gloo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = str(Path(sys.executable).parent)  # `python3` in the lists is this interpreter
TINY = ("model.config=tiny-llama model.dtype=float32 train.precision=fp32 lora.dropout=0 data.max_length=64 "
        "model.attn_implementation=sdpa")


def _env(tmp: Path, **extra) -> dict:
    """The environment of a device call, on this machine: every row goes to tmp/out/runs.jsonl."""
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "OUT": str(tmp / "out"), "INSTALL": "0",
            "RUN_ID": "cpu-check", "BENCH_RUNS": str(tmp / "runs"), "TRITON_INTERPRET": "0", "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu", "BENCH_RESULTS": str(tmp / "out" / "runs.jsonl"),
            **extra}


def _rows(tmp: Path) -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, (tmp / "out" / "runs.jsonl").read_text().splitlines())}


def test_a_list_runs_inside_its_budget_and_every_entry_leaves_a_row(tmp_path, small_dataset):
    lst = tmp_path / "cpu.sh"
    lst.write_text(f"""
TINY="{TINY}"
bench step_hf 120 python3 bench/lora_step.py --config configs/llama2-7b_lora_1gpu.yaml --bs 1 --warmup 0 --steps 1 $TINY backend=hf
bench train_hf 120 python3 bench/train.py run --warmup 1 --config configs/llama2-7b_lora_1gpu.yaml $TINY backend=hf \\
  data.dir={small_dataset} data.max_length=320 data.subset.limit=4 optim.batch_size=2 optim.grad_accum=1 train.max_steps=2 data.eval_split=null
bench sleeper 5 python3 -c "import time; time.sleep(60)" bench/micro.py
bench pytest_entry 60 python3 -m pytest tests/bench/test_harness.py -q -p no:cacheprovider -k source
bench no_gpu 600 python3 bench/micro.py
bench too_short 2 python3 bench/micro.py
""")
    p = subprocess.run(["bash", "bench/gpu_run.sh", str(lst), "400"], cwd=ROOT, env=_env(tmp_path, MIN="3"),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = _rows(tmp_path)
    assert set(rows) == {"step_hf", "train_hf", "sleeper", "no_gpu", "too_short"}, p.stdout[-3000:]
    assert all(r["run_id"] == "cpu-check" for r in rows.values())
    assert rows["step_hf"]["tokens_per_s"] > 0 and not rows["step_hf"].get("error")
    t = rows["train_hf"]
    assert not t.get("error") and t["source"] == "train" and t["strategy"] == "single" and t["gpus"] == 1
    assert t["tokens_per_s"] > 0 and len(t["loss"]) == 2 and t["overrides"][-1] == "data.eval_split=null"
    assert any(o.startswith("train.max_minutes=") for o in t["harness_overrides"]) and t["fast_path"] is None
    assert rows["sleeper"]["source"] == "micro" and "time cap" in rows["sleeper"]["error"]
    # micro.py refuses a machine without CUDA before it measures anything: the runner writes its row
    assert rows["no_gpu"]["error"].startswith("no_gpu ended rc=2") and "crash; logs/no_gpu.log" in rows["no_gpu"]["error"]
    assert rows["too_short"]["error"].startswith("skipped: 2s for it (its cap 2s")
    tests_log = (tmp_path / "out" / "tests_cpu-check.log").read_text()
    assert "===== pytest_entry rc=0" in tests_log and "passed" in tests_log
    assert "## cpu-check" in p.stdout  # the call's summary, printed at its end


@pytest.mark.skipif(__import__("importlib").util.find_spec("deepspeed") is None, reason="DeepSpeed: an optional extra")
def test_the_loss_curve_of_zero3_on_two_processes_follows_one_process(tmp_path, small_dataset):
    """The curve runs of bench/lists/train_x2.sh, tiny: one process with micro-batch 4 against ZeRO-3 in two
    with micro-batch 2 (the same global batch), both from one saved random model, fp32 on the CPU."""
    env = _env(tmp_path)
    model = tmp_path / "model"
    subprocess.run([sys.executable, "bench/train.py", "save-model", "--dir", str(model), "--tokenizer", "default",
                    "--preset", "tiny-llama", "--seed", "42"], cwd=ROOT, env=env, check=True, capture_output=True)
    curve = [f"model.name={model}", "model.random_init=false", "model.dtype=float32", "train.precision=fp32",
             "lora.dropout=0", f"data.dir={small_dataset}", "data.max_length=128", "data.subset.limit=12",
             "data.eval_split=null", "optim.lr=1e-3", "optim.grad_accum=1", "train.max_steps=4", "backend=hf",
             "distributed.backend=gloo", "model.attn_implementation=sdpa"]
    for name, gpus, config, extra in (("single", 1, "configs/llama2-7b_lora_1gpu.yaml", ["optim.batch_size=4"]),
                                      ("zero3_2gpu", 2, "configs/llama2-13b_lora_zero3.yaml",
                                       # every weight partitioned: the tiny layers would all stay resident
                                       ["optim.batch_size=2", "distributed.param_persistence_threshold=0"])):
        cmd = [sys.executable, "bench/train.py", "run", "--warmup", "0", "--curve", name, "--gpus", str(gpus),
               "--cap", "240", "--config", config, *curve, *extra]
        subprocess.run(cmd, cwd=ROOT, env={**env, "BENCH_NAME": f"curve_{name}"}, check=True, capture_output=True,
                       timeout=300)
    rows = _rows(tmp_path)
    one, two = rows["curve_single"], rows["curve_zero3_2gpu"]
    assert not one.get("error") and not two.get("error"), (one.get("error"), two.get("error"))
    assert two["strategy"] == "zero3" and two["gpus"] == 2 and len(two["peak_mem_gib_per_rank"]) == 2
    assert "torch.distributed.run" in two["command"] and "--nproc_per_node 2" in two["command"]
    assert one["global_batch"] == two["global_batch"] == 4
    sys.path.insert(0, str(ROOT / "bench"))
    import summary

    d = summary.curve_diffs([one, two])["zero3_2gpu"]
    # the same weights, adapters and batches; the ranks' mean losses averaged is the only change
    assert d["steps"] == 4 and d["first"] < 1e-3 and d["max"] < 1e-2, d
