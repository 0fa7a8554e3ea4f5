"""``patch(model)``: swap our kernels into a Hugging Face Llama/Mistral-family model, in place.

What is swapped, per module instance (the class and other models in the process are left alone, except
the rotary function, which is a module-level function of the modeling file):
- ``*RMSNorm`` modules with ``weight`` and ``variance_epsilon`` (Llama, Mistral, Qwen2, ...): Triton RMSNorm.
- gated MLPs (``gate_proj``, ``up_proj``, ``down_proj``, SiLU): one ``LoRAMLPFunction`` when every
  projection is eligible (below), else the projections' own forwards around our SwiGLU kernel.
- peft ``lora.Linear`` layers: ``LoRALinearFunction`` when eligible, else peft's own forward.
- ``apply_rotary_pos_emb`` of the attention's modeling module: the in-place Triton RoPE.
- ``*ForCausalLM`` with ``model`` and ``lm_head``: while training with labels, the fused linear +
  cross-entropy (no logits are returned then: ``outputs.logits`` is None).

Eligible (the fast path) means: one active vanilla LoRA adapter (no DoRA or other variant), not merged,
not disabled, a plain ``nn.Linear`` base with a frozen weight, no hooks on the module, and every weight
readable now (``gathering.unreadable``: a DeepSpeed ZeRO-3 weight is readable while a wrapper holds its
decoder layer gathered, as training/distributed/layer_gather.py does; under DeepSpeed's own per-module
hooks it is not, and the module's own forward runs, which those hooks gather for);
kernels/patching/eligibility.py has the rules and the reasons. Anything else falls back to the module's original forward, so correctness never
depends on the fast path. ``model._kernels_fast_path`` (``eligibility.fast_path_report``) counts what took
it and why the rest did not, once, after patching.

LoRA dropout (``lora_dropout`` > 0, training) stays on the fast path: the kernels draw the mask themselves
(kernels/ops/lora_dropout.py) from a key that each decoder stack redraws at every training forward (a
forward pre-hook installed here) and the layer's own number, so the forward, a checkpoint's recompute and
the backward rebuild the same mask, with or without ``preserve_rng_state`` and inside a CUDA graph.

Under gradient checkpointing the decoder layer's forward runs again in backward (the recompute) only to
rebuild what backward saved; in the layers of ``_RESIDUAL_MLP_LAYERS``, which end with
``residual + mlp(x)``, the MLP's output is never read there, so ``trim_recompute=True`` (the default) skips
its down projection during the recompute (``lora_mlp(need_out=False)``): the same gradients, one GEMM of
seven fewer.

``skip_embedding_grad=True`` (the default) drops the gradient of a frozen embedding's output that peft's
``enable_input_require_grads`` hook asks for, where no reentrant checkpoint needs it: kernels/patching/embedding_grad.py.

Nothing is added to the parameters or the state dict: ``save_pretrained`` and peft adapters are
unchanged. Gradient checkpointing works (every op is an autograd Function with no global state).

``offload_activations=True`` (off by default) also wraps the decoder layers' gradient-checkpointing
function so that their checkpointed inputs live in pinned host memory: kernels/schedule/offload.py.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from contract_review.kernels.ops._utils import INTERPRET, is_partitioned, triton_usable
from contract_review.kernels.ops.fused_linear_cross_entropy import fused_linear_cross_entropy as fused_lce
from contract_review.kernels.ops.lora import lora_linear, lora_mlp, lora_shared_input
from contract_review.kernels.ops.rms_norm import rms_norm as rms_norm_op
from contract_review.kernels.ops.rope import rope as rope_op
from contract_review.kernels.ops.swiglu import swiglu as swiglu_op
from contract_review.kernels.patching import embedding_grad, gathering
from contract_review.kernels.patching.binding import bind, is_bound, original, restore
from contract_review.kernels.patching.eligibility import (
    fast_path_report, has_hooks, install_dropout_keys, is_gated_mlp, is_lora_linear, is_rms_norm, is_silu,
    lora_spec, proj_spec, remove_dropout_keys, report_lines)
from contract_review.kernels.schedule import offload
from contract_review.kernels.schedule.mlp_stash import check_fraction, stash_plan

log = logging.getLogger(__name__)

# on an MLP: its decoder layer (trim_recompute). A plain reference kept outside ``_modules`` (no weakref:
# copy.deepcopy of a patched model must point the copy's MLP at the copy's layer)
_RECOMPUTE_LAYER = "_kernels_recompute_layer"
# on an MLP whose layer ``offload_mlp`` picked: that decoder layer (kernels/schedule/mlp_stash.py)
_STASH_LAYER = "_kernels_stash_layer"
_STASH_WHERE = "_kernels_stash_where"  # "host" or "device" (kernels/schedule/mlp_stash.py's stash_plan)
# on an attention's q_proj: its (k_proj, v_proj), computed with it in one node (patch(fuse_qkv=True));
# on k_proj and v_proj: (input, output) that node made for them, handed over at their own call
_QKV = "_kernels_qkv"
_PENDING = "_kernels_pending"

# decoder layers whose forward ends ``hidden_states = residual + self.mlp(hidden_states)``: nothing in the
# layer saves a tensor computed from the MLP's output, so a checkpoint recompute never reads it. Exact class
# names, checked against their transformers source (5.17, 5.24); a model with a norm or dropout after its MLP
# (Gemma 2/3, OLMo 2, Phi-3) is not here and recomputes in full.
_RESIDUAL_MLP_LAYERS = frozenset({"LlamaDecoderLayer", "MistralDecoderLayer", "Qwen2DecoderLayer", "Qwen3DecoderLayer"})


# ---------------------------------------------------------------------------------------------------
# replacement forwards (bound to instances; the original stays reachable for the fallbacks)


def _rms_norm_forward(self, hidden_states):
    if not triton_usable(hidden_states):
        return original(self)(hidden_states)
    return rms_norm_op(hidden_states, self.weight, self.variance_epsilon)


def _lora_linear_forward(self, x, *args, **kwargs):
    # k_proj / v_proj whose output q_proj's fused node already made from this very input
    pending = self.__dict__.pop(_PENDING, None)
    if pending is not None and pending[0] is x and not args and not kwargs:
        return pending[1]
    spec = None if args or not triton_usable(x) else lora_spec(self, kwargs)
    if spec is None:
        return original(self)(x, *args, **kwargs)
    group = self.__dict__.get(_QKV)
    if group is not None and spec[2] is not None:
        specs = [spec, *(lora_spec(m) for m in group)]
        if all(s is not None and s[2] is not None and s[0].shape[1] == spec[0].shape[1] for s in specs):
            outs = lora_shared_input(x, specs)
            for m, y in zip(group, outs[1:]):
                m.__dict__[_PENDING] = (x, y)
            return outs[0]
    return lora_linear(x, *spec)


def _checkpoints(layer: nn.Module) -> bool:
    """The decoder layer runs under gradient checkpointing (transformers' own test in its ``__call__``)."""
    return layer.training and bool(getattr(layer, "gradient_checkpointing", False))


def _in_backward() -> bool:
    """Autograd's engine is running: a checkpoint's recompute happens there, a first forward never does."""
    return torch._C._current_graph_task_id() != -1


def _in_unread_recompute(mlp: nn.Module) -> bool:
    """True while the MLP runs inside a gradient-checkpointing recompute of a decoder layer that never reads
    its output (``_RESIDUAL_MLP_LAYERS``)."""
    layer = mlp.__dict__.get(_RECOMPUTE_LAYER)
    return layer is not None and _checkpoints(layer) and _in_backward()


def _in_first_checkpointed_forward(layer: nn.Module) -> bool:
    """The decoder layer checkpoints and this is its first forward (recording autograd, not inside a
    backward): what the recompute will need may be stashed now (``offload_mlp``). A reentrant checkpoint's
    first forward runs without grad, so it never stashes."""
    return _checkpoints(layer) and torch.is_grad_enabled() and not _in_backward()


def _mlp_forward(self, x, *args, **kwargs):
    if args or kwargs or not is_silu(self.act_fn) or not triton_usable(x):
        return original(self)(x, *args, **kwargs)
    specs = [proj_spec(self.gate_proj), proj_spec(self.up_proj), proj_spec(self.down_proj)]
    if all(s is not None for s in specs):
        stash_layer = self.__dict__.get(_STASH_LAYER)
        trim_layer = self.__dict__.get(_RECOMPUTE_LAYER)
        stash = None
        if stash_layer is not None and _in_first_checkpointed_forward(stash_layer):
            stash = self.__dict__.get(_STASH_WHERE, "host")
        elif trim_layer is not None and _in_first_checkpointed_forward(trim_layer):
            stash = "small"  # the trimmed recompute takes h A_d^T from here instead of SwiGLU and a GEMM
        return lora_mlp(x, *specs, need_out=not _in_unread_recompute(self),
                        owner=None if stash_layer is None and trim_layer is None else self, stash=stash)
    # some projection is not ours to read (DoRA, dropout, ZeRO-3, hooks): its own forward, our activation
    return self.down_proj(swiglu_op(self.gate_proj(x), self.up_proj(x)))


def _make_rope(orig):
    def apply_rotary_pos_emb(q, k, cos, sin, *args, **kwargs):
        unsqueeze_dim = kwargs.get("unsqueeze_dim", args[-1] if args else 1)
        if (unsqueeze_dim != 1 or q.dim() != 4 or cos.shape[-1] != q.shape[-1] or q.shape[-1] % 2
                or not triton_usable(q, k, cos) or q.dtype not in (torch.float32, torch.float16, torch.bfloat16)):
            return orig(q, k, cos, sin, *args, **kwargs)
        return rope_op(q, k, cos, sin)

    apply_rotary_pos_emb._kernels_original = orig
    return apply_rotary_pos_emb


def _causal_lm_forward(self, *args, labels=None, **kwargs):
    orig = original(self)
    lm_head = self.lm_head
    logits_to_keep = kwargs.get("logits_to_keep", 0)
    # a distributed wrapper that gathers lm_head for us (and prefetched it during the last decoder layer):
    # read only the weight's metadata now, not through the module (DeepSpeed would gather it on the spot,
    # for the whole decoder forward); the loss below reads it inside the provider's gather
    gather = gathering.provider(lm_head)
    W = lm_head._parameters.get("weight") if gather is not None else getattr(lm_head, "weight", None)
    partitioned = is_partitioned(W)
    if (labels is None or not self.training or args or type(lm_head) is not nn.Linear
            # hooks: someone watches lm_head's forward, so call it, unless they are ZeRO-3's own (the
            # weight is partitioned) or the gathering wrapper's, whose job of gathering the weight we do below
            or (has_hooks(lm_head) and not partitioned and gather is None)
            or not isinstance(logits_to_keep, int) or logits_to_keep != 0
            or kwargs.get("return_dict") is False or W is None or not triton_usable(W)
            or (partitioned and (W.requires_grad or lm_head.bias is not None))):
        return orig(*args, labels=labels, **kwargs)
    kwargs.pop("logits_to_keep", None)
    num_items = kwargs.get("num_items_in_batch")
    outputs = self.model(**kwargs)
    hidden = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
    # Hugging Face's causal-LM loss: predict token t+1 from position t; the last position has no target
    shift = nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].to(hidden.device)
    if gather is not None:
        with gather():
            loss = fused_lce(hidden, lm_head.weight, shift, lm_head.bias, -100, num_items)
    elif partitioned and getattr(getattr(W, "ds_status", None), "name", "") != "AVAILABLE":
        # ZeRO-3: gather the frozen head for the forward only (our loss needs it in no backward).
        # When ZeRO-3 already holds it gathered (its parent module's hooks fetch it as an external
        # parameter), a second gather would try to release it on exit while it is in use: read it as is.
        import deepspeed  # only here: the weight is partitioned, so DeepSpeed is installed and running

        with deepspeed.zero.GatheredParameters([W], modifier_rank=None):
            loss = fused_lce(hidden, W, shift, None, -100, num_items)
    else:
        loss = fused_lce(hidden, W, shift, lm_head.bias, -100, num_items)
    return _causal_lm_output(outputs, loss)


