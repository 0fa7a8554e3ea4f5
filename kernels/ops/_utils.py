"""Small helpers shared by the ops: block sizes, device checks, interpreter mode.

Nothing here launches a kernel; each op file keeps its own kernels and launchers.
"""

from __future__ import annotations

import functools
import os

import torch

# Triton decides between compiled and interpreted kernels when a @triton.jit function is *defined*,
# so this must be read, not set, here: tests/kernels/conftest.py sets it before anything imports us.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0", "false", "False")

# Triton blocks are powers of two; a row wider than this is looped over instead of held in registers.
MAX_FUSED_SIZE = 65536


def next_power_of_2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def row_settings(n_cols: int) -> tuple[int, int]:
    """Block size and warps for a kernel that holds one whole row of ``n_cols`` in registers.

    More warps for wider rows keep every thread's share of a row at ~8-16 elements: a 4096-wide bf16 row
    with 8 warps (256 threads) is 16 elements a thread, two 16-byte loads.
    """
    block = next_power_of_2(n_cols)
    if block > MAX_FUSED_SIZE:
        raise ValueError(f"row of {n_cols} elements is wider than the fused limit {MAX_FUSED_SIZE}")
    num_warps = 4
    if block >= 32768:
        num_warps = 32
    elif block >= 8192:
        num_warps = 16
    elif block >= 2048:
        num_warps = 8
    return block, num_warps


def rows_per_block(n_cols_block: int, n_rows: int) -> int:
    """Rows a program handles at once for a row-wise kernel whose row tile is ``n_cols_block`` wide.

    On a GPU: enough rows for a ~4096-element tile (one row at Llama widths: a 4096-wide row already
    gives each of 256 threads 16 elements; narrow rows are batched so a program still has work). In the
    interpreter every program and every op is Python: tiles of up to 64K elements cut the op count by
    that factor and keep the CPU tests fast.
    """
    target = 65536 if INTERPRET else 4096
    return max(1, min(next_power_of_2(n_rows), target // max(1, n_cols_block)))


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def program_count(device: torch.device) -> int:
    """How many persistent programs fill the device (a few per multiprocessor); 4 in the interpreter,
    where every program is a Python loop and more of them only cost time."""
    if device.type == "cuda":
        return _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return 4


def triton_usable(*tensors: torch.Tensor) -> bool:
    """True when Triton can run on these tensors: CUDA tensors, or CPU tensors under TRITON_INTERPRET=1."""
    for t in tensors:
        if t is None:
            continue
        if t.device.type == "cuda":
            continue
        if t.device.type == "cpu" and INTERPRET:
            continue
        return False
    return True


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a matmul on ``x`` runs in: autocast's when autocast is on for x's device, else x's own."""
    dev = x.device.type
    if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


def is_partitioned(p: torch.Tensor | None) -> bool:
    """DeepSpeed ZeRO-3 leaves a parameter as an empty placeholder between its module's hooks
    (it carries ``ds_id``); reading it outside its module's forward gives garbage or nothing."""
    return p is not None and (hasattr(p, "ds_id") or p.device.type == "meta")
