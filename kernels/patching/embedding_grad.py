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

So the decoder stack's forward (``LlamaModel`` and its kind: ``embed_tokens`` and ``layers``) looks the
tokens up itself and passes the output on detached when all of these hold: it is a leaf that requires
grad (the embedding weight is frozen: a hook, not autograd, made it require grad), the stack is training
with grad enabled, and every decoder layer runs without checkpointing or with torch's non-reentrant
checkpoint (``use_reentrant=False`` in its checkpoint function; anything else, or a function we cannot
read, keeps the gradient). It acts before any layer, outside every checkpoint, after every hook on the
embedding whenever it was registered: in transformers 5.17 the checkpoint wraps the layer's whole call,
and a first version that detached inside the first layer did so in the forward and not in the recompute
("Recomputed values ... have different metadata", run 20261128T191309Z-final); and the Trainer enables
checkpointing (adding peft's hook) after the user patched. A user's own ``inputs_embeds`` is passed through
as it is and keeps its gradient.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from contract_review.kernels.patching.binding import bind, is_bound, original


def _checkpoint_is_non_reentrant(layer: nn.Module) -> bool:
    fn = getattr(layer, "_gradient_checkpointing_func", None)
    for _ in range(4):  # kernels.schedule.offload's wrapper, then the partial transformers made
        if hasattr(fn, "inner"):
            fn = fn.inner
        elif isinstance(fn, functools.partial):
            return fn.keywords.get("use_reentrant") is False
        else:
            break
    return False


def _input_grad_unneeded(layer: nn.Module) -> bool:
    return not getattr(layer, "gradient_checkpointing", False) or _checkpoint_is_non_reentrant(layer)


def _stack_forward(self, *args, input_ids=None, inputs_embeds=None, **kwargs):
    orig = original(self)
    if args or input_ids is None or inputs_embeds is not None or not self.training or not torch.is_grad_enabled():
        return orig(*args, input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)
    embeds = self.embed_tokens(input_ids)
    if (embeds.requires_grad and embeds.grad_fn is None
            and all(_input_grad_unneeded(layer) for layer in self.layers)):
        embeds = embeds.detach()
    return orig(inputs_embeds=embeds, **kwargs)


def is_stack(m: nn.Module) -> bool:
    """A decoder stack: ``embed_tokens`` and ``layers``, and a forward taking ``input_ids``/``inputs_embeds``."""
    layers = getattr(m, "layers", None)
    if not (isinstance(getattr(m, "embed_tokens", None), nn.Embedding) and isinstance(layers, nn.ModuleList)
            and len(layers)):
        return False
    params = inspect.signature(type(m).forward).parameters
    return "input_ids" in params and "inputs_embeds" in params


def install(model: nn.Module) -> int:
    """Binds the forward of every decoder stack of ``model`` (``unpatch`` restores it). Returns how many."""
    n = 0
    for m in model.modules():
        if is_stack(m) and not is_bound(m):
            bind(m, _stack_forward)
            n += 1
    return n