def _causal_lm_output(outputs, loss):
    fields = CausalLMOutputWithPast.__dataclass_fields__
    out: dict[str, Any] = {"loss": loss, "logits": None}
    for name in ("past_key_values", "cache", "hidden_states", "attentions"):
        if name in fields:
            out[name] = getattr(outputs, name, None)
    return CausalLMOutputWithPast(**out)


# ---------------------------------------------------------------------------------------------------
# patch / unpatch


def _is_causal_lm(m: nn.Module) -> bool:
    # the transformers model itself, not a wrapper that forwards attributes to it (PeftModelForCausalLM)
    return type(m).__name__.endswith("ForCausalLM") and "lm_head" in m._modules and "model" in m._modules


def patch(model: nn.Module, *, rms_norm: bool = True, rope: bool = True, swiglu: bool = True,
          lora: bool = True, fused_linear_cross_entropy: bool = True,
          offload_activations: bool = False, trim_recompute: bool = True,
          skip_embedding_grad: bool = True, offload_mlp: float = 0.0, fuse_qkv: bool = True) -> nn.Module:
    """Patches ``model`` (a transformers model or a peft model around one) in place and returns it.

    Call it after ``get_peft_model`` (the LoRA layers must exist to be patched); calling it before
    patches the norms, MLPs, RoPE and loss, and a second call after peft adds the LoRA layers.

    ``offload_activations=True``: with gradient checkpointing, each decoder layer's checkpointed input is
    kept in pinned host memory (async copies on a side stream, prefetched in backward) instead of on the
    GPU; see kernels/schedule/offload.py. Works whether gradient checkpointing is enabled before or after this call
    (it is installed at the next training forward); warns (``kernels.schedule.offload.OffloadWarning``) when it
    cannot apply: gradient checkpointing off, or DeepSpeed ZeRO-3 partitioned parameters.

    ``trim_recompute=True``: in Llama, Mistral and Qwen2/3 decoder layers, the checkpoint recompute skips the
    MLP's down projection, whose output it never reads (same gradients; ~5% of a 7B step).

    ``offload_mlp=f`` (0 by default): in a fraction ``f`` of the Llama, Mistral and Qwen2/3 decoder layers
    (spread evenly), the MLP's gate and up outputs go to pinned host memory in the checkpointed forward and
    come back for the recompute, which then skips the gate and up GEMMs (same gradients); the last layer
    keeps them on the GPU instead (``kernels.schedule.mlp_stash.KEEP_LAST``). Costs PCIe bandwidth (f = 0.5 is what a
    7B forward hides on an H200 host), pinned host memory, and one layer's e and g of GPU memory fetched
    ahead; see kernels/schedule/mlp_stash.py.

    ``fuse_qkv=True``: an attention whose q_proj, k_proj and v_proj are all LoRA layers on the fast path
    computes them in one autograd node (kernels/ops/lora.py ``LoRASharedInputFunction``): one x A^T GEMM in
    forward, one dA GEMM and one dx buffer the base GEMMs accumulate into in backward, no dx additions.
    k_proj and v_proj are still called by the attention's own code and hand back what the node made.

    ``skip_embedding_grad=True``: the decoder layers get the frozen embedding's output detached when no
    reentrant checkpoint needs its gradient (peft's hook makes it require grad for that case only): no
    input gradient for the first layer, and the embedding output is not held to the end of the backward.
    """
    if not (torch.cuda.is_available() or INTERPRET):
        log.warning("kernels.patch: no CUDA device and TRITON_INTERPRET unset; model left unpatched")
        return model
    check_fraction(offload_mlp)  # before anything is changed
    counts = {"rms_norm": 0, "mlp": 0, "lora": 0, "rope": 0, "causal_lm": 0, "offload": 0, "trim_recompute": 0,
              "embedding_grad": 0, "offload_mlp": 0, "fused_qkv": 0}
    residual_layers = []
    if offload_activations:
        counts["offload"] = offload.enable(model)["active"]
    for m in model.modules():
        if rms_norm and is_rms_norm(m):
            bind(m, _rms_norm_forward)
            counts["rms_norm"] += 1
        elif swiglu and is_gated_mlp(m):
            bind(m, _mlp_forward)
            counts["mlp"] += 1
        elif lora and is_lora_linear(m):
            bind(m, _lora_linear_forward)
            counts["lora"] += 1
        elif fused_linear_cross_entropy and _is_causal_lm(m):
            bind(m, _causal_lm_forward)
            counts["causal_lm"] += 1
        if rope and type(m).__name__.endswith("Attention"):
            mod = sys.modules.get(type(m).__module__)
            fn = getattr(mod, "apply_rotary_pos_emb", None)
            if fn is not None and not hasattr(fn, "_kernels_original"):
                setattr(mod, "apply_rotary_pos_emb", _make_rope(fn))
                counts["rope"] += 1
        mlp = getattr(m, "mlp", None)
        if (swiglu and type(m).__name__ in _RESIDUAL_MLP_LAYERS and type(m).__module__.startswith("transformers.")
                and isinstance(mlp, nn.Module) and is_gated_mlp(mlp)):
            residual_layers.append(m)
            if trim_recompute:
                mlp.__dict__[_RECOMPUTE_LAYER] = m
                counts["trim_recompute"] += 1
    if lora and fuse_qkv:
        for m in model.modules():
            projs = [getattr(m, n, None) for n in ("q_proj", "k_proj", "v_proj")]
            if all(isinstance(p, nn.Module) and is_lora_linear(p) and is_bound(p) for p in projs):
                projs[0].__dict__[_QKV] = (projs[1], projs[2])
                counts["fused_qkv"] += 1
    if offload_mlp:
        # model.modules() visits the layers in forward order
        for i, where in sorted(stash_plan(len(residual_layers), offload_mlp).items()):
            residual_layers[i].mlp.__dict__[_STASH_LAYER] = residual_layers[i]
            residual_layers[i].mlp.__dict__[_STASH_WHERE] = where
            counts["offload_mlp"] += 1
        if not counts["offload_mlp"]:
            log.warning("kernels.patch: offload_mlp=%s found no Llama/Mistral/Qwen2/Qwen3 decoder layer with a "
                        "gated MLP to apply to", offload_mlp)
    if skip_embedding_grad:
        counts["embedding_grad"] = embedding_grad.install(model)
    if lora:
        counts["dropout_keys"] = install_dropout_keys([m for m in model.modules() if embedding_grad.is_stack(m)])
    report = fast_path_report(model)
    log.info("kernels.patch: %s", counts)
    for line in report_lines(report):
        log.info("%s", line)
    try:
        model._kernels_patch_counts = counts  # type: ignore[attr-defined]
        model._kernels_fast_path = report  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a model that refuses attributes just isn't annotated
        pass
    return model


def unpatch(model: nn.Module) -> nn.Module:
    """Restores every forward ``patch`` replaced (the rotary function of the modeling modules too) and
    the decoder layers' original checkpoint function (offload_activations)."""
    try:
        offload.disable(model)
    except RuntimeError:  # transformers without GradientCheckpointingLayer: nothing was offloaded
        pass
    remove_dropout_keys(model)
    for m in model.modules():
        m.__dict__.pop(_RECOMPUTE_LAYER, None)
        m.__dict__.pop(_STASH_LAYER, None)
        m.__dict__.pop(_STASH_WHERE, None)
        m.__dict__.pop(_QKV, None)
        m.__dict__.pop(_PENDING, None)
        restore(m)
        mod = sys.modules.get(type(m).__module__)
        fn = getattr(mod, "apply_rotary_pos_emb", None) if mod else None
        if fn is not None and hasattr(fn, "_kernels_original"):
            setattr(mod, "apply_rotary_pos_emb", fn._kernels_original)
    return model
