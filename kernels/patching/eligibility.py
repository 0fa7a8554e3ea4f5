"""Which modules take the kernels' fast path, and why the others do not: the one set of rules that both
the patched forwards (at every call) and the fast-path report (once, at start) apply.

    spec = lora_spec(m)                 (W, bias, A, B, scale, dropout) or None: peft's own forward
    why = lora_reason(m)                None on the fast path, else the reason, one short phrase
    report = fast_path_report(model)    counts per kind (LoRA projections, MLPs, RMSNorms, RoPE), reasons
    lines = report_lines(report)        what `contract-review train` prints at start

A LoRA projection takes the fast path (kernels/ops/lora.py) when it has one active vanilla adapter (no
DoRA or other variant), is not merged or disabled, has a plain frozen ``nn.Linear`` base that nothing
hooks, no DeepSpeed ZeRO-3 partitioned weight, and a dropout that is off, in eval mode, or an
``nn.Dropout`` the kernels draw themselves (kernels/ops/lora_dropout.py: needs the decoder stack's
per-forward key, which ``patch`` installs). An MLP takes the fused node when its three projections all do
and its activation is SiLU; RMSNorms of Llama's form and RoPE over whole even head dimensions always do.
The report counts what is known from the modules; two things are only known at a call (a call with extra
arguments such as peft's ``adapter_names``, and RoPE's ``unsqueeze_dim``) and take the fallback then.
"""

from __future__ import annotations

import sys
from collections import Counter

import torch
from torch import nn

from contract_review.kernels.patching.gathering import unreadable
from contract_review.kernels.ops.lora_dropout import DropoutKey, LoRADropout

# on a LoRA layer: (the DropoutKey of its decoder stack, the layer's salt); set by ``install_dropout_keys``
DROPOUT = "_kernels_dropout"
# on a decoder stack: its DropoutKey
STACK_KEY = "_kernels_dropout_key"


def has_hooks(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or getattr(m, "_hf_hook", None) is not None)


def is_lora_linear(m: nn.Module) -> bool:
    return (hasattr(m, "lora_A") and hasattr(m, "lora_B") and hasattr(m, "base_layer")
            and isinstance(getattr(m, "lora_A"), nn.ModuleDict))


def _plain_linear(lin: nn.Module, *, meta_ok: bool = False):
    """((W, bias, None, None, 0.0, None), None) for a frozen plain nn.Linear we may read directly, else
    (None, why). ``meta_ok``: weights on the meta device are a model's skeleton (the report of
    ``contract-review doctor --fast-path``), not ZeRO-3 placeholders."""
    if type(lin) is not nn.Linear:
        return None, f"base layer is a {type(lin).__name__}, not a plain nn.Linear (e.g. a quantized base)"
    if has_hooks(lin):
        return None, "hooks on the base layer (accelerate offload, DeepSpeed ZeRO-3)"
    W, b = lin.weight, lin.bias
    if W.requires_grad:
        return None, "the base weight is trainable"
    if not (meta_ok and W.device.type == "meta") and (unreadable(W) or unreadable(b)):
        # readable while a wrapper holds the decoder layer gathered (training/distributed/layer_gather.py)
        return None, "base weight partitioned by DeepSpeed ZeRO-3 (not gathered by a layer wrapper)"
    return (W, b, None, None, 0.0, None), None


def _dropout(m: nn.Module, a: str, build: bool):
    """(the LoRADropout or None for no dropout, None) or (None, why). ``build``: at a call, where eval mode
    turns dropout off; the report (not ``build``) says what a training forward would do."""
    drop = m.lora_dropout[a]
    if isinstance(drop, nn.Identity) or (isinstance(drop, nn.Dropout) and (drop.p == 0 or (build and not drop.training))):
        return None, None
    if type(drop) is not nn.Dropout:
        return None, f"lora dropout of type {type(drop).__name__}"
    own = m.__dict__.get(DROPOUT)
    if own is None:
        return None, "lora dropout > 0 outside a decoder stack the kernels seed"
    if not build:
        return "dropout", None
    holder, salt = own
    if holder.key is None:  # called outside its stack's forward (which draws the key): draw one now
        holder.advance(m.base_layer.weight.device)
    return LoRADropout(float(drop.p), holder.key, salt), None


