"""Activation offload for gradient-checkpointed decoder layers: ``patch(model, offload_activations=True)``.

With gradient checkpointing each decoder layer keeps one tensor for its backward: its input hidden state
(micro-batch x seq x hidden; 8192 x 4096 bf16 = 64 MiB a layer at Llama-2-7B, micro-batch 4, seq 2048,
2 GiB over 32 layers). This module keeps those inputs in pinned host memory instead:

- forward: the layer input is copied device-to-host on a side CUDA stream, which first waits for the
  compute stream (the input's producer is queued there), so the copy overlaps the layer's own forward; the
  GPU tensor is held until a few copies later, when the compute stream waits for its copy's event and lets
  it go, so the caching allocator reuses its memory only after the copy has finished (not
  ``record_stream``, which keeps the memory from being reused inside a CUDA graph capture).
- backward: when the checkpoint's recompute asks for layer i's input, the host-to-device copy of layer
  i-1's input is started on the side stream (a prefetch, overlapped with layer i's recompute and backward);
  the compute stream waits on the copy's event before the recompute reads the tensor. The last layer's
  input is not offloaded at all (``KEEP_LAST_INPUT``): its recompute is the backward's first, right after the
  loss, so its copy would come straight back; the newest offloaded input (the next layer's) is fetched as
  soon as the gradient reaches the last layer's output (``prefetch_newest``).
- pinned buffers are reused across steps (``POOL``: flat byte buffers, best fit by size, so changing
  sequence lengths reuse the larger buffers instead of pinning more memory every step).

How it hooks into transformers (5.x): ``GradientCheckpointingLayer`` runs a checkpointed layer as
``self._gradient_checkpointing_func(partial(forward, self, **kwargs), *args)`` (5.24 wraps ``forward``,
5.17 ``__call__``; both read the instance attribute that ``gradient_checkpointing_enable`` sets on every
layer). ``enable`` wraps that attribute in ``OffloadCheckpoint``, which calls the original function (torch's
checkpoint with the user's ``use_reentrant`` and other kwargs) inside ``torch.autograd.graph.
saved_tensors_hooks``. torch's checkpoint saves its tensor inputs through autograd's saved-tensor
machinery (non-reentrant: the frame's saved inputs, outside its own inner hooks; reentrant:
``ctx.save_for_backward``), so the outer hooks see exactly the inputs, and only the hidden state (the first
positional argument) is offloaded; everything the layer computes is still checkpointed by torch, and the
RNG state for the recompute (dropout) is stashed and restored by torch as before. Keyword arguments
(position embeddings, masks, position ids) are bound in the ``partial`` and stay where they are.

A forward pre-hook on the module that holds the layers (``LlamaModel``) (re)installs the wrapper at every
training forward, so patching before or after ``gradient_checkpointing_enable`` (the Trainer enables it in
its ``__init__``, after the user patched) both work, and it warns once when offload was asked for but
gradient checkpointing is off (nothing to offload), or when the parameters are DeepSpeed ZeRO-3
partitioned. Without CUDA (CPU tests) the same code runs with plain copies into (unpinned) pool buffers.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import warnings
import weakref
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from contract_review.kernels.ops._utils import is_partitioned
from contract_review.kernels.schedule.host_pool import POOL, cuda_index, device_key, side_stream

log = logging.getLogger(__name__)

__all__ = ["OffloadCheckpoint", "OffloadWarning", "POOL", "enable", "disable", "is_enabled"]


class OffloadWarning(UserWarning):
    """offload_activations=True was asked for but does not (or may not) do what it says."""


# ---------------------------------------------------------------------------------------------------
# device tensors whose copy to the host may still be running

# Why not ``t.record_stream(side)``: under a CUDA graph capture the caching allocator cannot query the side
# stream, so a block freed with a pending record_stream stays unusable until the capture ends. Every
# offloaded tensor's memory then stayed in the graph's private pool (run 20261128T210255Z-stash, 7B mb4,
# graphed: 16.84 GiB reserved for 14.47 allocated with the layer inputs offloaded, 22.43 for 14.82 with
# offload_mlp's gate and up outputs too; 17.17 for 16.35 without offload). Instead the tensor is held here, and
# released after the compute stream has waited for its copy's event: its memory goes back to the compute
# stream's pool in stream order, reusable at once, eagerly and inside a capture alike.
_HELD_COPIES = 3  # the newest copies may still be running; older ones are waited for (long done in practice)
# The last layer's input stays on the device: its recompute is the backward's first, so a copy out at the
# forward's end and straight back in would only delay it. Costs one layer input (64 MiB at 7B micro-batch 4)
# through the last layer's forward and the loss, below the backward's peak (kernels/NOTES.md, "the last layer keeps its input")
KEEP_LAST_INPUT = True
_held: dict = {}  # device index -> deque of (event, tensor)


def _hold_until_copied(t: torch.Tensor, done) -> None:
    q = _held.setdefault(cuda_index(t.device), collections.deque())
    q.append((done, t))
    while len(q) > _HELD_COPIES:
        _release(q.popleft(), t.device)


def _release(entry, device) -> None:
    done, _t = entry
    torch.cuda.current_stream(device).wait_event(done)
    # _t is dropped on return, after the wait is queued: the allocator reuses it in stream order


def release_copied(device: torch.device) -> None:
    """Waits (on the compute stream, not the host) for every pending device-to-host copy on ``device`` and
    lets go of the device tensors: done when the backward starts fetching."""
    if device.type != "cuda":
        return
    q = _held.get(cuda_index(device))
    while q:
        _release(q.popleft(), device)


# ---------------------------------------------------------------------------------------------------
# one offloaded tensor

# the tensor packed last (per thread: forward runs in the caller's thread), to prefetch in backward
_last_packed = threading.local()
# per device (index, None off CUDA): the layer input packed last. Backward needs it first, in autograd's own
# thread, where ``_last_packed`` is not visible: ``prefetch_newest`` starts its copy before any other
_newest: dict = {}


class _Offloaded:
    """A tensor held in a host buffer; ``fetch()`` brings it back to its device. With ``link`` (layer
    inputs) it joins the chain of packed inputs, and fetching it prefetches the one packed before it;
    without (kernels/schedule/mlp_stash.py) its owner decides when to prefetch (``prefetch()``)."""

    __slots__ = ("buf", "shape", "dtype", "device", "pinned", "gpu", "h2d_event", "prev", "unpacks",
                 "__weakref__")

    def __init__(self, t: torch.Tensor, link: bool = True):
        self.shape, self.dtype, self.device = t.shape, t.dtype, t.device
        self.gpu = None  # a prefetched device copy, until fetch() hands it out
        self.h2d_event = None
        self.unpacks = 0
        cuda = t.device.type == "cuda"
        self.pinned = cuda
        nbytes = t.numel() * t.element_size()
        self.buf = POOL.acquire(nbytes, cuda, self._dev_index())
        host = self._host_view()
        if cuda:
            side = side_stream(t.device)
            # the input was produced on the compute stream: the copy starts after what is queued there
            side.wait_stream(torch.cuda.current_stream(t.device))
            with torch.cuda.stream(side):
                host.copy_(t, non_blocking=True)
                done = torch.cuda.Event()
                done.record(side)
            _hold_until_copied(t, done)
        else:
            host.copy_(t)  # CPU (tests) or a device without streams: a plain copy
        self.prev = None
        if link:
            self.prev = getattr(_last_packed, "ref", None)
            _last_packed.ref = _newest[device_key(t.device)] = weakref.ref(self)

    def _dev_index(self):
        return device_key(self.device)

    def _host_view(self) -> torch.Tensor:
        n = self.shape.numel() * self.dtype.itemsize
        return self.buf[:n].view(self.dtype).view(self.shape)

    def _start_h2d(self) -> None:
        # allocated on the compute stream (its pool, its memory ordering); the side stream waits for the
        # compute stream before writing, since the block may be one the compute stream has just freed
        main = torch.cuda.current_stream(self.device)
        gpu = torch.empty(self.shape, dtype=self.dtype, device=self.device)
        side = side_stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            gpu.copy_(self._host_view(), non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(side)
        self.gpu, self.h2d_event = gpu, ev

    def prefetch(self) -> None:
        """Starts the host-to-device copy now (on the side stream) if nothing has asked for it yet."""
        if self.device.type == "cuda" and self.unpacks == 0 and self.gpu is None:
            release_copied(self.device)
            self._start_h2d()

    def fetch(self) -> torch.Tensor:
        self.unpacks += 1
        release_copied(self.device)
        if self.device.type != "cuda":
            if self.device.type == "cpu":
                return self._host_view().clone()
            return self._host_view().to(self.device)
        if self.gpu is None:
            self._start_h2d()
        torch.cuda.current_stream(self.device).wait_event(self.h2d_event)
        out, self.gpu, self.h2d_event = self.gpu, None, None
        # prefetch the input of the layer before (packed just before this one, backwarded next)
        prev = self.prev() if self.prev is not None else None
        if prev is not None and prev.device == self.device:
            prev.prefetch()
        return out

    def __del__(self):
        try:
            POOL.release(self.buf, self.pinned, self._dev_index())
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def prefetch_newest(device: torch.device) -> None:
    """Starts fetching the newest layer input on ``device`` if nothing has asked for it yet: the input of
    the first layer a backward recomputes that was offloaded. Called when the gradient reaches the kept last
    layer's output, and by kernels/schedule/mlp_stash.py before it queues the MLP outputs' copy (the side stream runs
    its copies in order), so that recompute does not wait behind them."""
    ref = _newest.get(device_key(device))
    t = ref() if ref is not None else None
    if t is not None:
        t.prefetch()


def _unpack(packed):
    return packed.fetch() if isinstance(packed, _Offloaded) else packed


def _same_tensor(x: torch.Tensor, t: torch.Tensor) -> bool:
    return x is t or (x.device == t.device and x.dtype == t.dtype and x.shape == t.shape
                      and x.stride() == t.stride() and x.data_ptr() == t.data_ptr())


class _PackState:
    __slots__ = ("target", "packed")

    def __init__(self, target: torch.Tensor):
        self.target = target
        self.packed = False

    def pack(self, x: torch.Tensor):
        t = self.target
        if t is not None and _same_tensor(x, t):
            self.target = None  # hold no reference to the device tensor once it is copied
            self.packed = True
            return _Offloaded(x)
        return x  # any other saved input (none with transformers' layers) stays as it is


# ---------------------------------------------------------------------------------------------------
# the per-layer checkpoint function


def _warn_once(holder: Any, key: str, message: str) -> None:
    warned = holder.__dict__.setdefault("_kernels_offload_warned", set())
    if key not in warned:
        warned.add(key)
        warnings.warn(message, OffloadWarning, stacklevel=3)


def _unwrap_hf_offload(fn: Callable) -> Callable:
    """transformers' own ``offload=True`` wraps checkpoint in ``save_on_cpu`` (synchronous copies on the
    compute stream). Its hooks would sit inside ours and take the inputs first: use plain checkpoint with
    the same keyword arguments instead (ours does the offload)."""
    if isinstance(fn, functools.partial):
        inner = fn.func
        if (getattr(inner, "__name__", "") == "checkpoint_func"
                and getattr(inner, "__module__", "").startswith("transformers")):
            log.info("kernels offload: replacing transformers' save_on_cpu offload with ours")
            return functools.partial(checkpoint, *fn.args, **fn.keywords)
    return fn


def _hooks_enabled() -> bool:
    f = getattr(torch._C._autograd, "_saved_tensors_hooks_is_enabled", None)
    return True if f is None else bool(f())


class OffloadCheckpoint:
    """A decoder layer's ``_gradient_checkpointing_func``: ``inner`` (the function transformers set,
    torch's checkpoint with the user's kwargs) run with the layer input offloaded to host memory."""

    def __init__(self, inner: Callable):
        self.inner = _unwrap_hf_offload(inner)
        self.original = inner  # what unpatch puts back
        self.last = False  # the stack's last checkpointed layer (set by _install)

    def __call__(self, function, *args, **kwargs):
        hidden = args[0] if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point() else None
        if hidden is None or not torch.is_grad_enabled():
            return self.inner(function, *args, **kwargs)
        if self.last and KEEP_LAST_INPUT:
            out = self.inner(function, *args, **kwargs)
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(first, torch.Tensor) and first.requires_grad:
                # the gradient reaching this layer's output starts the backward's layers: fetch the next
                # layer's input now, overlapped with this layer's recompute and backward
                device = hidden.device
                first.register_hook(lambda grad: prefetch_newest(device))
            return out
        if not _hooks_enabled():
            _warn_once(self, "hooks-disabled",
                       "kernels offload_activations: autograd's saved-tensor hooks are disabled here (a "
                       "torch.autograd.graph.disable_saved_tensors_hooks region), so this layer's input is "
                       "not offloaded")
            return self.inner(function, *args, **kwargs)
        state = _PackState(hidden)
        del hidden
        try:
            with torch.autograd.graph.saved_tensors_hooks(state.pack, _unpack):
                out = self.inner(function, *args, **kwargs)
        finally:
            state.target = None
        if not state.packed:
            _warn_once(self, "not-packed",
                       f"kernels offload_activations: the checkpoint function {self.inner!r} did not save the "
                       "layer input through autograd's saved-tensor hooks, so nothing is offloaded for this "
                       "layer (torch.utils.checkpoint does; a custom checkpoint function may not)")
        return out

    def __repr__(self) -> str:
        return f"OffloadCheckpoint({self.inner!r})"


# ---------------------------------------------------------------------------------------------------
# install / remove


def _gc_layer_class():
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError as e:  # transformers < 4.52
        raise RuntimeError("offload_activations needs transformers' GradientCheckpointingLayer "
                           "(transformers >= 4.52; this project uses 5.x)") from e
    return GradientCheckpointingLayer


def _layers_of(stack: nn.Module) -> list[nn.Module]:
    cls = _gc_layer_class()
    layers = []
    for child in stack.children():
        if isinstance(child, nn.ModuleList):
            layers.extend(m for m in child if isinstance(m, cls))
        elif isinstance(child, cls):
            layers.append(child)
    return layers


def _stacks(model: nn.Module) -> list[nn.Module]:
    # the modules whose forward runs the layers (LlamaModel), not the containers that hold them
    return [m for m in model.modules() if not isinstance(m, (nn.ModuleList, nn.ModuleDict)) and _layers_of(m)]


def _install(stack: nn.Module) -> tuple[int, bool]:
    """Wraps the checkpoint function of every checkpointed layer of ``stack`` (once); returns how many
    layers are checkpointed with our wrapper and whether their parameters are ZeRO-3 partitioned."""
    partitioned, wrapped = False, []
    for layer in _layers_of(stack):
        if not partitioned:
            p = next(layer.parameters(), None)
            partitioned = is_partitioned(p)
        if not getattr(layer, "gradient_checkpointing", False):
            continue
        fn = getattr(layer, "_gradient_checkpointing_func", None)
        if fn is None:
            continue
        if not isinstance(fn, OffloadCheckpoint):
            fn = layer._gradient_checkpointing_func = OffloadCheckpoint(fn)
        wrapped.append(fn)
    for i, fn in enumerate(wrapped):
        fn.last = i == len(wrapped) - 1
    return len(wrapped), partitioned


_ZERO3_MESSAGE = (
    "kernels offload_activations: the decoder layers' parameters are DeepSpeed ZeRO-3 partitioned. The "
    "layer inputs are still offloaded (they go through torch's checkpoint and autograd's saved-tensor "
    "hooks, which ZeRO-3 does not touch), but this combination is verified only on CPU (one rank), not "
    "on GPUs with ZeRO-3's own streams; with ZeRO-3 prefer DeepSpeed's activation_checkpointing "
    "cpu_checkpointing if it misbehaves")


def _pre_hook(module: nn.Module, args):
    if not (module.training and torch.is_grad_enabled()):
        return None
    active, partitioned = _install(module)
    if active == 0:
        _warn_once(module, "gc-off",
                   "kernels offload_activations=True does nothing: gradient checkpointing is off on this "
                   "model's decoder layers, so no layer input is kept for a recompute and there is nothing "
                   "to offload; call model.gradient_checkpointing_enable() (or Trainer's "
                   "gradient_checkpointing=True) for the offload to apply")
    if partitioned:
        _warn_once(module, "zero3", _ZERO3_MESSAGE)
    return None


def enable(model: nn.Module) -> dict[str, int]:
    """Installs the offload on every decoder-layer stack of ``model``; returns counts
    ``{"stacks", "layers", "active"}`` (active: layers checkpointed now, hence offloading now)."""
    stacks = _stacks(model)
    if not stacks:
        raise ValueError("offload_activations=True: the model has no transformers GradientCheckpointingLayer "
                         "decoder layers (Llama, Mistral, Qwen2, ... in transformers 5.x have), so there is "
                         "nothing whose checkpointed input could be offloaded")
    counts = {"stacks": len(stacks), "layers": 0, "active": 0}
    partitioned = False
    for stack in stacks:
        if not any(h is _pre_hook for h in stack._forward_pre_hooks.values()):
            stack.register_forward_pre_hook(_pre_hook)
        active, part = _install(stack)
        counts["layers"] += len(_layers_of(stack))
        counts["active"] += active
        partitioned |= part
    if counts["active"] == 0:
        log.info("kernels offload_activations: gradient checkpointing is not enabled yet; the offload is "
                 "installed at the first training forward after it is (a warning says so if it never is)")
    if partitioned:
        _warn_once(stacks[0], "zero3", _ZERO3_MESSAGE)
    return counts


def is_enabled(model: nn.Module) -> bool:
    return any(h is _pre_hook for m in model.modules() for h in m._forward_pre_hooks.values())


def disable(model: nn.Module) -> None:
    """Removes the pre-hooks and puts every layer's original checkpoint function back."""
    for stack in _stacks(model):
        for key in [k for k, h in stack._forward_pre_hooks.items() if h is _pre_hook]:
            del stack._forward_pre_hooks[key]
        stack.__dict__.pop("_kernels_offload_warned", None)
        for layer in _layers_of(stack):
            fn = layer.__dict__.get("_gradient_checkpointing_func")
            if isinstance(fn, OffloadCheckpoint):
                layer._gradient_checkpointing_func = fn.original
