"""bench/results/SUMMARY.md, generated from the results table (bench/results/runs.jsonl); never edited by hand.

    python bench/summary.py                          rewrite SUMMARY.md from runs.jsonl
    python bench/summary.py --append OUT/runs.jsonl  add a GPU run's rows to runs.jsonl (rows already
                                                     there are skipped), then rewrite SUMMARY.md
    python bench/summary.py --run-id R --print       one run's summary on stdout (what gpu_run.sh prints)
    python bench/summary.py --curves R --plot F.png  the loss curves of run R's `--curve` rows

Per run (newest first), grouped by source:
- lora_step: one line per row (step time, tokens/s, peak memory, MFU, loss), then, for every workload
  measured by several backends in the same run, tokens/s ratios (native/hf, native/unsloth, ...: the
  rows of one run come from one machine, one after the other);
- train: one line per run of `contract-review train`, with the scaling efficiency of a multi-GPU row
  (tokens/s at N GPUs / (N x the one-GPU native row of the same model, micro-batch and length in the
  same run)), step-1 loss against the hf row (LoRA starts as a no-op: backends must agree), and the
  loss-curve differences of `--curve` rows against the one-GPU curve;
- micro: per kernel, ours against PyTorch eager and torch.compile.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import harness

SUMMARY = harness.RESULTS.parent / "SUMMARY.md"
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# rows recorded before the models came from training's presets named their shapes so
MODEL_NAMES = {"7b": "llama2-7b", "13b": "llama2-13b", "mistral7b": "mistral-7b"}
# (numerator, denominator) of the tokens/s ratios printed for each workload of a run
RATIOS = [("native", "hf"), ("native", "unsloth"), ("native+offload", "native"), ("native+offload", "unsloth"),
          ("native", "liger"), ("native+graph", "native"), ("native+graph", "unsloth"),
          ("native+offload+graph", "unsloth"), ("native+flash", "native"), ("native+graph+flash", "native"),
          ("native+graph+flash", "unsloth"), ("native+offload+graph+flash", "unsloth"),
          ("native+graph+efficient", "native"), ("native+offload+mlp0.5+graph", "unsloth"),
          ("native+offload+mlp0.5+graph", "native+offload+graph"), ("native+mlp0.5+graph", "native+graph")]


def _name(r: dict) -> str:
    return str(r.get("name") or r.get("phase") or "-")


# -- lora_step ------------------------------------------------------------------------------------------

def label(r: dict) -> str:
    """The backend and the step's options, e.g. native+offload+mlp0.5+graph."""
    native = r.get("backend") == "native"
    sdpa = r.get("sdpa_backend")
    return (r.get("backend", "?") + ("+offload" if r.get("offload_activations") and native else "")
            + (f"+mlp{r['offload_mlp']:g}" if native and r.get("offload_mlp") else "")
            + (f"+keep{r['stash_keep']}" if native and r.get("stash_keep") else "")
            + ("+keepin" if native and r.get("keep_last_input") else "")
            + ("+qkv3" if native and r.get("fuse_qkv") is False else "")
            + ("+graph" if r.get("cuda_graph") and native else "")
            + (f"+{sdpa}" if sdpa and sdpa != "auto" else "")
            + ("+fullrecompute" if native and r.get("trim_recompute") is False else ""))


def workload(r: dict) -> tuple:
    return (MODEL_NAMES.get(r.get("model"), r.get("model")), r.get("micro_batch"), r.get("seq_len"), r.get("lora_r"),
            r.get("lora_alpha"), tuple(r.get("targets") or ()), bool(r.get("qlora")), r.get("mem_cap_gib"))


def workload_name(key: tuple) -> str:
    model, bs, seq, r, alpha, targets, qlora, cap = (("?" if x is None else x) for x in key)
    t = "all7" if list(targets) == SEVEN else ",".join(x.replace("_proj", "") for x in targets) or "?"
    alpha = f"{alpha:g}" if isinstance(alpha, (int, float)) else alpha
    return (f"{model} mb{bs} T{seq} r{r}/a{alpha} {t}" + (" qlora" if qlora else "")
            + (f" cap{cap:g}GiB" if cap != "?" else ""))