def _lora(m: nn.Module, kwargs: dict | None, build: bool, meta_ok: bool = False):
    if kwargs and any(v is not None for v in kwargs.values()):
        return None, "per-call arguments (peft's adapter_names: mixed-adapter batches)"
    if getattr(m, "disable_adapters", False):
        return None, "adapters disabled"
    if getattr(m, "merged", False):
        return None, "adapter merged into the base weight"
    if has_hooks(m):
        return None, "hooks on the LoRA layer (accelerate offload, DeepSpeed ZeRO-3)"
    if getattr(m, "fan_in_fan_out", False):
        return None, "fan_in_fan_out (a Conv1D-style base)"
    spec, why = _plain_linear(m.base_layer, meta_ok=meta_ok)
    if spec is None:
        return None, why
    active = [a for a in m.active_adapters if a in m.lora_A]
    if len(active) != 1:
        return (spec, None) if not active else (None, "several active adapters")
    a = active[0]
    if a in getattr(m, "lora_variant", {}) or getattr(m, "use_dora", {}).get(a, False):
        return None, "DoRA or another LoRA variant"
    lA, lB = m.lora_A[a], m.lora_B[a]
    if type(lA) is not nn.Linear or type(lB) is not nn.Linear or lA.bias is not None or lB.bias is not None:
        return None, "adapter matrices are not bias-free nn.Linear"
    if has_hooks(lA) or has_hooks(lB):
        return None, "hooks on the adapter matrices (DeepSpeed ZeRO-3)"
    if not meta_ok and (unreadable(lA.weight) or unreadable(lB.weight)):
        return None, "adapter weights partitioned by DeepSpeed ZeRO-3"
    drop, why = _dropout(m, a, build)
    if why is not None:
        return None, why
    return (spec[0], spec[1], lA.weight, lB.weight, float(m.scaling[a]), drop if build else None), None


def lora_spec(m: nn.Module, kwargs: dict | None = None):
    """(W, bias, A, B, scale, dropout) when peft LoRA layer ``m`` can take the fast path, else None."""
    return _lora(m, kwargs, build=True)[0]


def lora_reason(m: nn.Module, *, meta_ok: bool = False) -> str | None:
    """Why ``m`` takes peft's forward (None: it takes the fast path)."""
    return _lora(m, None, build=False, meta_ok=meta_ok)[1]


def proj_spec(m: nn.Module):
    return lora_spec(m) if is_lora_linear(m) else _plain_linear(m)[0]


def proj_reason(m: nn.Module, *, meta_ok: bool = False) -> str | None:
    return lora_reason(m, meta_ok=meta_ok) if is_lora_linear(m) else _plain_linear(m, meta_ok=meta_ok)[1]


def is_silu(act) -> bool:
    return type(act).__name__ in ("SiLU", "SiLUActivation") or act is torch.nn.functional.silu


def is_rms_norm(m: nn.Module) -> bool:
    return (type(m).__name__.endswith("RMSNorm") and isinstance(getattr(m, "weight", None), torch.Tensor)
            and hasattr(m, "variance_epsilon") and "Gemma" not in type(m).__name__)


