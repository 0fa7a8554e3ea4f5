"""The precision a forward pass runs in: `train.precision`, and the CPU's fast choice for every command.

`autocast(precision, device)` is the context the recipe's forward passes and the benchmarks' steps run
under: bf16 or fp16 autocast, or none for fp32 (fp16's grad scaler is the distribution strategy's: it
belongs to the backward). `auto` is resolved first (`resolve_precision`): on a GPU, bf16 where the card
has it, else fp32; on a CPU, `cpu_precision()`.

`cpu_precision()` is the one choice of training (`train.precision: auto`), review, serve and eval on a
CPU, made once per process and printed once on stderr with its reason:

1. `CONTRACT_REVIEW_CPU_PRECISION=fp32` or `bf16` forces it (`calibrate` forces step 3);
2. an x86 CPU whose flags can be read (Linux): bf16 when it has AVX512-BF16 or AMX-BF16, which oneDNN
   uses for bf16 matrix products, else fp32. Without them PyTorch emulates bf16 and is much slower
   than fp32: on an AMD EPYC (Zen 3, AVX2 only) a LoRA step of SmolLM2-135M took 5.8-8.9 s under bf16
   autocast against 1.0-1.3 s in fp32, and a 576x1536 linear layer 8x longer;
3. elsewhere (ARM, macOS, Windows: no flags, or flags that do not say whether PyTorch's kernels use
   them): a calibration of about a second times a linear layer of SmolLM2's shape both ways and keeps
   bf16 only when it is at least `CALIBRATION_MARGIN` faster; the result is cached per processor, torch
   version and thread count in the cache folder (`cpu_precision.json`), so it is measured once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from contract_review.paths import cache_dir

ENV = "CONTRACT_REVIEW_CPU_PRECISION"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CALIBRATION_MARGIN = 1.15  # bf16 must beat fp32 by this much: at a tie fp32 wins, it is the more exact
_CACHE_FILE = "cpu_precision.json"


@dataclass(frozen=True)
class CpuPrecision:
    precision: str  # "fp32" or "bf16"
    reason: str
    how: str  # "forced" | "processor flags" | "calibration" | "cached calibration"

    def line(self) -> str:
        other = "bf16" if self.precision == "fp32" else "fp32"
        return (f"CPU precision: {self.precision} ({self.how}: {self.reason}); "
                f"{ENV}={other} forces the other")


def autocast(precision: str, device: torch.device, cache_enabled: bool = True):
    """``cache_enabled=False`` where the forward is captured in a CUDA graph (a cached cast made during
    the capture would not be made again at replay)."""
    precision = resolve_precision(precision, device)[0]
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(fp32 | bf16 | fp16, why) for a `train.precision` value on ``device``."""
    if precision != "auto":
        return precision, "set in the config"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(device)} has bf16"
        return "fp32", f"{torch.cuda.get_device_name(device)} has no bf16 (fp16 with loss scaling: train.precision=fp16)"
    choice = cpu_precision()
    return choice.precision, f"{choice.how}: {choice.reason}"


@functools.cache
def cpu_precision() -> CpuPrecision:
    """The CPU's fast precision (see the module's docstring), printed once on stderr."""
    choice = _decide(os.environ.get(ENV, "auto").strip().lower() or "auto")
    print(choice.line(), file=sys.stderr)
    return choice


def _decide(request: str) -> CpuPrecision:
    if request in ("fp32", "bf16"):
        return CpuPrecision(request, f"{ENV}={request}", "forced")
    if request not in ("auto", "calibrate"):
        raise ValueError(f"{ENV}={request!r}: use auto, fp32, bf16 or calibrate")
    name, flags = cpu_info()
    if request == "auto" and flags is not None:
        native = [f for f in NATIVE_BF16_FLAGS if f in flags]
        if native:
            return CpuPrecision("bf16", f"{name} has {' and '.join(native)}", "processor flags")
        return CpuPrecision("fp32", f"{name} has no AVX512-BF16 or AMX: bf16 would be emulated, several times "
                                    "slower than fp32", "processor flags")
    return calibrated(name)


def cpu_info(path: str | Path = "/proc/cpuinfo") -> tuple[str, set[str] | None]:
    """(processor name, its flags) on x86 Linux; flags None where they cannot be read or do not apply."""
    name = platform.processor() or platform.machine() or "this CPU"
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return name, None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor's block is enough: they are alike
            continue
        fields.setdefault(key.strip(), value.strip())
    if "model name" in fields:
        name = fields["model name"]
        if "cpu family" in fields and "model" in fields:
            name += f" (family {fields['cpu family']}, model {fields['model']})"
    # x86 lists `flags`; ARM lists `Features`, whose bf16 says nothing of which kernels PyTorch runs
    return name, set(fields["flags"].split()) if "flags" in fields else None


def cpu_name() -> str:
    return cpu_info()[0]


def calibrated(name: str | None = None) -> CpuPrecision:
    """The faster of fp32 and bf16 autocast on a linear layer of SmolLM2's shape, measured once per
    processor, torch version and thread count, and cached."""
    name = name or cpu_name()
    key = f"{name} | torch {torch.__version__} | {torch.get_num_threads()} threads"
    path = cache_dir() / _CACHE_FILE
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return CpuPrecision(**{**cached[key], "how": "cached calibration"})
    fp32_ms, bf16_ms = time_linear()
    precision = "bf16" if fp32_ms >= CALIBRATION_MARGIN * bf16_ms else "fp32"
    choice = CpuPrecision(precision, f"{name}: a 576x1536 linear layer took {fp32_ms:.2f} ms in fp32, "
                                     f"{bf16_ms:.2f} ms under bf16 autocast", "calibration")
    cached[key] = asdict(choice)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cached, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return choice


@torch.inference_mode()
def time_linear(seconds: float = 0.25) -> tuple[float, float]:
    """Milliseconds per call of a 256x576 @ 576x1536 linear layer (SmolLM2-135M's MLP shape), fp32 and
    under bf16 autocast: the best of two rounds of ``seconds`` each, alternating, after a warm-up."""
    gen = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(576, 1536)
    x = torch.randn(256, 576, generator=gen)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(2):
        for bf16 in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                layer(x)  # warm-up: the first call pays for oneDNN's kernel selection
                n, start = 0, time.perf_counter()
                while n < 3 or time.perf_counter() - start < seconds:
                    layer(x)
                    n += 1
                best[bf16] = min(best[bf16], (time.perf_counter() - start) / n * 1e3)
    return best[False], best[True]
