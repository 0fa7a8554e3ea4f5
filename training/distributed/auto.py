"""`distributed.strategy: auto`: a replicated base (DDP) when it fits each device, ZeRO-3 when it does not.

For LoRA the trainable state is a few tens of millions of parameters; the frozen base is the bulk. When the
base, the adapters' training state and the micro-batch's activations fit one device, DDP replicates the base
and reduces only the adapters' gradients: no weight is ever gathered. Otherwise ZeRO-3 partitions the base
across the processes (gathering each decoder layer whole, `layer_gather.py`), and when even one process's
shard does not fit, it offloads the parameters to the host as well.

The estimate, per device (bytes):
- base: the architecture's parameter count (read from its config, nothing built) x the dtype's bytes;
- trainable: LoRA's r x (in + out) per adapted linear x 16 (weight, gradient, two AdamW moments and DDP's
  bucket, fp32);
- activations of one micro-batch (batch_size x data.max_length tokens): with gradient checkpointing each
  layer keeps its input (hidden x dtype) and one layer is recomputed at a time; without, every layer keeps
  ~(10 x hidden + 4 x intermediate) values per token; the logits (4 x vocab per token, twice) unless the
  fused loss (backend native) chunks them;
- overhead: 1.5 GiB (CUDA context, allocator slack), and only 90% of the device is planned with.
It is an estimate to choose by, logged with its parts so a wrong choice can be seen and forced.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

from ..config import Config
from ..errors import TrainingError
from ..models import ModelError, architecture_config, resolve_model

GIB = 2**30
OVERHEAD = 1.5 * GIB
USABLE = 0.9
LABELS = {"none": "one process, the whole base", "ddp": "DDP", "deepspeed": "ZeRO-3"}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Choice:
    strategy: str  # "ddp" ("none" for one process) or "deepspeed" (ZeRO-3)
    offload_params: bool
    reason: str
    device_gib: float
    base_gib: float
    trainable_gib: float
    activations_gib: float
    ddp_need_gib: float
    zero3_need_gib: float

    def as_dict(self) -> dict:
        return asdict(self)


def _model_config(cfg: Config):
    source = cfg.model.config if cfg.model.random_init else str(resolve_model(cfg.model.name))
    try:
        return architecture_config(source, overrides=cfg.model.overrides if cfg.model.random_init else None)
    except (ModelError, OSError, ValueError) as exc:
        raise TrainingError(f"distributed.strategy auto sizes the model from its config and could not read it "
                            f"({exc}); set distributed.strategy to ddp or deepspeed") from None


def _shapes(mc) -> dict[str, tuple[int, int]]:
    h, i = mc.hidden_size, mc.intermediate_size
    kv = getattr(mc, "num_key_value_heads", None) or mc.num_attention_heads
    hd = getattr(mc, "head_dim", None) or h // mc.num_attention_heads
    return {"q_proj": (h, mc.num_attention_heads * hd), "k_proj": (h, kv * hd), "v_proj": (h, kv * hd),
            "o_proj": (mc.num_attention_heads * hd, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def base_params(mc) -> int:
    layer = sum(a * b for a, b in _shapes(mc).values()) + 2 * mc.hidden_size
    embed = mc.vocab_size * mc.hidden_size
    head = 0 if getattr(mc, "tie_word_embeddings", False) else embed
    return mc.num_hidden_layers * layer + embed + head + mc.hidden_size


def lora_params(cfg: Config, mc) -> int:
    shapes = _shapes(mc)
    targets = shapes if cfg.lora.target_modules == "all-linear" else {k: v for k, v in shapes.items()
                                                                      if k in cfg.lora.target_modules}
    layers = len(cfg.lora.layers) if cfg.lora.layers else mc.num_hidden_layers
    return layers * sum(cfg.lora.r * (a + b) for a, b in targets.values())


def activation_bytes(cfg: Config, mc) -> int:
    tokens = cfg.optim.batch_size * cfg.data.max_length
    act = 2 if cfg.model.dtype != "float32" else 4
    h, i = mc.hidden_size, mc.intermediate_size
    per_layer = act * (10 * h + 4 * i)
    if cfg.model.gradient_checkpointing:
        total = tokens * (mc.num_hidden_layers * act * h + per_layer)
    else:
        total = tokens * mc.num_hidden_layers * per_layer
    if cfg.backend != "native":
        total += tokens * mc.vocab_size * 4 * 2  # fp32 logits and their gradient
    return total


def device_memory(cfg: Config, device: torch.device, local_world: int) -> float:
    """Bytes one process may plan with: distributed.memory_gib, else the GPU's, else the host's share."""
    if cfg.distributed.memory_gib:
        return cfg.distributed.memory_gib * GIB
    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / max(1, local_world)


def choose(cfg: Config, memory: float, world: int) -> Choice:
    mc = _model_config(cfg)
    dtype = DTYPE_BYTES[cfg.model.dtype]
    base = base_params(mc) * dtype
    trainable = lora_params(cfg, mc) * 16
    acts = activation_bytes(cfg, mc)
    # ZeRO-3: a shard of the base, two decoder layers whole (the one running and the one prefetched)
    layer = sum(a * b for a, b in _shapes(mc).values()) * dtype
    ddp_need = base + trainable + acts + OVERHEAD
    zero3_need = base / world + 2 * layer + trainable + acts + OVERHEAD
    budget = memory * USABLE
    parts = (f"base {base / GIB:.1f} GiB + adapters' training state {trainable / GIB:.2f} GiB + activations "
             f"{acts / GIB:.1f} GiB + {OVERHEAD / GIB:.1f} GiB overhead = {ddp_need / GIB:.1f} GiB")
    if ddp_need <= budget:
        # one process holding the whole base is the single-device run (DDP would need a launcher's rendezvous)
        strategy, offload = ("ddp" if world > 1 else "none"), False
        reason = (f"the base fits each device ({parts} <= {USABLE:.0%} of {memory / GIB:.1f} GiB): replicated, "
                  + ("only the adapters' gradients are reduced" if world > 1 else "one process"))
    elif zero3_need <= budget:
        strategy, offload = "deepspeed", False
        reason = (f"the base does not fit one device ({parts} > {USABLE:.0%} of {memory / GIB:.1f} GiB); ZeRO-3 "
                  f"partitions it over {world} process(es): {zero3_need / GIB:.1f} GiB each")
    else:
        strategy, offload = "deepspeed", True
        reason = (f"neither the base ({parts}) nor its ZeRO-3 shard over {world} process(es) "
                  f"({zero3_need / GIB:.1f} GiB) fits {USABLE:.0%} of {memory / GIB:.1f} GiB: ZeRO-3 with the "
                  "parameters offloaded to the host")
    return Choice(strategy, offload, reason, round(memory / GIB, 2), round(base / GIB, 3), round(trainable / GIB, 3),
                  round(acts / GIB, 3), round(ddp_need / GIB, 3), round(zero3_need / GIB, 3))


def resolved(cfg: Config, choice: Choice) -> Config:
    """``cfg`` with strategy auto replaced by the choice (ZeRO-3 at stage 3, offload when chosen)."""
    out = cfg.model_copy(deep=True)
    d = out.distributed.model_dump(exclude={"strategy", "memory_gib"})
    if choice.strategy == "deepspeed":
        d.update(zero_stage=3, offload_params=choice.offload_params or d["offload_params"])
        refusals = type(out.distributed)(strategy="deepspeed", **d).zero3_refusals(out.kernels)
        if refusals:
            raise TrainingError(f"distributed.strategy auto chose ZeRO-3 ({choice.reason}), which cannot honour "
                                + "; ".join(refusals))
    else:
        d = {k: v for k, v in d.items() if k not in ("gather", "offload_params")}
        d["offload_params"] = False
    try:
        out.distributed = type(out.distributed)(strategy=choice.strategy, **d)
    except ValueError as exc:  # a combination the config refuses under the chosen strategy (QLoRA, Unsloth)
        raise TrainingError(f"distributed.strategy auto chose {choice.strategy} ({choice.reason}), which this "
                            f"config cannot run: {exc}. Force distributed.strategy or change the config") from None
    return out