def lora_step_lines(rows: list[dict]) -> list[str]:
    """A line per row, then tokens/s ratios for every workload measured by both sides without error."""
    lines = [f"{'name':17s} {'backend':26s} {'workload':38s} {'step s':>7s} {'tok/s':>7s} {'peakGiB':>7s} "
             f"{'resGiB':>6s} {'MFU':>5s} {'fits':>4s} loss"]
    ok: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        key = workload(r)
        head = f"{_name(r):17.17s} {label(r):26s} {workload_name(key):38s}"
        if r.get("error"):
            lines.append(f"{head} ERROR {str(r['error'])[:160]}")
            continue
        fits = {True: "yes", False: "NO"}.get(r.get("fits_cap"), "-")
        peak = r.get("peak_mem_gib")
        lines.append(f"{head} {r['step_s']:7.3f} {r['tokens_per_s']:7.0f} "
                     + (f"{peak:7.2f} {r.get('peak_reserved_gib') or 0:6.2f} " if peak is not None else f"{'-':>7s} {'-':>6s} ")
                     + f"{r['mfu']:5.3f} {fits:>4s} {r.get('loss_first', float('nan')):.3f}->"
                     f"{r.get('loss_last', float('nan')):.3f}")
        ok.setdefault(key, {})[label(r)] = r
    ratio_lines = []
    for key, by in ok.items():
        parts = []
        for a, b in RATIOS:
            if a in by and b in by:
                ra, rb = by[a], by[b]
                peaks = (f", peak {ra['peak_mem_gib']:.1f} vs {rb['peak_mem_gib']:.1f} GiB"
                         if ra.get("peak_mem_gib") is not None and rb.get("peak_mem_gib") is not None else "")
                parts.append(f"{a}/{b} {ra['tokens_per_s'] / rb['tokens_per_s']:.2f}x tok/s{peaks}")
        if parts:
            ratio_lines.append(f"{workload_name(key)}: " + "; ".join(parts))
    if ratio_lines:
        lines += ["", "ratios (same workload, same run):"] + ["  " + x for x in ratio_lines]
    return lines


# -- train ------------------------------------------------------------------------------------------------

def _ok(r: dict) -> bool:
    return not r.get("error") and bool(r.get("tokens_per_s"))


def scaling(r: dict, rows: list[dict]) -> dict:
    """Tokens/s at N GPUs against N x the one-GPU rows of the same model, micro-batch and length in the run."""
    if not _ok(r) or r.get("curve") or (r.get("gpus") or 1) < 2:
        return {}
    key = ("model", "micro_batch", "seq_len", "run_id")

    def find(**kv):
        return next((x for x in rows if _ok(x) and not x.get("curve") and all(x.get(k) == r.get(k) for k in key)
                     and all(x.get(k) == v for k, v in kv.items())), None)

    out = {}
    for tag, ref in (("vs_single_native", find(strategy="single", backend="native", gpus=1)),
                     ("vs_single_same_backend", find(strategy="single", backend=r.get("backend"), gpus=1)),
                     ("vs_same_strategy_1gpu", find(strategy=r.get("strategy"), backend=r.get("backend"), gpus=1))):
        if ref is not None:
            out[tag] = r["tokens_per_s"] / (r["gpus"] * ref["tokens_per_s"])
    return out


def loss_diff(a: list, b: list) -> dict | None:
    n = min(len(a), len(b))
    d = [abs(x - y) for x, y in zip(a[:n], b[:n]) if x is not None and y is not None]
    if not d:
        return None
    return {"steps": n, "first": d[0], "max": max(d), "max_at_step": d.index(max(d)) + 1, "mean": sum(d) / len(d)}


def loss_vs_hf(r: dict, rows: list[dict]) -> dict | None:
    """Single-GPU rows of one run start from the same random weights and see the same batches, and LoRA starts
    as a no-op: step 1's loss must agree across backends (bf16 rounding aside)."""
    if r.get("strategy") != "single" or r.get("backend") == "hf" or r.get("curve") or not r.get("loss"):
        return None
    ref = next((h for h in rows if h.get("strategy") == "single" and h.get("backend") == "hf" and not h.get("curve")
                and h.get("loss") and all(h.get(k) == r.get(k) for k in ("model", "micro_batch", "seq_len", "run_id"))),
               None)
    return loss_diff(ref["loss"], r["loss"]) if ref else None


# the curve the others are compared with: one GPU (the distributed curves), peft's forward (the fused-kernel curve)
REFERENCE_CURVES = ("single", "peft")


def reference_curve(curves: list[dict]) -> dict | None:
    return next((r for tag in REFERENCE_CURVES for r in curves if r["curve"] == tag), None)


