"""Reading a run's log to say what went wrong and what to change (`contract-review doctor --run`).

Each check looks at `metrics.jsonl` (see `training/logging.py`) and, optionally, a launcher's
text log (stdout/stderr of torchrun or deepspeed), and returns findings with advice:

- oscillating loss: the step-to-step loss swings a lot around a trend that does not fall
  -> learning rate too high or batch too small;
- exploding / NaN loss: the `error` event the trainer wrote, or a loss that grew 10x;
- low GPU utilisation: MFU below 10% with tokens/s varying a lot between steps (the GPU
  waits for data) -> more dataloader workers (own loops), larger micro-batch, packing;
- out of memory: the `error` event (kind oom) or "out of memory" in the text log -> smaller
  micro-batch with more accumulation, gradient checkpointing, `zero_grad(set_to_none=True)`
  right after `optimizer.step()` (not before backward), QLoRA or ZeRO-3 offload;
- NCCL errors -> NCCL_DEBUG=INFO to see which link, NCCL_IB_DISABLE=1 where InfiniBand is
  missing or broken, matching NCCL versions on every node;
- eval loss rising while training loss falls: overfitting -> early stopping kept the best;
- the kernels' fast path (backend native): how many LoRA projections, MLPs, norms and RoPE calls took
  it, from the start event, and why the others did not; a problem when most of a kind did not.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .logging import read_log


@dataclass
class Finding:
    name: str
    severity: str  # ok | note | problem
    detail: str
    advice: str = ""


def _steps(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("event") == "step" and e.get("loss") is not None]


def check_oscillation(steps: list[dict]) -> Finding | None:
    """Loss swinging step to step with no downward trend over the last part of the run."""
    losses = [s["loss"] for s in steps]
    if len(losses) < 20:
        return None
    tail = losses[len(losses) // 2 :]
    k = max(5, len(tail) // 5)
    first, last = statistics.mean(tail[:k]), statistics.mean(tail[-k:])
    diffs = [abs(b - a) for a, b in zip(tail, tail[1:])]
    swing = statistics.median(diffs) / max(statistics.mean(tail), 1e-8)
    falling = last < first * 0.97
    if swing > 0.25 and not falling:
        lr = steps[-1].get("lr")
        return Finding("oscillating loss", "problem",
                       f"over the second half of the run the loss changes by {swing:.0%} of its level from one "
                       f"step to the next and does not fall ({first:.3f} -> {last:.3f})",
                       f"lower optim.lr (last lr {lr:.2g}) by 2-4x, or raise the effective batch "
                       "(optim.batch_size x optim.grad_accum); keep optim.max_grad_norm at 1.0" if lr else
                       "lower optim.lr or raise optim.batch_size x optim.grad_accum")
    return Finding("loss trend", "ok", f"second half: {first:.4f} -> {last:.4f} (step-to-step swing {swing:.0%})")


def check_explosion(events: list[dict], steps: list[dict]) -> Finding | None:
    err = next((e for e in events if e.get("event") == "error" and e.get("kind") in ("nan", "exploding")), None)
    if err:
        return Finding("loss diverged", "problem", f"step {err.get('step')}: loss {err.get('kind')}",
                       "lower optim.lr, raise optim.warmup_steps, keep gradient clipping (optim.max_grad_norm); "
                       "use bf16 rather than fp16; resume from the last checkpoint with --resume")
    losses = [s["loss"] for s in steps]
    if len(losses) >= 20:
        # windows of 10 steps: one hard batch is not a spike, a sustained rise is
        means = [statistics.mean(losses[i : i + 10]) for i in range(0, len(losses) - 9, 5)]
        half = len(means) // 2
        low = min(means[: half + 1])
        if low > 0 and max(means[half:]) > 10 * low:
            return Finding("loss spikes", "problem", "the loss (mean of 10 steps) later rose above 10x its "
                           "earlier minimum", "lower optim.lr; check grad_norm in metrics.jsonl around the spike")
    return None


def check_utilisation(steps: list[dict]) -> Finding | None:
    mfus = [s["mfu"] for s in steps if s.get("mfu") is not None]
    if len(mfus) < 10:
        return None
    mfu = statistics.median(mfus)
    tps = [s["tokens_per_s"] for s in steps[len(steps) // 10 :] if s.get("tokens_per_s")]
    spread = (statistics.pstdev(tps) / statistics.mean(tps)) if len(tps) > 2 else 0.0
    if mfu < 0.10:
        return Finding("low GPU utilisation", "problem",
                       f"median MFU {mfu:.1%}; tokens/s varies by {spread:.0%} between steps",
                       "the GPU waits for the host: in your own loops use more DataLoader workers; here raise optim.batch_size "
                       "(small models are launch-bound), turn data.packing on, use backend native "
                       "(fused kernels) and attn_implementation flash_attention_2")
    return Finding("GPU utilisation", "ok", f"median MFU {mfu:.1%}")


_OOM = re.compile(r"out of memory|CUDA error: out of memory|OutOfMemoryError", re.I)
_NCCL = re.compile(r"NCCL (error|WARN)|ncclInternalError|ncclSystemError|ncclUnhandledCudaError|"
                   r"NCCL communicator was aborted|Watchdog caught collective operation timeout", re.I)


def check_oom(events: list[dict], text: str) -> Finding | None:
    err = next((e for e in events if e.get("event") == "error" and e.get("kind") == "oom"), None)
    if err or _OOM.search(text):
        peak = err.get("peak_mem_gib") if err else None
        return Finding("out of memory", "problem",
                       f"step {err.get('step')}: out of memory" + (f", peak seen {peak:.1f} GiB" if peak else "")
                       if err else "the launcher log reports out of memory",
                       "halve optim.batch_size and double optim.grad_accum (same effective batch); "
                       "model.gradient_checkpointing=true; lower data.max_length; in your own loops call "
                       "optimizer.zero_grad(set_to_none=True) right after optimizer.step(), not just before "
                       "backward, so old gradients are freed before the next forward; lora.quantize=4bit "
                       "(QLoRA) or distributed ZeRO-3 with offload_optimizer/offload_params")
    return None


def check_nccl(events: list[dict], text: str) -> Finding | None:
    err = next((e for e in events if e.get("event") == "error" and e.get("kind") == "nccl"), None)
    m = _NCCL.search(text)
    if err or m:
        detail = err.get("message", "")[:200] if err else text[max(0, m.start() - 80) : m.end() + 120].strip()
        ib = "infiniband" in text.lower() or " ib " in text.lower() or "IBV" in text
        return Finding("NCCL error", "problem", detail,
                       "rerun with NCCL_DEBUG=INFO to see which link fails; "
                       + ("NCCL_IB_DISABLE=1 (the log mentions InfiniBand); " if ib else
                          "NCCL_IB_DISABLE=1 where InfiniBand is absent or broken; ")
                       + "NCCL_P2P_DISABLE=1 if GPUs cannot reach each other directly; the same NCCL and torch on "
                         "every node; NCCL_SOCKET_IFNAME=<interface> with several network interfaces")
    return None


def check_overfitting(events: list[dict]) -> Finding | None:
    evals = [e for e in events if e.get("event") == "eval"]
    if len(evals) < 3:
        return None
    best = min(evals, key=lambda e: e["eval_loss"])
    last = evals[-1]
    if last["eval_loss"] > best["eval_loss"] * 1.1 and last["step"] > best["step"]:
        return Finding("eval loss rising", "note",
                       f"best eval loss {best['eval_loss']:.4f} at step {best['step']}, {last['eval_loss']:.4f} "
                       f"at step {last['step']}",
                       "overfitting: the best adapter (run/best) is what the run saves; fewer steps, more data "
                       "or a lower lr would save time")
    return None


def check_speed(steps: list[dict]) -> Finding | None:
    tps = [s["tokens_per_s"] for s in steps if s.get("tokens_per_s")]
    if not tps:
        return None
    peak = max((s.get("peak_mem_gib") or 0) for s in steps)
    return Finding("throughput", "ok", f"{len(steps)} steps; median {statistics.median(tps):,.0f} tokens/s; "
                                       f"peak memory {peak:.1f} GiB")


def check_fast_path(events: list[dict]) -> Finding | None:
    start = next((e for e in events if e.get("event") == "start"), {})
    report = start.get("fast_path")
    if not report:
        return None
    counts = ", ".join(f"{r['fast']}/{r['total']} {k}" for k, r in report.items())
    off = "; ".join(f"{n} {k}: {why}" for k, r in report.items() for why, n in r.get("off", {}).items())
    plan = start.get("kernels_plan") or {}
    options = ", ".join(f"{k} {plan[k]}" for k in ("cuda_graph", "offload_activations", "offload_mlp") if k in plan)
    detail = f"kernels fast path: {counts}" + (f"; off: {off}" if off else "") + (f"; {options}" if options else "")
    majority = start.get("fast_path_off_majority") or []
    if majority:
        return Finding("fast path", "problem", detail, f"most {', '.join(majority)} ran the slower fallback: "
                                                       "remove what the reasons name (DoRA, a quantized base, "
                                                       "ZeRO-3) or accept the speed")
    return Finding("fast path", "ok", detail)


def diagnose_run(run: str | Path | None, log: str | Path | None = None) -> list[Finding]:
    events: list[dict] = []
    if run:
        path = Path(run)
        if not (path / "metrics.jsonl").exists() and not path.is_file():
            return [Finding("run log", "problem", f"{path}: no metrics.jsonl",
                            "give a run folder written by `contract-review train` (runs/<name>)")]
        events = read_log(path)
    text = Path(log).read_text(encoding="utf-8", errors="replace") if log else ""
    steps = _steps(events)
    checks = [check_explosion(events, steps), check_oom(events, text), check_nccl(events, text),
              check_oscillation(steps), check_utilisation(steps), check_overfitting(events), check_speed(steps),
              check_fast_path(events)]
    findings = [f for f in checks if f is not None]
    stop = next((e for e in reversed(events) if e.get("event") == "stop"), None)
    if events and stop is None and not any(f.severity == "problem" for f in findings):
        findings.append(Finding("unfinished", "note", f"no stop event after step {steps[-1]['step'] if steps else 0}",
                                "the run was killed or is still running; continue it with --resume"))
    return findings or [Finding("run log", "note", "nothing to judge yet (fewer than 20 steps)")]


def print_findings(findings: list[Finding]) -> None:
    table = Table(title="run diagnosis")
    for col in ("finding", "severity", "detail", "what to change"):
        table.add_column(col, overflow="fold")
    colour = {"ok": "green", "note": "yellow", "problem": "red"}
    for f in findings:
        table.add_row(f.name, f"[{colour[f.severity]}]{f.severity}[/]", f.detail, f.advice)
    Console(width=160).print(table)
