"""ZeRO-3 with whole decoder layers (`distributed.gather: layer`): each layer's frozen weights are gathered
once for its forward and once for its checkpoint recompute and backward together, the next layer's gather
running while this one computes.

Why not DeepSpeed's own hooks (`gather: module`, kept to compare): they gather one module's direct
parameters around that module's call, so a LoRA decoder layer (~30 modules) costs ~30 gathers and releases
in the forward, again in the checkpoint recompute and the backward, each with host bookkeeping (and, on one
GPU, a stream synchronisation per fetch); and since a weight is whole only inside its own module, our fused
kernels (the LoRA MLP reads gate, up and down at once; the loss reads lm_head outside its module) fall back
to the modules' forwards. Here, a unit is gathered whole and stays whole while anything in it runs:

- units: every decoder layer (a class of the model's ``_no_split_modules``), and every other module that
  owns a partitioned parameter directly (the embedding, lm_head). DeepSpeed's module hooks are removed from
  each unit and everything inside it; it keeps its hooks on the modules above them (which own no
  partitioned parameter) and its per-parameter gradient hooks, which reduce the adapters' gradients as
  before. The adapters, the norms and anything under ``stage3_param_persistence_threshold`` stay resident;
- forward (a pre-hook and a hook on each unit): wait for the unit's gather (started by the unit before it;
  the order is the previous pass's), start the next unit's, run, release. A unit whose output records
  autograd gets ``_EnterBackward`` on its outputs and ``_ExitBackward`` on its inputs;
- backward: ``_EnterBackward`` runs when the gradient reaches the unit's output, before anything of the unit
  is recomputed: it waits for the unit's gather and starts the one of the unit before it. ``_ExitBackward``
  runs once the gradient of the unit's input is complete, i.e. after its recompute and its backward:
  release. So the recompute finds its layer whole and gathers nothing (transformers 5.17 reruns the module
  call, hooks included, inside the checkpoint; 5.24 reruns forward alone: both are seen and skipped). The
  last unit of the forward that backward needs first is kept whole from its forward to its backward;
- ``finish()`` after each backward releases what is left (the first layer, whose input needs no gradient);
- lm_head read by our fused loss outside its forward: the provider ``kernels.patching.gathering.GATHER``.

Gathering one parameter: one process holding its partition on the device owns the whole weight (the
partition is a view of it: no copy, no memory); otherwise its partition is all-gathered (copied to the device
first when offloaded) into a new buffer on a side stream, after the compute stream's work so far; the compute
stream waits for it at first use. Release: the buffer is dropped (kept from reuse until the compute stream is
done with it) and the parameter is an empty placeholder again. The state lives in DeepSpeed's own status field
(``ds_status``), so DeepSpeed's checks at the optimizer step see what it expects. Memory: at most two decoder
layers whole at a time (the one running and the one prefetched), plus lm_head during the last layer.
"""

from __future__ import annotations

import collections
import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from contract_review.kernels.patching.gathering import GATHER

from ..errors import TrainingError

_ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # torch 2.13 renamed it


def _in_backward() -> bool:
    """Autograd's engine runs on this thread: a checkpoint's recompute, never a first forward."""
    return torch._C._current_graph_task_id() != -1


def _mark(name: str):
    """A profiler range (where a trace shows the gathers' host time), free when nothing profiles."""
    if torch.autograd.profiler._is_profiler_enabled:
        return torch.profiler.record_function(name)
    return contextlib.nullcontext()


def _status(p: nn.Parameter) -> str:
    return p.ds_status.name


def _set_status(p: nn.Parameter, name: str) -> None:
    p.ds_status = type(p.ds_status)[name]  # DeepSpeed's ZeroParamStatus, without importing DeepSpeed here


@dataclass(eq=False)
class Unit:
    """Modules gathered and released together: a decoder layer, or one module owning partitioned weights."""

    name: str
    module: nn.Module
    params: list  # its partitioned (non-persistent) parameters, in DeepSpeed's order
    layer: bool
    held: bool = False  # gathered or being gathered, not yet released
    pending: tuple | None = None  # (staged [(param, data)], event): a gather not yet waited for
    nbytes: int = field(init=False, default=0)

    def __post_init__(self):
        self.nbytes = sum(p.ds_numel * p.element_size() for p in self.params)


def _marker_forward(ctx, gather, unit, tensors):
    """The identity both markers apply: views, so autograd calls the marker's backward at that point."""
    ctx.gather, ctx.unit = gather, unit
    out = tuple(t.view_as(t) for t in tensors)
    return out if len(out) > 1 else out[0]