def curve_diffs(rows: list[dict]) -> dict[str, dict]:
    curves = [r for r in rows if r.get("curve") and r.get("loss")]
    ref = reference_curve(curves)
    if ref is None:
        return {}
    return {r["curve"]: d for r in curves if r is not ref and (d := loss_diff(ref["loss"], r["loss"]))}


def train_lines(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        head = (f"{_name(r):20.20s} {r.get('backend') or '?':7s} {r.get('strategy') or '?':13s} {r.get('gpus')}g "
                f"{str(r.get('model')):14.14s} mb={r.get('micro_batch')} T={r.get('seq_len')}")
        if r.get("error"):
            part = f" tok/s={r['tokens_per_s']:.0f}" if r.get("tokens_per_s") else ""
            lines.append(f"{head} ERROR{part} {str(r['error'])[:200]}")
            continue
        s = f"{head} tok/s={r['tokens_per_s']:.0f} peak={r.get('peak_mem_gib') or 0:.2f}GiB"
        if r.get("peak_mem_gib_per_rank") and len(r["peak_mem_gib_per_rank"]) > 1:
            s += f" {r['peak_mem_gib_per_rank']}"
        if r.get("mfu") is not None:
            s += f" mfu={r['mfu']:.3f}"
        eff = scaling(r, rows)
        if "vs_single_native" in eff:
            s += f" scaling={eff['vs_single_native']:.2f}"
        if "vs_same_strategy_1gpu" in eff:
            s += f" (vs itself on 1 GPU {eff['vs_same_strategy_1gpu']:.2f})"
        if r.get("loss"):
            s += f" loss {r['loss'][0]:.4f}->{r['loss'][-1]:.4f}"
        hf = loss_vs_hf(r, rows)
        if hf:
            s += f" |dloss| vs hf step1 {hf['first']:.4f} max {hf['max']:.4f}"
        if r.get("warning"):
            s += f" WARNING {str(r['warning'])[:160]}"
        lines.append(s)
    ref = reference_curve([r for r in rows if r.get("curve") and r.get("loss")])
    for tag, d in curve_diffs(rows).items():
        lines.append(f"loss curve {tag} vs {ref['curve']}: max |diff| {d['max']:.4f} at step {d['max_at_step']}, mean "
                     f"{d['mean']:.4f} over {d['steps']} steps, step 1 {d['first']:.4f}")
    return lines


# -- micro --------------------------------------------------------------------------------------------------

def micro_lines(rows: list[dict]) -> list[str]:
    lines = [f"{'op':28s} {'ours ms':>8s} {'eager ms':>8s} {'compile':>8s}  rate (ours / eager / compile)"]
    for r in rows:
        if r.get("error"):
            lines.append(f"{str(r.get('op')):28s} ERROR {str(r['error'])[:160]}")
            continue
        unit = "gbps" if "ours_gbps" in r else "tflops"
        rates = " / ".join(f"{r.get(f'{c}_{unit}', float('nan')):.0f}" for c in ("ours", "eager", "compile"))
        lines.append(f"{r['op']:28s} {r['ours_ms']:8.3f} {r['eager_ms']:8.3f} {r.get('compile_ms', float('nan')):8.3f}  "
                     f"{rates} {'GB/s' if unit == 'gbps' else 'TFLOP/s'}")
    return lines


# -- the document -------------------------------------------------------------------------------------------

SECTIONS = (("lora_step", lora_step_lines), ("train", train_lines), ("micro", micro_lines))


def runs(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """(run id, its rows in table order), newest run first."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(str(r.get("run_id")), []).append(r)
    return sorted(by.items(), key=lambda kv: kv[0], reverse=True)


def _short(sha: str | None) -> str:
    if not sha:
        return "?"
    head, plus, rest = sha.partition("+")
    return head[:12] + plus + rest


def run_section(run_id: str, rows: list[dict], artifacts: list[str]) -> list[str]:
    commits = sorted({_short(r.get("commit")) if r.get("commit") else
                      f"not recorded (rows recorded in {_short(r.get('recorded_in_commit'))})" for r in rows})
    cards = sorted({f"{r.get('card')} x{r.get('gpus') or 1}" for r in rows if r.get("card")})
    out = [f"## {run_id}", "", f"commit {', '.join(commits)}; {', '.join(cards) or 'card not recorded'}; "
           f"{len(rows)} rows" + (f"; {sum(1 for r in rows if r.get('error'))} with errors" if any(r.get('error') for r in rows) else "")]
    if artifacts:
        out.append("artifacts: " + ", ".join(f"[{a}]({a})" for a in artifacts))
    for source, fmt in SECTIONS:
        mine = [r for r in rows if r.get("source") == source]
        if mine:
            out += ["", f"{source}:", "```", *fmt(mine), "```"]
    return out + [""]


def document(rows: list[dict], results_dir: Path) -> str:
    files = sorted(p.name for p in results_dir.iterdir() if p.is_file()) if results_dir.exists() else []
    head = [
        "# Benchmark results",
        "",
        f"Generated by `python bench/summary.py` from `runs.jsonl` ({len(rows)} rows, "
        f"{len({r.get('run_id') for r in rows})} runs); do not edit. Each row's fields (workload, card, versions, "
        "commit, command) are in runs.jsonl; bench/harness.py says what they mean. Rows of one run come from one "
        "machine, one after the other; compare rows across runs only with their versions and commits in view.",
        "",
    ]
    body = []
    for run_id, mine in runs(rows):
        artifacts = [f for f in files if run_id in f and not f.endswith((".jsonl", ".md"))]
        body += run_section(run_id, mine, artifacts)
    return "\n".join(head + body)


def write_summary(results: Path = harness.RESULTS, summary: Path | None = None) -> Path:
    summary = summary or results.parent / "SUMMARY.md"
    summary.write_text(document(harness.read_rows(results), results.parent), encoding="utf-8")
    return summary


def append_rows(source: Path, results: Path = harness.RESULTS) -> int:
    """Appends the rows of ``source`` that ``results`` does not hold yet; returns how many."""
    have = {json.dumps(r, sort_keys=True) for r in harness.read_rows(results)}
    new = [r for r in harness.read_rows(source) if json.dumps(r, sort_keys=True) not in have]
    with results.open("a", encoding="utf-8") as fh:
        for r in new:
            fh.write(json.dumps(r) + "\n")
    return len(new)


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    curves = [r for r in rows if r.get("curve") and r.get("loss")]
    if not curves:
        return None
    # Agg (no display), chosen before pyplot is imported; only this command draws
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = reference_curve(curves)
    diffs = curve_diffs(rows)
    fig, (ax, dx) = plt.subplots(2, 1, figsize=(8, 6.5), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    for r in curves:
        xs = list(range(1, len(r["loss"]) + 1))
        ax.plot(xs, r["loss"], lw=1.2, label=f"{r['curve']}: {r['strategy']}, {r['gpus']} GPU, micro-batch {r['micro_batch']}")
        if ref is not None and r is not ref and r["curve"] in diffs:
            n = diffs[r["curve"]]["steps"]
            dx.plot(xs[:n], [a - b for a, b in zip(r["loss"][:n], ref["loss"][:n])], lw=1, label=r["curve"])
    r0 = curves[0]
    ax.set_title(f"training loss, {r0.get('model')} shape, global batch {r0.get('global_batch')}\n"
                 + "; ".join(f"{t} max |diff| {d['max']:.4f}" for t, d in diffs.items()), fontsize=9)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    dx.axhline(0, color="k", lw=0.5)
    dx.set_ylabel("loss - single")
    dx.set_xlabel("step")
    dx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(harness.RESULTS), help="the table (default bench/results/runs.jsonl)")
    ap.add_argument("--append", metavar="JSONL", help="add these rows to the table first")
    ap.add_argument("--run-id", help="with --print or --curves: this run only")
    ap.add_argument("--print", action="store_true", help="print the summary (of --run-id) instead of writing it")
    ap.add_argument("--curves", metavar="RUN_ID", help="plot this run's loss curves to --plot")
    ap.add_argument("--plot", metavar="PNG", default="loss_curves.png")
    a = ap.parse_args(argv)
    results = Path(a.results)
    if a.append:
        print(f"{append_rows(Path(a.append), results)} rows added to {results}")
    rows = harness.read_rows(results)
    if a.curves:
        print(plot_curves([r for r in rows if r.get("run_id") == a.curves], Path(a.plot)) or "no curve rows")
        return 0
    if a.print:
        for run_id, mine in runs(rows):
            if not a.run_id or run_id == a.run_id:
                print("\n".join(run_section(run_id, mine, [])))
        return 0
    print(f"wrote {write_summary(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
