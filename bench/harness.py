"""What every benchmark shares: the record of where and what ran, timing, and the one results table.

Every benchmark script (`micro.py`: one kernel; `lora_step.py`: one LoRA training step; `train.py`:
`contract-review train` end to end) appends one JSON line per measurement to one table,
bench/results/runs.jsonl (append-only; `BENCH_RESULTS` or `--out` elsewhere, e.g. on a GPU machine),
keyed by `commit` and `run_id`. `summary.py` writes bench/results/SUMMARY.md from it. Each row starts
with `record()`:

    source     micro | lora_step | train
    name       the entry of the benchmark list that ran it (`BENCH_NAME`, set by gpu_run.sh)
    run_id     one id per GPU run (one gpu_run.sh invocation) (`RUN_ID`; default: UTC time)
    commit     the code measured: `BENCH_COMMIT` (pass it to a machine without the git history), else
               `git rev-parse HEAD`; "+dirty" when tracked files differ from it
    time, card (GPU name or "cpu"), device_count, host (CPU count), versions, command

A measurement that fails (a backend that cannot start, out of memory, a process killed at its time
cap) is a row too, with `error`: every requested measurement leaves a row.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "runs.jsonl"
VERSIONS = ("torch", "transformers", "peft", "triton", "accelerate", "deepspeed", "liger_kernel", "unsloth",
            "unsloth_zoo", "bitsandbytes", "trl", "pydantic")
DATASHEET_PEAK_BF16 = 989.4e12  # dense bf16, H100/H200 SXM datasheet (training.logging's PEAK_TFLOPS)


def results_path(out: str | None = None) -> Path:
    return Path(out or os.environ.get("BENCH_RESULTS") or RESULTS)


def run_id() -> str:
    return os.environ.get("RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def commit() -> str | None:
    """The commit measured: BENCH_COMMIT where there is no git history, else HEAD (+dirty)."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def card() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def record(source: str, command: list[str] | None = None, device: bool = True) -> dict:
    """The fields every row starts with. ``device=False``: the card is left for the caller to fill in (a
    process that only launches the measured one must not take GPU memory for a CUDA context)."""
    argv = command if command is not None else [Path(sys.argv[0]).as_posix(), *sys.argv[1:]]
    return {"source": source, "name": os.environ.get("BENCH_NAME"), "run_id": run_id(), "commit": commit(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "card": card() if device else None,
            "device_count": torch.cuda.device_count(), "host_cpus": os.cpu_count(), "versions": versions(),
            "command": shlex.join(argv)}


def append(row: dict, out: str | Path | None = None) -> None:
    """Prints the row (`RESULT {json}`) and appends it to the table, flushed: a process killed later keeps it."""
    line = json.dumps(row, default=str)
    print("RESULT " + line, flush=True)
    path = results_path(str(out) if out else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()


def read_rows(path: str | Path | None = None) -> list[dict]:
    path = results_path(str(path) if path else None)
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
    return rows


class Live:
    """The row being measured, written as an error row if the process is stopped (`timeout` sends
    SIGTERM at the cap): what ran, until which stage."""

    def __init__(self, out: str | Path | None = None):
        self.out, self.row, self.stage = out, None, "start"
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def at(self, stage: str) -> None:
        self.stage = stage
        print(f"[bench] {stage}", flush=True)

    def _on_sigterm(self, signum, frame):  # noqa: ARG002
        if self.row is not None:
            append(dict(self.row, error=f"timeout: SIGTERM during {self.stage}"), self.out)
        os._exit(124)


# -- timing -------------------------------------------------------------------------------------------

def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_steps(step, warmup: int, steps: int, live: Live | None = None, label: str = "step"):
    """Runs ``step`` warmup + steps times, each bracketed by device synchronisation. Returns (seconds of the
    timed steps, every step's return value as a float, seconds until the host had issued each timed step:
    an upper bound on the GPU's idle time at its start)."""
    times, values, host = [], [], []
    for i in range(warmup + steps):
        if live is not None:
            live.stage = f"{label} {i + 1}/{warmup + steps}"
        sync()
        t = time.perf_counter()
        value = step()
        t_host = time.perf_counter()
        sync()
        dt = time.perf_counter() - t
        values.append(float(value.detach()) if isinstance(value, torch.Tensor) else float(value))
        if i >= warmup:
            times.append(dt)
            host.append(t_host - t)
        del value
    return times, values, host


def measure_gemm(n: int = 8192) -> float | None:
    """FLOP/s of an n^3 bf16 matmul on this GPU (the ceiling `mfu_measured` is against); None without CUDA."""
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)  # random data: zeros run faster
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(20):
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        ts.append(start.elapsed_time(end) / 1e3)
    del a, b
    torch.cuda.empty_cache()
    return 2 * n**3 / statistics.median(ts)


SOURCES = {"micro.py": "micro", "lora_step.py": "lora_step", "train.py": "train"}


def source_of(command: list[str]) -> str | None:
    """The source of the rows a command writes (None: not one of the benchmark scripts)."""
    return next((SOURCES[Path(a).name] for a in command if Path(a).name in SOURCES and "bench" in a), None)


def main(argv: list[str] | None = None) -> int:
    """`python bench/harness.py missing --why TEXT -- COMMAND...`: the row of a benchmark command that left none
    (gpu_run.sh calls it for a command killed at its cap or skipped for lack of time); `has-row` exits 0 when
    the table holds a row of this run (RUN_ID) and name (BENCH_NAME), else 1."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("missing")
    p.add_argument("--why", required=True)
    p.add_argument("--out", default=None)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("has-row")
    p.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.cmd == "has-row":
        name = os.environ.get("BENCH_NAME")
        return 0 if any(r.get("run_id") == run_id() and r.get("name") == name for r in read_rows(a.out)) else 1
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    append(dict(record(source_of(command) or "command", command, device=False), error=a.why), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
