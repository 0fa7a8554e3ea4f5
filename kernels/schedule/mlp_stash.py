"""The MLP's gate and up outputs kept in host memory instead of recomputed: ``patch(model, offload_mlp=f)``.

Why: under gradient checkpointing the backward pass runs each decoder layer's forward again (the
recompute) only to rebuild what its backward saved. For the MLP that is e = gate(x) and g = up(x): two
(tokens x intermediate) GEMMs, 2 x 2 d f FLOPs a token, about a fifth of a 7B step's recompute. They cannot
stay on the GPU (11 GiB over 32 layers at Llama-2-7B, micro-batch 4, seq 2048), but they can go to pinned
host memory: e and g of one layer are 2 x 172 MiB there, ~7.8 ms over PCIe (46 GB/s measured on the H200
host while the GEMMs run) against ~6 ms of that layer's forward and ~2.3 ms of GEMMs saved in its
recompute. So PCIe, not the GPU, is the limit, and only a fraction ``f`` of the layers can afford it: with
every other layer the copies of two layers' forwards (2 x 1.3 ms for the checkpointed inputs with
``offload_activations``, 7.8 ms for one layer's e and g) nearly fill those two layers' ~11 ms. Measured
(kernels/NOTES.md, "the MLP's gate and up outputs in host memory"): f = 0.5 gives +5% at 7B and +6-7% at 13B; f = 0.67 is no faster than none.
Which layers (``stash_plan``): the last ``KEEP_LAST`` layers (1 by default) keep e and g on the GPU, with
no copy at all: backward reaches them first, so they are held only through the forward's end and the loss,
where memory is below the backward's peak (measured: 14.82 GiB either way at 7B), and the forward's last
copies, which would come straight back, leave PCIe free (+0.5%). The fraction ``f`` of the other layers is
spread evenly over them, counted from their last one, which is left out while ``f < 1`` (no time to fetch).

How, for a picked layer (``MLPStash``):
- first forward (checkpointing, training, autograd recording, not inside a backward): after the gate and up
  GEMMs, e and g start a device-to-host copy on the side stream of kernels/schedule/offload.py (same host buffer
  pool, same stream, same memory-reuse rules); the tiny x A_g^T, x A_u^T and h A_d^T stay on the GPU. The
  stash hangs on the autograd node's ``ctx``, so it lives exactly as long as the graph that may need it.
- backward: every ``LoRAMLPFunction`` backward first starts the host-to-device copy of the most recent
  stash in host memory not yet used (``prefetch_latest``): the layer backwarded before a picked one fetches
  its e and g while it runs. The newest offloaded layer input is queued before it (the side stream copies
  in order): the first recompute of a backward waited behind a 344 MiB stash copy before "the first recompute's input ahead of the next stash" (kernels/NOTES.md). Then
  the node hands its own stash to the recompute its ``ctx.saved_tensors`` triggers (``handing``), and the
  MLP forward inside that recompute takes it (``take``) instead of running the gate and up GEMMs: the values
  are the first forward's, bit for bit, so the gradients are unchanged.
- the hand-over is exact by construction: a stash is only ever used by the recompute that its own node's
  unpack starts, and only by the MLP module that made it. If anything else starts the recompute (a
  reentrant checkpoint, a layer whose earlier node unpacks first), nothing is handed over and the recompute
  computes e and g as before: slower, never wrong.

A layer whose recompute is trimmed (no down projection) and not picked keeps only h A_d^T from its first
forward (``SmallStash``, tokens x r on the GPU, whatever ``f`` is): it is all the recompute would run
SwiGLU's forward and a GEMM for.

Cost: GPU memory holds one fetched stash ahead of its use (+0.35 GiB peak at 7B micro-batch 4), and pinned
host memory one buffer pair per picked layer (15 x 2 x 192 MiB at 7B, f = 0.5). Off by default.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import torch

from contract_review.kernels.schedule.host_pool import device_key
from contract_review.kernels.schedule.offload import _Offloaded, prefetch_newest

__all__ = ["KEEP_LAST", "MLPStash", "SmallStash", "check_fraction", "handing", "layers_to_stash",
           "prefetch_latest", "stash_plan", "take"]

# The last KEEP_LAST decoder layers (with offload_mlp > 0) keep e and g on the GPU instead: backward reaches
# them first, so they are held only through the forward's last layers and the loss, where memory is below the
# backward's peak, and they spend no PCIe time at the forward's end, where the copies are the bottleneck
KEEP_LAST = 1

# per device (index, None for CPU): the last stash a forward made that no recompute has used yet
_latest: dict = {}
# per thread: the stash the running backward node hands to the recompute it is starting
_handoff = threading.local()


class _OnDevice:
    """A stashed tensor left on the device (the ``_Offloaded`` interface, nothing to copy)."""

    __slots__ = ("t", "shape", "dtype")

    def __init__(self, t: torch.Tensor):
        self.t, self.shape, self.dtype = t, t.shape, t.dtype

    def prefetch(self) -> None:
        pass

    def fetch(self) -> torch.Tensor:
        t, self.t = self.t, None  # the recompute's saved tensors hold it from here
        return t


class MLPStash:
    """e and g of one MLP forward in host memory (offloaded as made; on the device with ``on_device``), the
    three tiny low-rank inputs on the device; ``owner`` is the MLP module that made it."""

    __slots__ = ("owner", "e", "g", "small", "key", "prev", "used", "on_device", "__weakref__")

    def __init__(self, owner, e: torch.Tensor, g: torch.Tensor, small: tuple, on_device: bool = False):
        self.owner = weakref.ref(owner)
        kind = _OnDevice if on_device else (lambda t: _Offloaded(t, link=False))
        self.e, self.g = kind(e), kind(g)
        self.on_device = on_device
        self.small = small
        self.used = False
        self.key = device_key(e.device)
        self.prev = _latest.get(self.key)
        _latest[self.key] = weakref.ref(self)

    def prefetch(self) -> None:
        self.e.prefetch()
        self.g.prefetch()

    def matches(self, e_shape: torch.Size, dtype: torch.dtype) -> bool:
        return self.e.shape == e_shape and self.e.dtype == dtype

    def fetch(self):
        """(e, g, *small) on the device; the stash is spent."""
        self.used = True
        if _latest.get(self.key) is not None and _latest[self.key]() is self:
            _latest[self.key] = self.prev
        out = (self.e.fetch(), self.g.fetch(), *self.small)
        self.small = ()
        return out


class SmallStash:
    """Only h A_d^T (tokens x r, the down adapter's input product) of a layer whose recompute rebuilds e and
    g: with the recompute trimmed (no down projection), that is all it would run SwiGLU's forward and a GEMM
    for. Kept on the device (256 KiB a layer at 7B micro-batch 4); nothing to prefetch, so not in ``_latest``."""

    __slots__ = ("owner", "ha_d", "used")

    def __init__(self, owner, ha_d: torch.Tensor):
        self.owner, self.ha_d, self.used = weakref.ref(owner), ha_d, False

    def matches(self, e_shape: torch.Size, dtype: torch.dtype) -> bool:
        return self.ha_d.shape[0] == e_shape[0] and self.ha_d.dtype == dtype

    def fetch(self):
        self.used = True
        ha_d, self.ha_d = self.ha_d, None
        return None, None, None, None, ha_d


def prefetch_latest(device: torch.device) -> None:
    """Starts fetching the newest stash in host memory on ``device`` that no recompute has used: the next one
    backward needs, since layers are backwarded in the reverse order of their forwards. The newest offloaded
    layer input goes first (kernels/schedule/offload.py): the side stream copies in order, and the recompute about to
    start needs that input before any layer needs this stash."""
    prefetch_newest(device)
    key = device_key(device)
    ref, head = _latest.get(key), True
    while ref is not None:
        s = ref()
        if s is None:
            if head:
                _latest.pop(key, None)
            return
        if not s.used and not s.on_device:
            s.prefetch()
            return
        if s.used and head:  # spent stashes at the head are dropped from the chain
            ref = _latest[key] = s.prev
        else:  # an unused stash on the device has nothing to fetch: look further back
            head = False
            ref = s.prev


@contextlib.contextmanager
def handing(stash: MLPStash | None):
    """While the block runs (a node reading its saved tensors, which starts the checkpoint's recompute),
    ``take`` in the same thread may return ``stash``."""
    prev = getattr(_handoff, "stash", None)
    _handoff.stash = stash
    try:
        yield
    finally:
        _handoff.stash = prev


def take(owner, e_shape: torch.Size, dtype: torch.dtype):
    """The stash handed over to this recompute if ``owner`` made it and its e has this shape and dtype,
    as (e, g, x A_g^T, x A_u^T, h A_d^T) on the device (a ``SmallStash``: only the last, the others None);
    else None (compute them)."""
    s = getattr(_handoff, "stash", None)
    if s is None or s.used or s.owner() is not owner or not s.matches(e_shape, dtype):
        return None
    _handoff.stash = None
    return s.fetch()


def check_fraction(fraction: float) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"offload_mlp is the fraction of decoder layers whose MLP activations go to host "
                         f"memory, a number in [0, 1] (0.5: every other layer); got {fraction!r}")


def stash_plan(n_layers: int, fraction: float, keep_last: int | None = None) -> dict[int, str]:
    """Layer index (0 = first in forward) -> "device" for the last ``keep_last`` layers (``KEEP_LAST`` by
    default) and "host" for ``fraction`` of the others (``layers_to_stash``); empty when ``fraction`` is 0."""
    check_fraction(fraction)
    if not fraction:
        return {}
    k = min(KEEP_LAST if keep_last is None else keep_last, n_layers)
    plan = {i: "host" for i in layers_to_stash(n_layers - k, fraction)}
    plan.update({i: "device" for i in range(n_layers - k, n_layers)})
    return plan


def layers_to_stash(n_layers: int, fraction: float) -> list[int]:
    """Indices (0 = first in forward) of the ``fraction`` of ``n_layers`` layers to stash, spread evenly,
    counted from the last layer, which is left out unless ``fraction`` is 1."""
    check_fraction(fraction)
    picked = []
    for j in range(n_layers):  # j = 0 is the last layer
        if int((j + 1) * fraction + 1e-9) > int(j * fraction + 1e-9):
            picked.append(n_layers - 1 - j)
    return sorted(picked)
