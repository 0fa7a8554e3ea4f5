"""No gradient for a frozen embedding's output when nothing needs it (``patch(skip_embedding_grad=True)``).

peft (and transformers, for peft models) hook the input embeddings so that their output requires grad
(``enable_input_require_grads``): reentrant gradient checkpointing needs an input that requires grad, or the
checkpointed layers' outputs would not, and no adapter would get a gradient. Non-reentrant checkpointing
and no checkpointing at all need no such thing, and there the hook costs:
- the input gradient of the first decoder layer: its q/k/v input-gradient GEMMs and its norm's backward,
  all for a tensor nobody reads;
- the embedding output, a (tokens x hidden) leaf held by autograd until the backward ends: with
  ``offload_activations`` it could not leave the GPU like the other layers' inputs (64 MiB at 7B
  micro-batch 4, 20 MiB at 13B micro-batch 1), and its gradient, as much again, at the end.

So the first decoder layer detaches its input when all of these hold: the tensor is the embedding module's
output of this very forward (a user's own ``inputs_embeds`` is left alone), it is a leaf (the embedding
weight is frozen: the hook, not autograd, made it require grad), the model is training with grad enabled,
and the layer runs without checkpointing or with torch's non-reentrant checkpoint (``use_reentrant=False``
in its checkpoint function; anything else, or a function we cannot read, keeps the gradient).
"""

from __future__ import annotations

import functools
import weakref

import torch
from torch import nn

from kernels.monkey_patch import _ORIG  # the forward _bind keeps, which unpatch restores

_EMB_OUT = "_kernels_embedding_output"  # on the first layer: weakref to this forward's embedding output


def _checkpoint_is_non_reentrant(layer: nn.Module) -> bool:
    fn = getattr(layer, "_gradient_checkpointing_func", None)
    for _ in range(4):  # kernels.offload's wrapper, then the partial transformers made
        if hasattr(fn, "inner"):
            fn = fn.inner
        elif isinstance(fn, functools.partial):
            return fn.keywords.get("use_reentrant") is False
        else:
            break
    return False


def _input_grad_unneeded(layer: nn.Module) -> bool:
    return not getattr(layer, "gradient_checkpointing", False) or _checkpoint_is_non_reentrant(layer)


def _first_layer_forward(self, *args, **kwargs):
    ref = self.__dict__.pop(_EMB_OUT, None)
    x = args[0] if args else kwargs.get("hidden_states")
    if (ref is not None and x is not None and x is ref() and x.requires_grad and x.grad_fn is None
            and self.training and torch.is_grad_enabled() and _input_grad_unneeded(self)):
        if args:
            args = (x.detach(), *args[1:])
        else:
            kwargs["hidden_states"] = x.detach()
    return getattr(self, _ORIG)(*args, **kwargs)


def _stack_parts(m: nn.Module):
    emb, layers = getattr(m, "embed_tokens", None), getattr(m, "layers", None)
    if isinstance(emb, nn.Embedding) and isinstance(layers, nn.ModuleList) and len(layers):
        return emb, layers[0]
    return None


class _RecordOutput:
    """Forward hook on the embedding: tells the first layer which tensor is this forward's embedding output.
    An object holding its layer, not a closure, so that ``copy.deepcopy`` of a patched model points the
    copy's hook at the copy's layer."""

    def __init__(self, layer: nn.Module):
        self.layer = layer

    def __call__(self, module, args, output):
        if isinstance(output, torch.Tensor):
            self.layer.__dict__[_EMB_OUT] = weakref.ref(output)


def _recorders(emb: nn.Module) -> list:
    return [k for k, h in emb._forward_hooks.items() if isinstance(h, _RecordOutput)]


def install(model: nn.Module, bind) -> int:
    """Hooks every decoder stack of ``model`` (modules with ``embed_tokens`` and ``layers``); ``bind`` is
    kernels.monkey_patch's forward binder (passed in: this module is imported by it). Returns how many
    stacks were hooked now."""
    n = 0
    for m in model.modules():
        parts = _stack_parts(m)
        if parts is None or _recorders(parts[0]):
            continue
        emb, first = parts
        emb.register_forward_hook(_RecordOutput(first))
        bind(first, _first_layer_forward)
        n += 1
    return n


def remove(model: nn.Module) -> None:
    """Removes the recording hooks (unpatch restores the first layers' forwards)."""
    for m in model.modules():
        for k in _recorders(m):
            del m._forward_hooks[k]
        m.__dict__.pop(_EMB_OUT, None)
