"""Host memory for the step's offloads: one pool of (pinned) host buffers and one side CUDA stream per device.

Shared by the activation offload (offload.py) and the MLP stash (mlp_stash.py): every copy into or out of
a pooled buffer runs on the device's side stream, so a buffer released after its last copy was queued
can be handed out at once (the next copy into it is queued behind that one).
"""

from __future__ import annotations

import threading
from typing import Any

import torch

__all__ = ["HostPool", "POOL", "cuda_index", "device_key", "side_stream"]


def _round_bytes(n: int) -> int:
    """Capacity for a request of n bytes: 4 steps per power of two (at most 25% slack), 2 MiB minimum."""
    n = max(int(n), 1 << 21)
    step = 1 << max(0, n.bit_length() - 3)
    return -(-n // step) * step


class HostPool:
    """Flat uint8 host buffers reused across steps, one free list per (device index, pinned).

    ``acquire(nbytes, ...)`` returns the smallest free buffer that fits, else allocates one, which replaces
    the largest free buffer too small for it (left over from a shorter sequence; the new, larger one serves
    short requests too). Every use of a pinned buffer (device-to-host copy in, host-to-device copy out) is
    on one side stream per device, so a buffer released after its last copy was queued can be handed out
    at once: the next copy into it is queued behind that one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[tuple, list[torch.Tensor]] = {}
        self.allocated = 0  # buffers ever created and still owned (free or in use)
        self.allocated_bytes = 0
        self.in_use = 0

    def acquire(self, nbytes: int, pinned: bool, device_index: int | None) -> torch.Tensor:
        key = (device_index, pinned)
        with self._lock:
            free = self._free.setdefault(key, [])
            # by index: ``list.remove`` would compare tensors with ``==`` (elementwise, and an error for
            # buffers of different sizes), which the first pool hit as soon as two sizes were in use
            fits = [i for i, b in enumerate(free) if b.numel() >= nbytes]
            self.in_use += 1
            if fits:
                return free.pop(min(fits, key=lambda i: free[i].numel()))
            if free:
                # nothing fits: the new buffer replaces the largest idle one (left over from a shorter
                # sequence), so the pool keeps its number of buffers instead of pinning more every step;
                # dropping them all would throw away the small buffers of a second size still in use
                # (layer inputs beside offload_mlp's gate and up outputs) and re-pin them next step
                old = free.pop(max(range(len(free)), key=lambda i: free[i].numel()))
                self.allocated -= 1
                self.allocated_bytes -= old.numel()
            cap = _round_bytes(nbytes)
            self.allocated += 1
            self.allocated_bytes += cap
        return torch.empty(cap, dtype=torch.uint8, pin_memory=pinned)

    def release(self, buf: torch.Tensor, pinned: bool, device_index: int | None) -> None:
        with self._lock:
            self._free.setdefault((device_index, pinned), []).append(buf)
            self.in_use -= 1

    def clear(self) -> None:
        """Frees the idle buffers (those in use are returned to the pool, and kept, when released)."""
        with self._lock:
            for bufs in self._free.values():
                self.allocated -= len(bufs)
                self.allocated_bytes -= sum(b.numel() for b in bufs)
            self._free.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"buffers": self.allocated, "bytes": self.allocated_bytes, "in_use": self.in_use,
                    "free": sum(len(b) for b in self._free.values())}


POOL = HostPool()

_streams: dict[int, Any] = {}
_streams_lock = threading.Lock()


def cuda_index(device: torch.device) -> int:
    """A CUDA device's index, the current device's for a bare ``torch.device("cuda")``."""
    return device.index if device.index is not None else torch.cuda.current_device()


def device_key(device: torch.device) -> int | None:
    """The key of per-device state (host pool, held copies, stashes): the CUDA index, None off CUDA."""
    return cuda_index(device) if device.type == "cuda" else None


def side_stream(device: torch.device):
    idx = cuda_index(device)
    with _streams_lock:
        s = _streams.get(idx)
        if s is None:
            s = _streams[idx] = torch.cuda.Stream(device=idx)
        return s
