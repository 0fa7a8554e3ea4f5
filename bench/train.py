"""`contract-review train` end to end, timed from the run's own log: one run, one row.

    python bench/train.py run --config CONFIG [key=value ...] [--gpus N] [--cap S] [--warmup W] [--curve TAG]
    python bench/train.py save-model --dir D --tokenizer T --preset P [--overrides JSON] [--seed S]

`run` starts the real command (`python -m contract_review.cli train`, under `torch.distributed.run`
with N processes when `--gpus` is above 1 or the config distributes), with the config and overrides
given and three of its own, which change what is measured by nothing: `output.dir` (a scratch folder),
`train.progress=false`, and `train.max_minutes` (the run stops cleanly, checkpoint and card written,
before the `--cap` seconds are up; the command is killed at the cap if it does not). Then it reads what
the run wrote (RUN/metrics.jsonl, RUN/config.yaml, the launcher's log) and appends one row to the
results table (harness.py), source `train`:

    config, overrides (the given ones; [] when the config ran as shipped), harness_overrides, backend,
    strategy (single | ddp | zero<stage>[_offload]), gpus, model, micro_batch, seq_len, lora_*,
    tokens_per_s (median over the steps after --warmup, all GPUs together; real tokens of packed rows),
    peak_mem_gib (max over ranks) and peak_mem_gib_per_rank, mfu, loss (every step), fast_path (the
    counts the run logged at start: per kind fast/total/reasons off; null for a backend without our
    kernels), kernels_plan (what the `kernels:` options came to, and why), cuda_graph (captures and
    replays, from the stop event), kernels_patched, card, commit, run_id, versions, command

or an error row when the run failed, was killed at its cap, or wrote no steps. MFU = tokens/s x FLOPs
per token / (GPUs x 989.4e12), FLOPs per token = 6*N_linear + 4*N_lm_head + 8*T*d*L (T =
data.max_length; training.logging). Comparisons across rows (scaling efficiency against the one-GPU
row, step-1 loss against hf, loss curves of `--curve` runs) are summary.py's.

`save-model` writes a random model of a preset and the tokenizer once, so that runs on 1 and N GPUs
(`--curve` runs) load the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

import harness
from contract_review.training.config import ConfigError, load_config
from contract_review.training.models import load_causal_lm, load_tokenizer

RUNS = Path(os.environ.get("BENCH_RUNS", "/tmp/bench_train_runs"))  # scratch: the runs' own folders
MFU_FORMULA = ("tokens/s x (6*N_linear + 4*N_lm_head + 8*T*d*L) / (gpus x peak); T = data.max_length, "
               "peak 989.4e12 (H100/H200 dense bf16 datasheet)")


def read_jsonl(path: Path) -> list[dict]:
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return out


def log_error(log: Path | None, limit: int = 600) -> str:
    """The most telling line of a failed run's log: the last exception line, else the last lines."""
    if not log or not log.exists():
        return ""
    lines = [x.rstrip() for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    # an exception with its message (not the launcher's ChildFailedError, which only says a child failed)
    exc = re.compile(r"(^|\s|\])(error: |[\w.]*(Error|Exception): \S)")
    for line in reversed(lines):
        if exc.search(line) and "ChildFailedError" not in line and "Warning" not in line:
            return line[-limit:]
    keys = ("Error", "error:", "Exception", "Killed", "out of memory", "Traceback")
    for line in reversed(lines):
        if any(k in line for k in keys) and "Warning" not in line and not line.lstrip().startswith("File "):
            return line[-limit:]
    return " | ".join(lines[-3:])[-limit:]


def strategy_name(dist: dict, start: dict) -> str:
    if dist.get("strategy") == "auto":  # what it resolved to (the run's start event says)
        choice = start.get("strategy_choice") or {}
        dist = {**dist, "strategy": choice.get("strategy"), "zero_stage": 3,
                "offload_params": choice.get("offload_params") or dist.get("offload_params")}
    if dist.get("strategy") == "deepspeed":
        offload = dist.get("offload_params") or dist.get("offload_optimizer")
        return f"zero{dist.get('zero_stage')}" + ("_offload" if offload else "")
    return {"none": "single"}.get(dist.get("strategy"), dist.get("strategy") or "single")


def build_row(base: dict, cfg: dict, run_dir: Path, gpus: int, warmup: int, rc: int | None, cap: int | None,
              log: Path | None) -> dict:
    """The row of one finished (or failed) run, from what it wrote: config.yaml (``cfg``: the validated
    config as a dict), metrics.jsonl and the launcher's log."""
    events = read_jsonl(run_dir / "metrics.jsonl")
    start = next((e for e in events if e.get("event") == "start"), {})
    stop = next((e for e in reversed(events) if e.get("event") == "stop"), None)
    errors = [e for e in events if e.get("event") == "error"]
    steps = [e for e in events if e.get("event") == "step"]
    m, lora, data, optim, dist = (cfg.get(k, {}) for k in ("model", "lora", "data", "optim", "distributed"))
    row = dict(base)
    row.update({
        "backend": cfg.get("backend"), "objective": cfg.get("objective"),
        "model": (m.get("config") or m.get("name")) if m.get("random_init") else m.get("name"),
        "random_init": m.get("random_init"), "strategy": strategy_name(dist, start), "gpus": gpus,
        "micro_batch": optim.get("batch_size"), "grad_accum": optim.get("grad_accum"),
        "global_batch": (optim.get("batch_size") or 0) * (optim.get("grad_accum") or 0) * gpus or None,
        "seq_len": data.get("max_length"), "packing": data.get("packing"),
        "lora_r": lora.get("r"), "lora_alpha": lora.get("alpha"), "lora_targets": lora.get("target_modules"),
        "lora_dropout": lora.get("dropout"), "quantize": lora.get("quantize"), "dtype": m.get("dtype"),
        "precision": cfg.get("train", {}).get("precision"), "gradient_checkpointing": m.get("gradient_checkpointing"),
        "attn": start.get("attn_implementation") or m.get("attn_implementation"),
        "kernels": cfg.get("kernels") if cfg.get("backend") == "native" else None,
        "card": start.get("card") or base.get("card"), "train_rows": start.get("train_rows"), "trainable_params": start.get("trainable_params"),
        "kernels_patched": start.get("kernels_patched"), "fast_path": start.get("fast_path"),
        "kernels_plan": start.get("kernels_plan"), "model_shape": start.get("model_shape"),
        "flops_per_token": start.get("flops_per_token"), "peak_flops": start.get("peak_flops"),
        "mfu_formula": MFU_FORMULA, "n_warmup": warmup, "rc": rc, "cap_s": cap,
    })
    if dist.get("strategy") == "deepspeed":
        row["zero"] = {k: dist.get(k) for k in ("zero_stage", "offload_params", "offload_optimizer",
                                                "param_persistence_threshold", "gather")}
    # how ZeRO-3 gathered (layer: units, GiB per forward, prefetch hits, recompute gathers) and why auto chose
    row["zero3"] = (stop or {}).get("zero3") or start.get("zero3")
    row["strategy_choice"] = start.get("strategy_choice")
    row["loss"] = [e.get("loss") for e in steps]
    row["step_s"] = [e.get("step_s") for e in steps]
    row["tokens_per_step"] = [e.get("tokens") for e in steps]
    row["steps_done"] = len(steps)
    timed = [e for e in steps if e.get("step", 0) > warmup and e.get("tokens_per_s")]
    if not timed and steps:  # too few steps for the warm-up: measure what there is, and say so
        timed = steps[-1:]
        row["warning"] = f"only {len(steps)} steps: no step after the {warmup}-step warm-up"
    row["n_timed"] = len(timed)
    if timed:
        tps = [e["tokens_per_s"] for e in timed]
        row["tokens_per_s"] = statistics.median(tps)
        row["tokens_per_s_mean"] = sum(e["tokens"] for e in timed) / sum(e["step_s"] for e in timed)
        row["tokens_per_s_per_gpu"] = row["tokens_per_s"] / gpus
        row["step_s_median"] = statistics.median(e["step_s"] for e in timed)
        row["tokens_per_s_min_max"] = [min(tps), max(tps)]
        fpt, peak = start.get("flops_per_token"), start.get("peak_flops")
        row["mfu"] = row["tokens_per_s"] * fpt / (peak * gpus) if fpt and peak else None
    else:
        row["tokens_per_s"] = None
    if stop is not None:
        row["stop_reason"] = stop.get("reason")
        row["peak_mem_gib"] = stop.get("peak_mem_gib")
        row["peak_mem_gib_per_rank"] = stop.get("peak_mem_gib_per_rank")
        row["train_s"] = stop.get("train_s")
        row["cuda_graph"] = stop.get("cuda_graph")
    elif steps:  # killed before the end: rank 0's running peak is all there is
        row["peak_mem_gib"] = max((e.get("peak_mem_gib") or 0) for e in steps)
        row["peak_mem_gib_per_rank"] = None
        row["peak_mem_note"] = "rank 0 only (the run did not reach its end)"
    else:
        row["peak_mem_gib"] = None
    killed = rc is not None and (rc in (124, 137) or rc < 0)
    if stop is None or (rc not in (0, None) and not steps):
        why = (f"killed at the {cap}s time cap (rc {rc})" if killed else f"exit status {rc}") if rc else "no stop event"
        detail = "; ".join(f"{e.get('kind')}: {e.get('message') or e.get('loss') or e.get('peak_mem_gib')}"
                           for e in errors) or log_error(log)
        row["error"] = why + (f": {detail}" if detail else "") + (f" (after {len(steps)} steps)" if steps else "")
    elif rc not in (0, None):
        # training finished (stop event written) but something after it failed: the numbers stand
        row["warning"] = f"exit status {rc} after training: {log_error(log)}"
    return row


def train_command(config: str, overrides: list[str], nproc: int) -> list[str]:
    # --overwrite: an entry run again replaces its earlier run, checkpoints included
    head = [sys.executable, "-m", "contract_review.cli", "train", "--overwrite", "--config", config]
    if nproc > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                "-m", "contract_review.cli", "train", "--overwrite", "--config", config]
    return head + overrides


