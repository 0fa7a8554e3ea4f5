"""A training micro-batch's forward and backward replayed as one CUDA graph: ``GraphedBackward``.

Why: at micro-batch 1 a 13B LoRA step issues ~7,800 kernels, and the host (autograd, our Functions,
Triton's launcher, cuBLAS calls) needs longer to issue them than the GPU needs to run them; the profile
showed the GPU idle about a quarter of the step (kernels/NOTES.md, "where the step goes"). A captured graph issues
the whole sequence with one call, so such a step becomes GPU-bound. At micro-batch 4 on 7B the GPU is
already busy ~96% of the step and the gain is the rest.

    step = GraphedBackward(lambda b: model(**b).loss, [p for p in model.parameters() if p.requires_grad])
    for batch in loader:                  # dicts of tensors of fixed shapes
        loss = step(batch)                # forward + backward; gradients accumulate into p.grad
        optimizer.step()                  # eager: a handful of foreach kernels
        optimizer.zero_grad(set_to_none=True)

What a call does:
- the first ``warmup`` calls run eagerly (on a side stream, as CUDA graph capture requires: Triton
  compiles, cuBLAS and the allocator initialise there); every call is one real training micro-batch;
- then the batch's shapes and dtypes are captured once (``torch.cuda.graph``) and every later batch with
  the same signature is copied into the graph's static inputs and replayed. A new signature gets one eager
  call, then its own capture, up to ``max_graphs`` (each graph keeps its own activation memory); past
  that, calls with new signatures run eagerly.
- the parameters' ``.grad`` are persistent buffers bound before every call, and the backward
  (``torch.autograd.backward(loss, inputs=params)``) accumulates into them in place, as autograd does into
  an existing ``.grad``: the graph writes the same memory at every replay, accumulation over micro-batches
  works, and so does ``zero_grad`` with either ``set_to_none`` (a ``.grad`` that is None or was replaced is
  re-bound and zeroed before the replay). An earlier version took ``torch.autograd.grad`` and added the
  result in: that held a second copy of every gradient at the end of the backward (the graph's outputs),
  +0.23 GiB at peak for 13B LoRA r=16 (run 20261128T171423Z-graph4: 26.54 vs 26.25 GiB eager).

What the captured code must not do (a capture that fails raises ``GraphCaptureError`` naming the usual
causes; it is not retried eagerly in the same process, because a failed capture can leave CUDA's random
number generator in capture state: the next ``normal_`` fails with "Offset increment outside graph
capture"):
host synchronisation (``.item()``, ``.tolist()``, printing a tensor, data-dependent shapes such as
boolean-mask indexing), or stashing RNG state: run gradient checkpointing with
``preserve_rng_state=False`` (with dropout 0 there is no random state to preserve). Our kernels and
transformers' Llama/Mistral training forward with ``labels`` do neither. The parameters must live on
one CUDA device and must not be DeepSpeed ZeRO-3 partitioned (its hooks gather them with host logic).
Without CUDA, or with ``enabled=False``, every call is the eager path, with the same semantics.

Attention: under a capture transformers cannot read the tensors that tell it a causal mask may be left
to SDPA's ``is_causal`` path, so it builds a dense mask (slower attention, no flash). When every row is one
unpadded sequence and neither ``position_ids`` nor ``attention_mask`` reach the model, say so with
``unpacked_rows=True`` and the capture keeps the causal path (``_mask_decisions_as_eager``).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from contract_review.kernels.ops._utils import is_partitioned

Batch = Mapping[str, torch.Tensor]


@contextlib.contextmanager
def _mask_decisions_as_eager(unpacked: bool):
    """Keeps SDPA's causal fast path inside the capture. transformers decides whether it may drop the dense
    causal mask (and call SDPA with ``is_causal=True``) by reading tensors, and under a CUDA stream capture
    it cannot read them, so it keeps the mask: (1) with no ``position_ids`` given, the model derives an
    arange and ``find_packed_sequence_indices`` cannot check that it is one sequence per row, so it reports
    packing; (2) transformers 5.17 (the GPU image's) also counts a capture as tracing with no padding mask
    at all. A dense (batch, 1, seq, seq) mask rules out flash attention ("does not support non-null
    attn_mask") and made cuDNN's attention 3x slower inside our graph than eagerly (run
    20261128T164850Z-graph: 142 vs 48 ms a 7B step). Both answers are known without reading anything when
    the caller promises ``unpacked`` (``GraphedBackward(unpacked_rows=True)``): every row is one sequence
    and no position ids or attention mask reach the model, so positions are the model's own arange and
    nothing is padded. Then, during the capture only, ``find_packed_sequence_indices`` answers None and
    ``is_tracing()`` with no tensor answers as it would eagerly. Without the promise transformers' own
    (dense-mask) decisions stand: correct, slower."""
    mu = sys.modules.get("transformers.masking_utils")
    if mu is None or not unpacked:
        yield
        return
    saved = {name: getattr(mu, name) for name in ("is_tracing", "find_packed_sequence_indices") if hasattr(mu, name)}
    if "is_tracing" in saved:
        orig = saved["is_tracing"]
        mu.is_tracing = lambda tensor=None: (torch.compiler.is_compiling() or torch.jit.is_tracing()
                                             if tensor is None else orig(tensor))
    if "find_packed_sequence_indices" in saved:
        mu.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(mu, name, fn)


class GraphCaptureError(RuntimeError):
    """The forward/backward could not be captured as a CUDA graph."""


@dataclass
class _Captured:
    graph: "torch.cuda.CUDAGraph"
    inputs: dict[str, torch.Tensor]
    loss: torch.Tensor


def _signature(batch: Batch) -> tuple:
    sig = []
    for k in sorted(batch):
        v = batch[k]
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"GraphedBackward: batch[{k!r}] is a {type(v).__name__}; a graphed batch holds "
                            "tensors only (bind other arguments inside loss_fn)")
        sig.append((k, tuple(v.shape), v.dtype, v.device))
    return tuple(sig)


class GraphedBackward:
    """``loss_fn(batch)``'s forward and backward, captured as a CUDA graph per batch signature and
    replayed; gradients accumulate into ``p.grad`` of ``params``. Returns the loss (detached)."""

    def __init__(self, loss_fn: Callable[[Batch], torch.Tensor], params: Sequence[torch.nn.Parameter], *,
                 warmup: int = 2, max_graphs: int = 2, enabled: bool | None = None, unpacked_rows: bool = False):
        self.loss_fn = loss_fn
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("GraphedBackward: no parameter requires grad (pass the trainable ones, e.g. the "
                             "LoRA adapters)")
        if warmup < 1 or max_graphs < 0:
            raise ValueError(f"GraphedBackward: warmup must be >= 1 and max_graphs >= 0 (got {warmup}, {max_graphs})")
        devices = {p.device for p in self.params}
        on_cuda = len(devices) == 1 and next(iter(devices)).type == "cuda"
        partitioned = any(is_partitioned(p) for p in self.params)
        if enabled and partitioned:
            raise ValueError("GraphedBackward: DeepSpeed ZeRO-3 partitioned parameters cannot be graphed "
                             "(ZeRO-3 gathers them with host-side hooks); run without cuda graphs")
        if enabled and not on_cuda:
            raise ValueError(f"GraphedBackward: CUDA graphs need every trainable parameter on one CUDA device; "
                             f"they are on {sorted(map(str, devices))}. Pass enabled=None to run eagerly there.")
        self.enabled = (on_cuda and not partitioned) if enabled is None else enabled
        self.warmup, self.max_graphs, self.unpacked_rows = warmup, max_graphs, unpacked_rows
        self.disabled_reason: str | None = None if self.enabled else (
            "ZeRO-3 partitioned parameters" if partitioned else "no CUDA device" if not on_cuda else "enabled=False")
        self.stats = Counter()  # eager, captures, replays
        self._graphs: dict[tuple, _Captured] = {}
        self._eager_runs: Counter = Counter()
        self._acc: list[torch.Tensor] | None = None
        self._pool = None
        self._side = None

    # -- gradients -----------------------------------------------------------------------------------
    def _bind_grads(self) -> None:
        """Makes every ``p.grad`` our persistent buffer (the graph's backward adds into that memory); a
        ``.grad`` that is None (never set, or set so by ``zero_grad``) is bound zeroed, one set or replaced
        by the caller is copied in."""
        if self._acc is None:
            # every buffer is written below: zeroed, or the caller's gradient copied in
            self._acc = [torch.empty_like(p) for p in self.params]
        to_zero = []
        for p, a in zip(self.params, self._acc):
            g = p.grad
            if g is a:
                continue
            if g is None:
                to_zero.append(a)
            else:
                a.copy_(g)
            p.grad = a
        if to_zero:
            torch._foreach_zero_(to_zero)

    def _forward_backward(self, batch: Batch) -> torch.Tensor:
        loss = self.loss_fn(batch)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise ValueError(f"GraphedBackward: loss_fn must return a scalar tensor, got {type(loss).__name__}"
                             + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""))
        # .grad is bound (defined), so AccumulateGrad adds in place: no second copy of the gradients
        torch.autograd.backward(loss, inputs=self.params)
        return loss.detach()

    # -- the paths -----------------------------------------------------------------------------------
    def _eager(self, batch: Batch, side_stream: bool) -> torch.Tensor:
        self.stats["eager"] += 1
        self._bind_grads()
        if not side_stream:
            return self._forward_backward(batch)
        if self._side is None:
            self._side = torch.cuda.Stream()
        self._side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._side):
            loss = self._forward_backward(batch)
        torch.cuda.current_stream().wait_stream(self._side)
        return loss

    def _capture(self, sig: tuple, batch: Batch) -> _Captured:
        self._bind_grads()
        inputs = {k: v.detach().clone() for k, v in batch.items()}
        torch.cuda.synchronize()
        # the eager warm-up's cached blocks back to the device: the graph's pool holds its own
        torch.cuda.empty_cache()
        graph = torch.cuda.CUDAGraph()
        try:
            with _mask_decisions_as_eager(self.unpacked_rows), torch.cuda.graph(graph, pool=self._pool):
                loss = self._forward_backward(inputs)
        except Exception as e:
            self.enabled = False
            self.disabled_reason = f"capture failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
            raise GraphCaptureError(
                f"GraphedBackward: the forward/backward could not be captured as a CUDA graph ({self.disabled_reason}). "
                "Usual causes: a host sync inside the loss function (.item(), .tolist(), printing a tensor, "
                "boolean-mask indexing), or gradient checkpointing with preserve_rng_state=True on a torch "
                "that cannot capture RNG state. Fix that, or train without CUDA graphs.") from e
        self._pool = graph.pool()
        self.stats["captures"] += 1
        cap = _Captured(graph, inputs, loss)
        self._graphs[sig] = cap
        return cap

    def __call__(self, batch: Batch) -> torch.Tensor:
        sig = _signature(batch)
        if self.unpacked_rows and ("position_ids" in batch or "attention_mask" in batch):
            raise ValueError("GraphedBackward(unpacked_rows=True) promises that no position_ids or attention_mask "
                             f"reach the model, but the batch has {sorted(set(batch) & {'position_ids', 'attention_mask'})}; "
                             "drop them (one unpadded sequence per row) or construct with unpacked_rows=False")
        if not self.enabled:
            return self._eager(batch, side_stream=False)
        cap = self._graphs.get(sig)
        if cap is None:
            # the first signature warms up ``warmup`` times; later ones once (new Triton specialisations)
            need = self.warmup if not self._graphs else 1
            if self._eager_runs[sig] < need or len(self._graphs) >= self.max_graphs:
                self._eager_runs[sig] += 1
                return self._eager(batch, side_stream=True)
            cap = self._capture(sig, batch)
        self._bind_grads()
        for k, v in batch.items():
            t = cap.inputs[k]
            if v.data_ptr() != t.data_ptr():
                t.copy_(v, non_blocking=True)
        cap.graph.replay()
        self.stats["replays"] += 1
        return cap.loss.clone()

    @property
    def graphed(self) -> bool:
        """True once at least one signature replays as a graph."""
        return self.enabled and bool(self._graphs)

    def describe(self) -> dict:
        return dict(enabled=self.enabled, graphs=len(self._graphs), disabled_reason=self.disabled_reason,
                    **{k: int(v) for k, v in self.stats.items()})
