"""`train.precision` as an autocast context: bf16 (CPU and GPU) or fp16 autocast, or none for fp32.

The recipe's forward passes and the benchmarks' steps run under it alike. (fp16's grad scaler is
the distribution strategy's: it belongs to the backward.)
"""

from __future__ import annotations

import contextlib

import torch


def autocast(precision: str, device: torch.device, cache_enabled: bool = True):
    """``cache_enabled=False`` where the forward is captured in a CUDA graph (a cached cast made during
    the capture would not be made again at replay)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)