def launch(cmd: list[str], log: Path, cap: int | None) -> int:
    """Runs ``cmd`` (output to ``log``) in its own process group; at ``cap`` seconds the whole group gets
    SIGTERM, then SIGKILL 10 s later (a launcher's workers included). Returns the exit status (124: killed)."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return 124


def cmd_run(a) -> int:
    try:
        cfg = load_config(a.config, a.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = os.environ.get("BENCH_NAME") or Path(a.config).stem
    run_dir = Path(a.runs) / name
    minutes = max(0.25, ((a.cap or 0) - a.startup - 15) / 60) if a.cap else None
    harness_overrides = [f"output.dir={run_dir}", "train.progress=false"]
    if minutes is not None:
        harness_overrides.append(f"train.max_minutes={minutes:.2f}")
    gpus = a.gpus
    nproc = gpus if (gpus > 1 or cfg.distributed.strategy != "none") else 1
    cmd = train_command(a.config, [*a.overrides, *harness_overrides], nproc)
    base = dict(harness.record("train", cmd, device=False), config=a.config, overrides=list(a.overrides),
                harness_overrides=harness_overrides)
    if a.curve:
        base["curve"] = a.curve
    if a.note:
        base["note"] = a.note
    if a.cap is not None and a.cap < a.min_cap:
        harness.append(dict(base, gpus=gpus, error=f"skipped: a cap of {a.cap}s is under the {a.min_cap}s this run "
                                                   "needs to start and take steps"), a.out)
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.jsonl", "config.yaml"):
        (run_dir / stale).unlink(missing_ok=True)
    log = run_dir.parent / f"{name}.log"
    print(f"[bench] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.time()
    rc = launch(cmd, log, a.cap)
    print(f"[bench] {name}: rc={rc} after {time.time() - t0:.0f}s; log {log}", flush=True)
    written = run_dir / "config.yaml"
    cfg_dict = yaml.safe_load(written.read_text(encoding="utf-8")) if written.exists() else cfg.model_dump(mode="json")
    row = build_row(base, cfg_dict, run_dir, gpus, a.warmup, rc, a.cap, log)
    harness.append(row, a.out)
    return 0


def cmd_save_model(a) -> int:
    t0 = time.time()
    tok = load_tokenizer(a.tokenizer)
    model = load_causal_lm(config=a.preset, random_init=True, dtype=torch.float32,
                           overrides=json.loads(a.overrides) if a.overrides else None, vocab_size=len(tok), seed=a.seed)
    model.save_pretrained(a.dir, safe_serialization=True)
    tok.save_pretrained(a.dir)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved {a.preset} {a.overrides or ''} ({n / 1e6:.1f}M parameters) to {a.dir} in {time.time() - t0:.1f}s")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="one `contract-review train` run, one row")
    p.add_argument("--config", required=True)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--gpus", type=int, default=1, help="processes (one GPU each); above 1: torch.distributed.run")
    p.add_argument("--cap", type=int, default=int(os.environ["BENCH_CAP"]) if os.environ.get("BENCH_CAP") else None,
                   help="seconds for the whole run, start-up included (default: $BENCH_CAP, which gpu_run.sh sets)")
    p.add_argument("--startup", type=int, default=45, help="expected seconds before the first step (the run's "
                                                           "train.max_minutes leaves room for them)")
    p.add_argument("--min-cap", type=int, default=20, help="a cap under this is a skipped row, not a run")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of tokens/s")
    p.add_argument("--curve", default=None, help="tag of a loss-curve run (single, zero3_2gpu, ...)")
    p.add_argument("--note", default=None)
    p.add_argument("--runs", default=str(RUNS), help="where the runs' folders go (scratch)")
    p.add_argument("--out", default=None, help="results table (default: $BENCH_RESULTS or bench/results/runs.jsonl)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("save-model", help="a random model and a tokenizer in one folder, for --curve runs")
    p.add_argument("--dir", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--preset", required=True)
    p.add_argument("--overrides", default=None, help="config.json fields, as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_save_model)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
