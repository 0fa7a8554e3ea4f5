"""What every run writes about itself: a JSONL log, TensorBoard events, a loss-curve PNG.

`metrics.jsonl` holds one JSON object per line, each with an `event`:
  - `step`: step, loss, lr, grad_norm, tokens, tokens_per_s, step_s, peak_mem_gib, mfu (null on CPU)
  - `eval`: step, eval_loss (and per-head losses for the reviewer)
  - `start` / `end` / `resume` / `stop` / `error` (kind: nan | exploding | oom | nccl | other)
`contract-review doctor --run DIR` reads it back (`diagnose.py`). Only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import torch

# dense bf16 peak per device, for MFU (the anchors' convention: 989.4 TFLOP/s on H100/H200)
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None  # no meaningful peak for a shared CPU
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def flops_per_token(model_config, seq_len: int, with_lm_head: bool = True) -> float:
    """Training FLOPs per token, as in the anchors: 6*N_linear + 4*N_lm_head + 8*T*d*L."""
    d, L = model_config.hidden_size, model_config.num_hidden_layers
    heads, kv = model_config.num_attention_heads, getattr(model_config, "num_key_value_heads", None) or model_config.num_attention_heads
    hd = getattr(model_config, "head_dim", None) or d // heads
    attn = d * heads * hd * 2 + d * kv * hd * 2
    mlp = 3 * d * model_config.intermediate_size
    n_linear = L * (attn + mlp)
    n_head = d * model_config.vocab_size if with_lm_head else 0
    return 6 * n_linear + 4 * n_head + 8 * seq_len * d * L


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    # ru_maxrss is KiB on Linux: the process's peak resident memory
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.path = self.run_dir / "metrics.jsonl"
        self._tb = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
                except ImportError:  # tensorboard is a dependency, but a broken one must not stop training
                    self._tb = None

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines a killed run wrote after its last checkpoint, so the log reads
        like one run that never stopped."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if obj.get("step", 0) <= step or obj.get("event") in ("start",):
                keep.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
        os.replace(tmp, self.path)

    def log(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        obj = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(obj, default=_jsonable) + "\n")
            fh.flush()
        if self._tb is not None and "step" in fields:
            prefix = "train" if event == "step" else event
            for key, value in fields.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    self._tb.add_scalar(f"{prefix}/{key}", value, fields["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def _jsonable(x):
    if isinstance(x, torch.Tensor):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_loss(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """loss_curve.png: training loss per step (and a running mean), eval loss as points."""
    run_dir = Path(run_dir)
    events = read_log(run_dir)
    steps = [(e["step"], e["loss"]) for e in events if e.get("event") == "step" and e.get("loss") is not None]
    evals = [(e["step"], e["eval_loss"]) for e in events if e.get("event") == "eval"]
    if not steps:
        return None
    # here, not at the top: choosing the Agg backend (no display) must not change it for a process that
    # only imported the logger (the app draws its own figures)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    xs, ys = zip(*steps)
    ax.plot(xs, ys, lw=0.6, alpha=0.45, label="train loss")
    w = max(1, len(ys) // 30)
    if w > 1:
        smooth = [sum(ys[max(0, i - w + 1) : i + 1]) / len(ys[max(0, i - w + 1) : i + 1]) for i in range(len(ys))]
        ax.plot(xs, smooth, lw=1.5, label=f"train loss (mean of {w})")
    if evals:
        ex, ey = zip(*evals)
        ax.plot(ex, ey, "o-", ms=4, label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out or run_dir / "loss_curve.png")
    fig.savefig(out)
    plt.close(fig)
    return out
