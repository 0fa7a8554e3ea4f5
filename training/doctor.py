"""Environment checks for training: what is installed, what the hardware can do."""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def check_environment() -> list[Check]:
    checks: list[Check] = []
    for pkg, required in (("torch", True), ("transformers", True), ("peft", True), ("triton", False),
                          ("deepspeed", False), ("bitsandbytes", False)):
        v = _version(pkg)
        status = "ok" if v else ("fail" if required else "warn")
        checks.append(Check(pkg, status, v or ("missing: pip install -e ." if required else "not installed (optional)")))
    try:
        import torch  # here: a torch that fails to import is one of the things doctor reports

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                free, total = torch.cuda.mem_get_info(i)
                checks.append(Check(f"gpu{i}", "ok", f"{p.name}, {total / 2**30:.1f} GiB ({free / 2**30:.1f} free), sm_{p.major}{p.minor}"))
            checks.append(Check("cuda", "ok", f"CUDA {torch.version.cuda}"))
            bf16 = torch.cuda.is_bf16_supported()
            checks.append(Check("bf16", "ok" if bf16 else "warn", "supported" if bf16 else "not supported: use fp16"))
        else:
            checks.append(Check("gpu", "warn", "no CUDA device: training runs on CPU (the small default model only)"))
            from .precision import cpu_precision  # torch, which this try imports first

            cpu = cpu_precision()
            checks.append(Check("cpu precision", "ok", f"{cpu.precision} ({cpu.how}: {cpu.reason})"))
    except Exception as exc:  # a broken torch install is exactly what doctor must report
        checks.append(Check("torch-runtime", "fail", f"{type(exc).__name__}: {exc}"))
    for var, advice in (("NCCL_IB_DISABLE", "set to 1 if NCCL errors mention InfiniBand"),
                        ("NCCL_DEBUG", "set to INFO to diagnose NCCL errors")):
        checks.append(Check(var, "ok", os.environ.get(var, f"unset ({advice})")))
    disk = shutil.disk_usage(os.getcwd())
    checks.append(Check("disk", "ok" if disk.free > 20 * 2**30 else "warn", f"{disk.free / 2**30:.0f} GiB free here"))
    try:
        with open("/proc/meminfo") as fh:
            avail = next(int(l.split()[1]) for l in fh if l.startswith("MemAvailable")) / 2**20
        checks.append(Check("memory", "ok" if avail > 8 else "warn", f"{avail:.1f} GiB available"))
    except (OSError, StopIteration):
        pass
    return checks


def print_checks(checks: list[Check]) -> None:
    table = Table(title="contract-review doctor")
    for col in ("check", "status", "detail"):
        table.add_column(col)
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in checks:
        table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail)
    Console().print(table)
