"""Result rows of the training benchmark (issues #5 and #8), from the runs' own logs.

Every benchmark run is a real `python -m contract_review.cli train` (bench/training/gpu_run.sh starts
them); this helper reads what the run wrote (RUN/metrics.jsonl, RUN/config.yaml, the launcher log)
and makes one row per run, or an error row when the run failed, was killed at its time cap, or was
skipped for lack of time.

    train_bench.py add --name N --phase P --strategy single|zero3|zero3_offload --gpus G \\
                       --run-dir RUN --log LOG --rc RC --rows DIR [--warmup W] [--curve TAG] [--command CMD]
    train_bench.py finalize --rows DIR --out OUT/train_bench.jsonl [--plot OUT/loss_1v2.png]
    train_bench.py plot --out OUT/train_bench.jsonl --plot loss_1v2.png      (re-plot elsewhere)
    train_bench.py save-model --dir D --tokenizer T --preset P [--overrides JSON] [--seed S]

A row: backend, model, micro_batch, seq_len, lora_r, tokens_per_s (median over the steps after the
warm-up; all GPUs together), peak_mem_gib (per GPU: max over ranks) and peak_mem_gib_per_rank, mfu,
card, gpus, run_id, versions, command, strategy, loss (one value per step) and, finalized, for
multi-GPU rows scaling_efficiency = tokens/s at N GPUs / (N x single-GPU native tokens/s of the same
model, micro-batch and sequence length measured in the same call).

MFU = tokens/s x FLOPs per token / (GPUs x 989.4e12), FLOPs per token = 6*N_linear + 4*N_lm_head +
8*T*d*L (T = data.max_length; the kernels bench's and the anchors' convention, training.logging).
Tokens are real (non-padding) tokens of packed rows, so a row that is not full counts less.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

MFU_FORMULA = ("tokens/s x (6*N_linear + 4*N_lm_head + 8*T*d*L) / (gpus x peak); T = data.max_length, "
               "peak 989.4e12 (H100/H200 dense bf16 datasheet)")
VERSIONS = ("torch", "transformers", "peft", "deepspeed", "triton", "accelerate", "unsloth", "unsloth_zoo",
            "bitsandbytes", "trl", "pydantic")


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in VERSIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def read_jsonl(path: Path) -> list[dict]:
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return out


def read_config(run_dir: Path, train_args: list[str] | None = None) -> dict:
    """The run's config.yaml; for a run that died before writing it, the same config rebuilt from
    the command line it was given (`--config FILE key=value ...`)."""
    path = run_dir / "config.yaml"
    if path.exists():
        import yaml

        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    args = list(train_args or [])
    if "--config" not in args:
        return {}
    i = args.index("--config")
    try:
        from contract_review.training.config import load_config

        return load_config(args[i + 1], args[:i] + args[i + 2:]).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - a config that does not load is itself in the error row
        return {}


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


def _median(xs):
    return statistics.median(xs) if xs else None


def build_row(a) -> dict:
    run_dir = Path(a.run_dir)
    cfg = read_config(run_dir, a.train_args)
    events = read_jsonl(run_dir / "metrics.jsonl")
    start = next((e for e in events if e.get("event") == "start"), {})
    stop = next((e for e in reversed(events) if e.get("event") == "stop"), None)
    errors = [e for e in events if e.get("event") == "error"]
    steps = [e for e in events if e.get("event") == "step"]
    m, lora, data, optim, dist = (cfg.get(k, {}) for k in ("model", "lora", "data", "optim", "distributed"))
    row = {
        "name": a.name, "phase": a.phase, "backend": cfg.get("backend", a.backend),
        "backend_effective": start.get("backend"),
        "model": (m.get("config") or m.get("name")) if m.get("random_init") else m.get("name"),
        "random_init": m.get("random_init"), "strategy": a.strategy, "gpus": a.gpus,
        "micro_batch": optim.get("batch_size"), "grad_accum": optim.get("grad_accum"),
        "global_batch": (optim.get("batch_size") or 0) * (optim.get("grad_accum") or 0) * a.gpus or None,
        "seq_len": data.get("max_length"), "packing": data.get("packing"),
        "lora_r": lora.get("r"), "lora_alpha": lora.get("alpha"), "lora_targets": lora.get("target_modules"),
        "lora_dropout": lora.get("dropout"), "dtype": m.get("dtype"), "precision": cfg.get("train", {}).get("precision"),
        "gradient_checkpointing": m.get("gradient_checkpointing"), "attn": m.get("attn_implementation"),
        "attention_mask": ("causal over the whole packed row (Unsloth drops the 4-D mask while training)"
                           if cfg.get("backend") == "unsloth" else "4-D block-diagonal causal mask per packed example"),
        "card": start.get("card"), "run_id": os.environ.get("RUN_ID", a.run_id), "versions": versions(),
        "command": a.command, "rc": a.rc, "cap_s": a.cap, "t_launch": a.t_launch,
        "train_rows": start.get("train_rows"), "trainable_params": start.get("trainable_params"),
        "kernels_patched": start.get("kernels_patched"), "model_shape": start.get("model_shape"),
        "flops_per_token": start.get("flops_per_token"), "peak_flops": start.get("peak_flops"),
        "mfu_formula": MFU_FORMULA, "n_warmup": a.warmup,
    }
    if dist.get("strategy") == "deepspeed":
        row["zero"] = {"stage": dist.get("zero_stage"), "offload_params": dist.get("offload_params"),
                       "offload_optimizer": dist.get("offload_optimizer"),
                       "param_persistence_threshold": dist.get("param_persistence_threshold")}
    if a.curve:
        row["curve"] = a.curve
    if a.note:
        row["note"] = a.note
    if a.skipped:
        row["error"] = f"skipped: {a.skipped}"
        return row
    row["loss"] = [e.get("loss") for e in steps]
    row["step_s"] = [e.get("step_s") for e in steps]
    row["tokens_per_step"] = [e.get("tokens") for e in steps]
    row["steps_done"] = len(steps)
    timed = [e for e in steps if e.get("step", 0) > a.warmup and e.get("tokens_per_s")]
    if not timed and steps:  # too few steps for the warm-up: measure what there is, and say so
        timed = steps[-1:]
        row["warning"] = f"only {len(steps)} steps: no step after the {a.warmup}-step warm-up"
    row["n_timed"] = len(timed)
    if timed:
        tps = [e["tokens_per_s"] for e in timed]
        row["tokens_per_s"] = _median(tps)
        row["tokens_per_s_mean"] = sum(e["tokens"] for e in timed) / sum(e["step_s"] for e in timed)
        row["tokens_per_s_per_gpu"] = row["tokens_per_s"] / a.gpus
        row["step_s_median"] = _median([e["step_s"] for e in timed])
        row["tokens_per_s_min_max"] = [min(tps), max(tps)]
        fpt, peak = start.get("flops_per_token"), start.get("peak_flops")
        row["mfu"] = row["tokens_per_s"] * fpt / (peak * a.gpus) if fpt and peak else None
    if stop is not None:
        row["stop_reason"] = stop.get("reason")
        row["peak_mem_gib"] = stop.get("peak_mem_gib")
        row["peak_mem_gib_per_rank"] = stop.get("peak_mem_gib_per_rank")
        row["train_s"] = stop.get("train_s")
    elif steps:  # killed before the end: rank 0's running peak is all there is
        row["peak_mem_gib"] = max((e.get("peak_mem_gib") or 0) for e in steps)
        row["peak_mem_gib_per_rank"] = None
        row["peak_mem_note"] = "rank 0 only (the run did not reach its end)"
    killed = a.rc is not None and (a.rc in (124, 137) or a.rc < 0)
    if stop is None or (a.rc not in (0, None) and not steps):
        why = (f"killed at the {a.cap}s time cap (rc {a.rc})" if killed else f"exit status {a.rc}") if a.rc else "no stop event"
        detail = "; ".join(f"{e.get('kind')}: {e.get('message') or e.get('loss') or e.get('peak_mem_gib')}"
                           for e in errors) or log_error(Path(a.log) if a.log else None)
        row["error"] = f"{why}" + (f": {detail}" if detail else "") + (f" (after {len(steps)} steps)" if steps else "")
    elif a.rc not in (0, None):
        # training finished (stop event written) but something after it failed: the numbers stand
        row["warning"] = f"exit status {a.rc} after training: {log_error(Path(a.log) if a.log else None)}"
    return row


def cmd_add(a) -> int:
    row = build_row(a)
    rows = Path(a.rows)
    rows.mkdir(parents=True, exist_ok=True)
    tmp = rows / f".{a.name}.json.tmp"
    tmp.write_text(json.dumps(row) + "\n", encoding="utf-8")
    os.replace(tmp, rows / f"{a.name}.json")
    print(summary_line(row))
    return 0


# -- finalize ---------------------------------------------------------------------------------------

def _ok(r) -> bool:
    return "error" not in r and r.get("tokens_per_s")


def add_scaling(rows: list[dict]) -> None:
    def find(**kv):
        for r in rows:
            if _ok(r) and "curve" not in r and all(r.get(k) == v for k, v in kv.items()):
                return r
        return None

    for r in rows:
        if not _ok(r) or "curve" in r or r["gpus"] < 2:
            continue
        key = dict(model=r["model"], micro_batch=r["micro_batch"], seq_len=r["seq_len"], run_id=r["run_id"])
        ref = find(strategy="single", backend="native", gpus=1, **key)
        if ref:
            r["scaling_efficiency"] = r["tokens_per_s"] / (r["gpus"] * ref["tokens_per_s"])
            r["scaling_reference"] = f"{ref['name']}: single-GPU native, {ref['tokens_per_s']:.0f} tokens/s"
        else:
            r["scaling_efficiency"] = None
            r["scaling_reference"] = "no single-GPU native row of the same model/micro-batch/seq in this call"
        same = find(strategy="single", backend=r["backend"], gpus=1, **key)
        if same:
            r["scaling_efficiency_vs_single_same_backend"] = r["tokens_per_s"] / (r["gpus"] * same["tokens_per_s"])
        z1 = find(strategy=r["strategy"], backend=r["backend"], gpus=1, **key)
        if z1:  # the anchors' definition: against ZeRO-3 itself on one GPU
            r["scaling_efficiency_vs_zero3_1gpu"] = r["tokens_per_s"] / (r["gpus"] * z1["tokens_per_s"])


def add_backend_loss_checks(rows: list[dict]) -> None:
    """Single-GPU rows of one call start from the same random weights (same seed, built on the GPU) and
    see the same batches, and LoRA starts as a no-op: step 1's loss must agree across backends (bf16
    rounding aside); later steps drift apart slowly. A check that a backend computes the same model."""
    for r in rows:
        if r.get("strategy") != "single" or r.get("backend") == "hf" or "curve" in r or not r.get("loss"):
            continue
        ref = next((h for h in rows if h.get("strategy") == "single" and h.get("backend") == "hf" and "curve" not in h
                    and h.get("loss") and all(h.get(k) == r.get(k) for k in ("model", "micro_batch", "seq_len",
                                                                              "run_id"))), None)
        if ref is None:
            continue
        n = min(len(ref["loss"]), len(r["loss"]))
        d = [abs(x - y) for x, y in zip(ref["loss"][:n], r["loss"][:n]) if x is not None and y is not None]
        if d:
            r["loss_vs_hf"] = {"reference": ref["name"], "step1_abs_diff": d[0], "max_abs_diff": max(d),
                               "steps_compared": n}


def add_curve_diffs(rows: list[dict]) -> dict | None:
    curves = [r for r in rows if r.get("curve") and r.get("loss")]
    ref = next((r for r in curves if r["curve"] == "single"), None)
    if ref is None:
        return None
    out = {}
    for r in curves:
        if r is ref:
            continue
        n = min(len(ref["loss"]), len(r["loss"]))
        d = [abs(x - y) for x, y in zip(ref["loss"][:n], r["loss"][:n]) if x is not None and y is not None]
        if not d:
            continue
        r["loss_vs_single"] = {"steps_compared": n, "max_abs_diff": max(d), "mean_abs_diff": sum(d) / len(d),
                               "max_abs_diff_at_step": d.index(max(d)) + 1, "first_step_abs_diff": d[0]}
        out[r["curve"]] = r["loss_vs_single"]
    return out


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    curves = [r for r in rows if r.get("curve") and r.get("loss")]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = next((r for r in curves if r["curve"] == "single"), None)
    fig, (ax, dx) = plt.subplots(2, 1, figsize=(8, 6.5), dpi=110, sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1.4]})
    title = []
    for r in curves:
        xs = list(range(1, len(r["loss"]) + 1))
        label = f"{r['curve']}: {r['strategy']}, {r['gpus']} GPU, micro-batch {r['micro_batch']}"
        ax.plot(xs, r["loss"], lw=1.2, label=label)
        if ref is not None and r is not ref and r.get("loss_vs_single"):
            n = r["loss_vs_single"]["steps_compared"]
            dx.plot(xs[:n], [a - b for a, b in zip(r["loss"][:n], ref["loss"][:n])], lw=1, label=r["curve"])
            title.append(f"{r['curve']} max |diff| {r['loss_vs_single']['max_abs_diff']:.4f}")
    r0 = curves[0]
    ax.set_title(f"training loss, {r0.get('model')} shape, real data, global batch {r0.get('global_batch')}, "
                 f"seed 42\n" + "; ".join(title), fontsize=9)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    dx.axhline(0, color="k", lw=0.5)
    dx.set_ylabel("loss - single")
    dx.set_xlabel("step")
    dx.grid(alpha=0.3)
    if dx.get_legend_handles_labels()[0]:
        dx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_line(r: dict) -> str:
    head = f"{r['name']:18s} {r.get('backend') or '?':7s} {r['strategy']:13s} {r['gpus']}g {str(r.get('model')):26.26s} " \
           f"mb={r.get('micro_batch')} T={r.get('seq_len')}"
    if "error" in r:
        part = f" tok/s={r['tokens_per_s']:.0f}" if r.get("tokens_per_s") else ""
        return f"{head} ERROR{part} {r['error'][:300]}"
    s = f"{head} tok/s={r['tokens_per_s']:.0f} step={r['step_s_median']:.3f}s peak={r.get('peak_mem_gib') or 0:.2f}GiB"
    if r.get("peak_mem_gib_per_rank"):
        s += f" {r['peak_mem_gib_per_rank']}"
    if r.get("mfu") is not None:
        s += f" mfu={r['mfu']:.3f}"
    if r.get("scaling_efficiency") is not None:
        s += f" eff={r['scaling_efficiency']:.2f}"
    if r.get("scaling_efficiency_vs_zero3_1gpu") is not None:
        s += f" eff_z3_1g={r['scaling_efficiency_vs_zero3_1gpu']:.2f}"
    if r.get("loss"):
        s += f" loss {r['loss'][0]:.4f}->{r['loss'][-1]:.4f}"
    if r.get("loss_vs_hf"):
        s += f" |dloss| vs hf step1 {r['loss_vs_hf']['step1_abs_diff']:.4f} max {r['loss_vs_hf']['max_abs_diff']:.4f}"
    if r.get("loss_vs_single"):
        s += f" max|dloss| vs single {r['loss_vs_single']['max_abs_diff']:.4f}"
    if r.get("warning"):
        s += f" WARNING {r['warning'][:160]}"
    return s


def cmd_finalize(a) -> int:
    rows = [json.loads(Path(p).read_text(encoding="utf-8")) for p in glob.glob(os.path.join(a.rows, "*.json"))]
    rows.sort(key=lambda r: (r.get("t_launch") or 0, r["name"]))
    add_scaling(rows)
    add_backend_loss_checks(rows)
    diffs = add_curve_diffs(rows)
    out = Path(a.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, out)
    for r in rows:
        print(summary_line(r))
    if diffs:
        print("loss curves vs single:", json.dumps(diffs))
    if a.plot:
        try:
            p = plot_curves(rows, Path(a.plot))
            if p:
                print(f"plot: {p}")
        except Exception as exc:  # no matplotlib: re-plot elsewhere with `plot`
            print(f"plot failed ({type(exc).__name__}: {exc}); run `train_bench.py plot` where matplotlib is")
    print(f"{len(rows)} rows -> {out}")
    return 0


def cmd_plot(a) -> int:
    rows = read_jsonl(Path(a.out))
    add_curve_diffs(rows)
    print(plot_curves(rows, Path(a.plot)))
    return 0


def cmd_save_model(a) -> int:
    """A random model of a preset (with overrides) and the tokenizer in one folder: the same
    weights for every run that loads it (1 GPU, ZeRO-3 on N GPUs)."""
    import torch

    from contract_review.training.models import load_causal_lm, load_tokenizer

    t0 = time.time()
    tok = load_tokenizer(a.tokenizer)
    model = load_causal_lm(config=a.preset, random_init=True, dtype=torch.float32,
                           overrides=json.loads(a.overrides) if a.overrides else None,
                           vocab_size=len(tok), seed=a.seed)
    model.save_pretrained(a.dir, safe_serialization=True)
    tok.save_pretrained(a.dir)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved {a.preset} {a.overrides or ''} ({n / 1e6:.1f}M parameters) to {a.dir} in {time.time() - t0:.1f}s")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("add")
    p.add_argument("--name", required=True)
    p.add_argument("--phase", default="")
    p.add_argument("--strategy", required=True, choices=["single", "zero3", "zero3_offload"])
    p.add_argument("--backend", default=None, help="only used when the run wrote no config")
    p.add_argument("--gpus", type=int, required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--log", default=None)
    p.add_argument("--rc", type=int, default=None)
    p.add_argument("--cap", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--curve", default=None, help="tag of a loss-curve run (single, zero3_2gpu, ...)")
    p.add_argument("--command", default="")
    p.add_argument("--note", default=None)
    p.add_argument("--skipped", default=None, help="the run was not started: why")
    p.add_argument("--run-id", default=None)
    p.add_argument("--t-launch", type=float, default=None)
    p.add_argument("--rows", required=True)
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="after --: the run's own `--config FILE key=value ...` (for runs that wrote no config)")
    p.set_defaults(func=cmd_add)
    p = sub.add_parser("finalize")
    p.add_argument("--rows", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--plot", default=None)
    p.set_defaults(func=cmd_finalize)
    p = sub.add_parser("plot")
    p.add_argument("--out", required=True)
    p.add_argument("--plot", required=True)
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("save-model")
    p.add_argument("--dir", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--preset", required=True)
    p.add_argument("--overrides", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_save_model)
    a = ap.parse_args(argv)
    if getattr(a, "train_args", None) and a.train_args[0] == "--":
        a.train_args = a.train_args[1:]
    return a.func(a)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: training.*
    sys.exit(main())
