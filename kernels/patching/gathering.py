"""How the patch layer reads weights that a distributed wrapper partitions (DeepSpeed ZeRO-3).

Under ZeRO-3 every process holds a slice of each large weight; the full weight exists only between a
gather and its release. Who gathers decides whether our kernels can run:

- DeepSpeed's own hooks gather one module's direct parameters around that module's forward. A fused
  kernel that reads several modules' weights at once (the LoRA MLP reads gate, up and down) would find
  them partitioned, and the hooks on every module make ``monkey_patch`` call the modules' own forwards.
- A wrapper that gathers a whole decoder layer before its forward and keeps it whole through the layer's
  backward (training/distributed/layer_gather.py) leaves every weight inside the layer readable: the
  kernels check ``unreadable`` per weight, not "is this a ZeRO-3 parameter", so they take the fast path.
- A weight read outside any module's forward (``lm_head.weight`` by the fused loss) is gathered through the
  module's provider, ``GATHER``: a callable set on the module by that wrapper, returning a context inside
  which the module's parameters are whole (and prefetched where the wrapper could foresee the read).

Nothing here imports DeepSpeed: a ZeRO-3 parameter is recognised by the attributes DeepSpeed puts on it
(``ds_status``, ``ds_numel``).
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
from torch import nn

# on a module: () -> context manager inside which the module's parameters are whole
GATHER = "_kernels_gather"


def unreadable(p: torch.Tensor | None) -> bool:
    """True for a weight whose full value is not in this process now: a meta tensor, or a ZeRO-3 parameter
    that is partitioned or still being gathered (reading it would read an empty placeholder)."""
    if p is None:
        return False
    if p.device.type == "meta":
        return True
    status = getattr(p, "ds_status", None)
    if status is None:
        return False
    return getattr(status, "name", str(status)) != "AVAILABLE" or p.numel() != getattr(p, "ds_numel", p.numel())


def provider(module: nn.Module) -> Callable[[], ContextManager] | None:
    """The gather provider a distributed wrapper set on ``module``, or None."""
    return module.__dict__.get(GATHER)


def gathered(module: nn.Module) -> ContextManager:
    """The module's parameters whole inside the block (a no-op where nothing partitions them)."""
    fn = provider(module)
    return fn() if fn is not None else contextlib.nullcontext()
