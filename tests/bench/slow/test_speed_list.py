"""bench/lists/speed.sh on the CPU: every entry of the GPU call, the same commands through bench/gpu_run.sh and
`contract-review train`, with a tiny Llama and up to 2 steps (its EXTRA overrides; the caps are the GPU's;
Triton's interpreter for the kernels). Each entry leaves a row; ours record the fast-path counts and what the
`kernels:` options came to."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = str(Path(sys.executable).parent)  # `python3` in the list is this interpreter


def test_every_entry_of_the_speed_list_runs_on_a_tiny_model(tmp_path, small_dataset):
    extra = (f"model.name=default model.config=tiny-llama model.dtype=float32 train.precision=fp32 "
             f"model.attn_implementation=sdpa model.overrides={{\"initializer_range\":0.5}} data.dir={small_dataset} "
             "data.max_length=192 data.subset.limit=4 data.eval_split=null optim.batch_size=1 optim.grad_accum=1 "
             "train.max_steps=2")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"), "INSTALL": "0",
           "RUN_ID": "cpu-speed", "BENCH_RUNS": str(tmp_path / "runs"), "TRITON_INTERPRET": "1",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOK": "default", "EXTRA": extra, "MIN": "3",
           "CAP_SCALE": "5", "PART": "all"}
    p = subprocess.run(["bash", "bench/gpu_run.sh", "speed", "3000"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=3100)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, (tmp_path / "out" / "runs.jsonl").read_text().splitlines())}
    ours = ("legal7", "curve_fused", "all7", "legal7_eager", "mistral7", "llama13")
    unsloth = ("all7_unsloth", "legal7_unsloth", "mistral7_unsloth", "llama13_unsloth")
    assert set(rows) == {*ours, "legal7_peft", "curve_peft", *unsloth}, p.stdout[-3000:]
    for name in (*ours, "legal7_peft", "curve_peft"):
        r = rows[name]
        assert not r.get("error") and r["loss"] and r["tokens_per_s"] > 0, (name, r.get("error"))
        assert r["config"].startswith("configs/") and r["run_id"] == "cpu-speed"
    for name in ours:  # backend native: every LoRA projection on the fused path, dropout 0.05 included
        r = rows[name]
        assert r["backend"] == "native" and r["lora_dropout"] == 0.05
        assert r["fast_path"]["lora"]["fast"] == r["fast_path"]["lora"]["total"] > 0, r["fast_path"]
        plan = r["kernels_plan"]  # auto on the CPU: off, saying why; legal7_eager sets it off itself
        why = "set in the config" if name == "legal7_eager" else "no CUDA device"
        assert plan["cuda_graph"] is False and why in plan["why"]["cuda_graph"], plan
    assert rows["legal7"]["overrides"][:1] == ["model.name=default"]
    assert rows["legal7_peft"]["backend"] == "hf" and rows["legal7_peft"]["fast_path"] is None
    assert rows["curve_fused"]["curve"] == "fused" and rows["curve_peft"]["curve"] == "peft"
    assert rows["all7"]["lora_targets"] == "all-linear" and rows["all7"]["lora_r"] == 16
    assert rows["mistral7"]["config"] == "configs/mistral-7b_lora_1gpu.yaml"
    assert rows["llama13"]["config"] == "configs/llama2-13b_lora_1gpu.yaml"
    for name in unsloth:  # Unsloth needs a CUDA GPU: on the CPU its entries are error rows naming why
        assert rows[name]["error"] and rows[name]["backend"] == "unsloth", rows[name]
        assert rows[name]["config"] == rows[name.removesuffix("_unsloth")]["config"]