def is_gated_mlp(m: nn.Module) -> bool:
    return all(hasattr(m, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def is_attention(m: nn.Module) -> bool:
    return type(m).__name__.endswith("Attention")


def mlp_reason(m: nn.Module, *, meta_ok: bool = False) -> str | None:
    if not is_silu(m.act_fn):
        return f"activation {type(m.act_fn).__name__} is not SiLU"
    for name in ("gate_proj", "up_proj", "down_proj"):
        why = proj_reason(getattr(m, name), meta_ok=meta_ok)
        if why is not None:
            return f"{name} off the fast path ({why}); the MLP runs its projections' own forwards around our SwiGLU"
    return None


def rope_reason(m: nn.Module) -> str | None:
    mod = sys.modules.get(type(m).__module__)
    fn = getattr(mod, "apply_rotary_pos_emb", None)
    if fn is None:
        return "the attention's modeling module has no apply_rotary_pos_emb"
    if not hasattr(fn, "_kernels_original"):
        return "apply_rotary_pos_emb not patched"
    head_dim = getattr(m, "head_dim", None)
    if head_dim is not None and head_dim % 2:
        return f"odd head dimension {head_dim}"
    return None


# ---------------------------------------------------------------------------------------------------
# the dropout keys


def _advance_key(stack: nn.Module, args, kwargs):
    if stack.training:
        holder = stack.__dict__.get(STACK_KEY)
        if holder is not None:
            weight = stack.embed_tokens.weight if hasattr(stack, "embed_tokens") else next(stack.parameters())
            holder.advance(weight.device)
    return None


def install_dropout_keys(stacks: list[nn.Module]) -> int:
    """Gives every decoder stack a DropoutKey redrawn at each of its training forwards, and every LoRA
    layer inside it its (key, salt): the layers' numbers in module order, so a seeded run draws the same
    masks. Returns how many LoRA layers got one."""
    n = 0
    for stack in stacks:
        if STACK_KEY not in stack.__dict__:
            stack.__dict__[STACK_KEY] = DropoutKey()
            stack.register_forward_pre_hook(_advance_key, with_kwargs=True)
        holder = stack.__dict__[STACK_KEY]
        for salt, m in enumerate((m for m in stack.modules() if is_lora_linear(m)), start=1):
            m.__dict__[DROPOUT] = (holder, salt)
            n += 1
    return n


def remove_dropout_keys(model: nn.Module) -> None:
    for m in model.modules():
        m.__dict__.pop(DROPOUT, None)
        if m.__dict__.pop(STACK_KEY, None) is not None:
            for k in [k for k, h in m._forward_pre_hooks.items() if h is _advance_key]:
                del m._forward_pre_hooks[k]
                m._forward_pre_hooks_with_kwargs.pop(k, None)


# ---------------------------------------------------------------------------------------------------
# the report

KINDS = {"lora": "LoRA projections", "mlp": "MLPs", "rms_norm": "RMSNorms", "rope": "RoPE (attention layers)",
         "loss": "fused linear cross-entropy"}


def fast_path_report(model: nn.Module, *, meta_ok: bool = False) -> dict:
    """{kind: {"fast": n, "total": n, "off": {reason: count}}} for a patched model (or, with ``meta_ok``, a
    skeleton on the meta device planned as ``patch`` would patch it)."""
    tally: dict[str, tuple[list, Counter]] = {k: ([0, 0], Counter()) for k in KINDS}

    def count(kind, why):
        n, off = tally[kind]
        n[1] += 1
        if why is None:
            n[0] += 1
        else:
            off[why] += 1

    from contract_review.kernels.patching.binding import is_bound

    for m in model.modules():
        if is_lora_linear(m):
            count("lora", lora_reason(m, meta_ok=meta_ok) if (meta_ok or is_bound(m)) else "not patched")
        elif is_gated_mlp(m):
            count("mlp", mlp_reason(m, meta_ok=meta_ok) if (meta_ok or is_bound(m)) else "not patched")
        elif type(m).__name__.endswith("RMSNorm"):
            why = None if is_rms_norm(m) else f"{type(m).__name__} is not Llama's RMSNorm form"
            count("rms_norm", why if why or meta_ok or is_bound(m) else "not patched")
        if is_attention(m):
            count("rope", None if meta_ok else rope_reason(m))
        if type(m).__name__.endswith("ForCausalLM") and "lm_head" in m._modules and "model" in m._modules:
            lin = m.lm_head
            why = None if type(lin) is nn.Linear else f"lm_head is a {type(lin).__name__}"
            count("loss", why if why or meta_ok or is_bound(m) else "not patched")
    return {k: {"fast": n[0], "total": n[1], "off": dict(off)} for k, (n, off) in tally.items() if n[1]}


def off_majority(report: dict) -> list[str]:
    """The kinds whose fast path is off for most of their modules."""
    return [k for k, r in report.items() if r["total"] and 2 * r["fast"] < r["total"]]


def report_lines(report: dict) -> list[str]:
    """One summary line, one line per reason a module is off the fast path, and a warning line for each
    kind whose fast path is off for the majority."""
    if not report:
        return ["kernels fast path: nothing the kernels cover was found in this model"]
    lines = ["kernels fast path: " + ", ".join(f"{r['fast']}/{r['total']} {KINDS[k]}" for k, r in report.items())]
    for k, r in report.items():
        for why, n in sorted(r["off"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n} {KINDS[k]} off the fast path: {why}")
    for k in off_majority(report):
        r = report[k]
        lines.append(f"WARNING: the kernels' fast path is off for {r['total'] - r['fast']} of {r['total']} "
                     f"{KINDS[k]} (reasons above): this run is mostly on the slower fallback for them")
    return lines