class _EnterBackward(torch.autograd.Function):
    """Identity on a unit's outputs; its backward (the unit's backward is next) gathers the unit."""

    @staticmethod
    def forward(ctx, gather, unit, *outputs):
        return _marker_forward(ctx, gather, unit, outputs)

    @staticmethod
    def backward(ctx, *grads):
        ctx.gather._backward_enter(ctx.unit)
        return (None, None, *grads)


class _ExitBackward(torch.autograd.Function):
    """Identity on a unit's inputs; its backward (the unit's backward and recompute are done) releases it."""

    @staticmethod
    def forward(ctx, gather, unit, *inputs):
        return _marker_forward(ctx, gather, unit, inputs)

    @staticmethod
    def backward(ctx, *grads):
        ctx.gather._release(ctx.unit, why="backward")
        return (None, None, *grads)


def _tensors(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for t in x if isinstance(t, torch.Tensor)]
    return []


def _substitute(x, pick, fn):
    """``x`` (a tensor, or a tuple/list of values) with the tensors that ``pick`` selects replaced by
    ``fn(selected)``'s results, in order; None when none is selected."""
    chosen = [t for t in _tensors(x) if pick(t)]
    if not chosen:
        return None
    new = fn(chosen)
    new = iter(new if isinstance(new, tuple) else (new,))
    if isinstance(x, torch.Tensor):
        return next(new)
    return type(x)(next(new) if isinstance(t, torch.Tensor) and pick(t) else t for t in x)


def decoder_layer_classes(model: nn.Module) -> set[str]:
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or ())
    return names


def _is_decoder_layer(m: nn.Module, layer_classes: set[str]) -> bool:
    return type(m).__name__ in layer_classes or (not layer_classes and type(m).__name__.endswith("DecoderLayer"))


def has_decoder_layers(model: nn.Module) -> bool:
    layer_classes = decoder_layer_classes(model)
    return any(_is_decoder_layer(m, layer_classes) for m in model.modules())


def find_units(model: nn.Module) -> list[Unit]:
    """The units of ``model`` in module order (the forward order of a decoder stack). A decoder layer whose
    parameters all stay resident (each under ``param_persistence_threshold``: a small model) is no unit: it
    is whole already."""
    layer_classes = decoder_layer_classes(model)
    units, inside = [], set()
    for name, m in model.named_modules():
        if id(m) in inside:
            continue
        if _is_decoder_layer(m, layer_classes):
            params = [p for p in m.parameters() if not p.ds_persist]
            inside.update(id(x) for x in m.modules())
            if params:
                units.append(Unit(name, m, sorted(params, key=lambda p: p.ds_id), layer=True))
            continue
        params = [p for p in m.parameters(recurse=False) if hasattr(p, "ds_id") and not p.ds_persist]
        if params:
            units.append(Unit(name, m, sorted(params, key=lambda p: p.ds_id), layer=False))
    return units


class LayerGather:
    """Gathers ``model``'s units for DeepSpeed ZeRO-3 (``engine.optimizer.parameter_offload``'s hooks are
    taken off them). ``finish()`` after every backward; ``close()`` puts nothing back (the engine is done)."""

    def __init__(self, model: nn.Module, parameter_offload, device: torch.device):
        self.model, self.device = model, device
        self.units = find_units(model)
        if not any(u.layer for u in self.units) and has_decoder_layers(model):
            raise TrainingError("distributed.gather layer: every decoder layer's parameters stay resident (each is "
                                "under distributed.param_persistence_threshold), so there is no layer to gather; "
                                "set distributed.gather=module or lower param_persistence_threshold")
        if not any(u.layer for u in self.units):
            raise TrainingError("distributed.gather layer: found no decoder layer to gather whole in this "
                                f"{type(model).__name__} (classes of _no_split_modules: "
                                f"{sorted(decoder_layer_classes(model)) or 'none'}); set distributed.gather=module")
        self._check_supported()
        self._take_over_hooks(parameter_offload)
        self.side = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.holds: collections.Counter = collections.Counter()  # id(param) -> units holding it (tied weights)
        self.traces: dict[tuple, list[Unit]] = {}  # (training, grad) -> the units of the last forward, in order
        self.pass_units: list[Unit] = []  # this forward's units, in order
        self.backward_units: list[Unit] = []  # this forward's units that recorded autograd, in order
        self.backward_index: dict[int, int] = {}
        self.first_backward: Unit | None = None  # the unit the last backward started with
        self.predicting = True
        self.stats: collections.Counter = collections.Counter()
        self.handles = []
        for unit in self.units:
            self.handles.append(unit.module.register_forward_pre_hook(self._pre_hook(unit), with_kwargs=True))
            self.handles.append(unit.module.register_forward_hook(self._post_hook(unit)))
            if not unit.layer:
                unit.module.__dict__[GATHER] = self._provider(unit)
        self.handles.append(model.register_forward_pre_hook(lambda m, a: self._begin_forward()))
        self.handles.append(model.register_forward_hook(lambda m, a, o: self._end_forward()))

    # -- setup -------------------------------------------------------------------------------------
    def _check_supported(self) -> None:
        for unit in self.units:
            for p in unit.params:
                why = None
                if getattr(p, "ds_secondary_tensor", None) is not None:
                    why = "a secondary partition (zero_hpz_partition_size)"
                elif hasattr(p.ds_tensor, "ds_quant_scale"):
                    why = "quantized weights"
                elif getattr(p, "nvme_swapper", None) is not None:
                    why = "NVMe offload"
                if why:
                    raise TrainingError(f"distributed.gather layer does not gather parameters with {why} "
                                        f"({unit.name}); set distributed.gather=module")

    def _take_over_hooks(self, parameter_offload) -> None:
        """Removes DeepSpeed's module hooks (fetch, release, their backward twins) from every unit's modules."""
        mine = []
        for unit in self.units:
            mine.extend(unit.module.modules() if unit.layer else [unit.module])
        dicts = {id(d) for m in mine for d in (m._forward_pre_hooks, m._forward_hooks)}
        removed = 0
        for h in [*parameter_offload.forward_hooks, *parameter_offload.backward_hooks]:
            d = h.hooks_dict_ref()
            if d is not None and id(d) in dicts and h.id in d:
                h.remove()
                removed += 1
        # DeepSpeed 0.19 puts four on every module (pre-forward, forward, and the two that set up backward)
        if removed != 4 * len(mine):
            raise TrainingError(f"distributed.gather layer: expected DeepSpeed's 4 hooks on each of {len(mine)} "
                                f"modules, found {removed}; this DeepSpeed version registers them differently. "
                                "Set distributed.gather=module")

    def describe(self) -> dict:
        layers = [u for u in self.units if u.layer]
        return {"gather": "layer", "decoder_layers": len(layers), "other_units": [u.name for u in self.units
                                                                                 if not u.layer],
                "layer_gib": round(max(u.nbytes for u in layers) / 2**30, 3),
                "gathered_gib_per_forward": round(sum(u.nbytes for u in self.units) / 2**30, 3),
                # so far: gathers (a miss: not prefetched), prefetches (hits: waited for in time), releases by
                # cause, recompute_gathers (a checkpoint recompute that had to gather again: 0 expected)
                "counts": dict(self.stats)}

    # -- hooks -------------------------------------------------------------------------------------
    def _pre_hook(self, unit: Unit):
        def hook(module, args, kwargs):
            if _in_backward():
                # a recompute inside the backward: its unit is whole already (``_EnterBackward``), unless the
                # checkpoint is reentrant (its first forward recorded nothing), whose recompute gathers here
                if not unit.held:
                    self.stats["recompute_gathers"] += 1
                    self._wait(unit)
                return self._wrap_inputs(unit, args, kwargs)
            self._use(unit)
            return self._wrap_inputs(unit, args, kwargs)
        return hook

    def _post_hook(self, unit: Unit):
        def hook(module, args, output):
            if _in_backward():
                return None  # released by _ExitBackward once the backward is through the unit
            if torch.is_grad_enabled():
                # the unit's outputs that carry a gradient back: its backward will need its weights
                new = _substitute(output, lambda t: t.grad_fn is not None,
                                  lambda outs: _EnterBackward.apply(self, unit, *outs))
                if new is not None:
                    self.backward_index[id(unit)] = len(self.backward_units)
                    self.backward_units.append(unit)
                    if unit is not self.first_backward:
                        self._release(unit, why="forward")
                    return new
            self._release(unit, why="forward")
            return None
        return hook

    def _wrap_inputs(self, unit: Unit, args, kwargs):
        if not torch.is_grad_enabled():
            return None
        # nothing of it to backpropagate into: finish() releases it after the backward
        new = _substitute(args, lambda t: t.requires_grad, lambda ins: _ExitBackward.apply(self, unit, *ins))
        return None if new is None else (new, kwargs)

    def _provider(self, unit: Unit):
        @contextlib.contextmanager
        def gathered():
            self._use(unit)
            try:
                yield
            finally:
                self._release(unit, why="forward")
        return gathered

    # -- the passes ----------------------------------------------------------------------------------
    def _begin_forward(self) -> None:
        if _in_backward():
            return
        self._release_all("stale")  # a forward whose backward never came (an evaluation, an error)
        self.pass_units, self.backward_units, self.backward_index = [], [], {}
        self.trace = self.traces.get((self.model.training, torch.is_grad_enabled()), [])
        self.predicting = bool(self.trace)

    def _end_forward(self) -> None:
        if _in_backward():
            return
        self.traces[(self.model.training, torch.is_grad_enabled())] = list(self.pass_units)
        for unit in self.units:  # a prefetch the forward never used (the model took another path)
            if unit.held and unit is not self.first_backward:
                self._release(unit, why="unused")
        if not self.backward_units:
            self._release_all("forward")

    def finish(self) -> None:
        """After a backward: releases what the backward left whole (the first layer, whose input needs no
        gradient) and remembers which unit the backward needs first."""
        self.first_backward = self.backward_units[-1] if self.backward_units else None
        self._release_all("finish")
        self.pass_units, self.backward_units, self.backward_index = [], [], {}

    def _use(self, unit: Unit) -> None:
        """A unit's forward starts: it is gathered (or its prefetch waited for); the next one is started."""
        i = len(self.pass_units)
        self.pass_units.append(unit)
        if self.predicting and (i >= len(self.trace) or self.trace[i] is not unit):
            self.predicting = False  # this pass took another path: no more guesses
        self._wait(unit)
        if self.predicting and i + 1 < len(self.trace):
            self._start(self.trace[i + 1], prefetch=True)

    def _backward_enter(self, unit: Unit) -> None:
        with _mark("zero3.backward_enter"):
            self._wait(unit)
            j = self.backward_index.get(id(unit), 0)
            if j > 0:
                self._start(self.backward_units[j - 1], prefetch=True)

    # -- gather and release ---------------------------------------------------------------------------
    def _start(self, unit: Unit, prefetch: bool = False) -> None:
        if unit.held:
            return
        unit.held = True
        todo = []
        for p in unit.params:
            self.holds[id(p)] += 1
            if _status(p) == "NOT_AVAILABLE":
                todo.append(p)
        self.stats["prefetches" if prefetch else "gathers"] += 1
        self.stats["gathered_bytes"] += sum(p.ds_numel * p.element_size() for p in todo)
        if not todo:
            return
        with _mark("zero3.gather"):
            for p in todo:
                _set_status(p, "INFLIGHT")
            # one process whose partitions are on the device holds the whole weights: no work to order
            side = self.side if any(self._moves(p) for p in todo) else None
            if side is not None:
                side.wait_stream(torch.cuda.current_stream(self.device))
            staged, event = [], None
            with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                for p in todo:
                    staged.append((p, self._gather_one(p)))
                if side is not None:
                    event = torch.cuda.Event()
                    event.record(side)
            unit.pending = (staged, event)

    def _moves(self, p: nn.Parameter) -> bool:
        return p.ds_zero_partition_world_size > 1 or p.ds_tensor.device != self.device

    def _gather_one(self, p: nn.Parameter) -> torch.Tensor:
        part = p.ds_tensor
        if part.device != self.device:
            part = part.to(self.device, non_blocking=True)  # offloaded to the host
        world = p.ds_zero_partition_world_size
        if world == 1:
            full = part  # the partition is the whole weight
        else:
            full = torch.empty(world * part.numel(), dtype=part.dtype, device=self.device)
            _ALL_GATHER(full, part, group=p.ds_process_group, async_op=True).wait()
        return full.narrow(0, 0, p.ds_numel).view(p.ds_shape)

    def _wait(self, unit: Unit) -> None:
        if not unit.held:
            self.stats["misses"] += 1
            self._start(unit)
        elif unit.pending is not None:
            self.stats["hits"] += 1
        if unit.pending is None:
            return
        with _mark("zero3.wait"):
            staged, event = unit.pending
            if event is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
            for p, data in staged:
                p.data = data
                _set_status(p, "AVAILABLE")
            unit.pending = None

    def _release(self, unit: Unit, why: str) -> None:
        if not unit.held:
            return
        with _mark("zero3.release"):
            if unit.pending is not None:
                self._wait(unit)  # a prefetch never used: let its copies land before dropping them
            unit.held = False
            self.stats[f"releases_{why}"] += 1
            for p in unit.params:
                self.holds[id(p)] -= 1
                if self.holds[id(p)] > 0 or _status(p) != "AVAILABLE":
                    continue
                data = p.data
                if data.device.type == "cuda" and data.untyped_storage().data_ptr() != \
                        p.ds_tensor.untyped_storage().data_ptr():
                    data.record_stream(torch.cuda.current_stream(self.device))  # queued kernels still read it
                p.data = torch.empty(0, dtype=p.dtype, device=p.device)
                _set_status(p, "NOT_AVAILABLE")

    def _release_all(self, why: str) -> None:
        for unit in self.units:
            if unit.held:
                self._release(unit, why=why)

    def close(self) -> None:
        self._release_all("close")
        for h in self.handles:
            h.remove()
        for unit in self.units:
            unit.module.__dict__.pop(GATHER, None)
