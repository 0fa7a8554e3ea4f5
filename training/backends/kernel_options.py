"""What the `kernels:` options mean for one run of backend native: `auto` decided, impossible values refused.

    plan = KernelPlan.before_build(cfg, spec)      the offloads and the graph's run-level conditions
    plan.after_patch(lm, cfg)                      the graph's model-level condition (no torch-RNG dropout)
    plan.lines()                                   what the run prints at start; plan.as_dict() its start event

`auto`, per option (best evidence so far: the kernel bench; in `train`, bench/lists/speed.sh's legal7 row
against legal7_eager measures the three together):
- cuda_graph: on wherever it can run: one CUDA device, one process, no DeepSpeed, bf16 or fp32, an objective
  without host-read per-head losses (not classify), and no dropout drawn from torch's generator (a LoRA
  layer off the fast path with dropout > 0, an nn.Dropout elsewhere, attention dropout): under the graph the
  checkpoint's recompute cannot replay torch's RNG state (``preserve_rng_state=False``), while the kernels'
  own dropout is drawn from their own key and needs none. Measured in the kernel bench (7B, r16 all seven,
  mb4, seq 2048): +1-5% at 7B, +5-28% at 13B mb1 (host-bound eager); in `train`: pending (speed.sh).
- offload_activations: on with the graph and gradient checkpointing. Measured: 7B mb4 -1.67 GiB at +0.6%
  time (inside the noise); 13B mb1 eager -20% (host-bound), hence not without the graph.
- offload_mlp: 0.5 where offload_activations is on, else 0. Measured with the graph: +5% at 7B mb4, +6-7% at
  13B mb1, +0.35 GiB at 7B; 0.67 was no faster than 0 (PCIe-bound).
A value set explicitly that the run cannot honour stops it here with the reason (the config's own check,
training/config.py `KernelsConfig.check`, refuses what no machine could run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..config import Config
from ..errors import TrainingError
from .base import BuildSpec

# the offloaded fraction of MLP layers `auto` picks (kernels/schedule/mlp_stash.py: 0.5 is what PCIe hides)
AUTO_OFFLOAD_MLP = 0.5


@dataclass
class KernelPlan:
    cuda_graph: bool
    offload_activations: bool
    offload_mlp: float
    why: dict[str, str] = field(default_factory=dict)  # option -> why it is what it is

    @classmethod
    def before_build(cls, cfg: Config, spec: BuildSpec) -> "KernelPlan":
        k = cfg.kernels
        blockers = graph_blockers(cfg, spec)
        if k.cuda_graph is True and blockers:
            raise TrainingError("kernels.cuda_graph: true cannot run here: " + "; ".join(blockers)
                                + ". Set kernels.cuda_graph: false (or auto)")
        # what auto leaves off though it could run: a quantized base (bitsandbytes' kernels are not measured
        # inside a capture) and DoRA (peft's own forward for every projection: the graph saves little there)
        unmeasured = [why for cond, why in (
            (cfg.lora.quantize, f"lora.quantize {cfg.lora.quantize}: bitsandbytes' kernels are not measured inside "
                                "a CUDA graph; set true to try"),
            (cfg.lora.dora, "lora.dora: every projection runs peft's forward; set true to try")) if cond]
        graph = k.cuda_graph is True or (k.cuda_graph == "auto" and not blockers and not unmeasured)
        why = {"cuda_graph": "set in the config" if k.cuda_graph != "auto" else
               "auto: " + ("on (one CUDA GPU, one process)" if graph else
                           "off (" + "; ".join(blockers + unmeasured) + ")")}
        gc = cfg.model.gradient_checkpointing
        on_gpu = spec.device.type == "cuda" and not spec.partitioned
        if k.offload_activations == "auto":
            offload = bool(graph and gc and on_gpu)
            why["offload_activations"] = "auto: " + (
                "on (with the CUDA graph and gradient checkpointing)" if offload else
                "off (" + ("no gradient checkpointing" if not gc else "no CUDA device" if not on_gpu
                           else "without the CUDA graph it costs a host-bound step up to 20%") + ")")
        else:
            offload = bool(k.offload_activations)
            if offload and spec.device.type != "cuda":
                raise TrainingError("kernels.offload_activations: true needs a CUDA device (pinned host memory and "
                                    "a copy stream); this run is on the CPU. Set it to false (or auto)")
            why["offload_activations"] = "set in the config"
        if k.offload_mlp == "auto":
            # the stash acts on the fused MLP node only, which a quantized or DoRA projection keeps out
            off_path = cfg.lora.quantize or cfg.lora.dora
            mlp = AUTO_OFFLOAD_MLP if offload and not off_path else 0.0
            why["offload_mlp"] = "auto: " + (f"{mlp} (with offload_activations)" if mlp else
                                             "0 (the MLPs are off the fast path)" if off_path else
                                             "0 (offload_activations is off)")
        else:
            mlp = float(k.offload_mlp)
            if mlp and spec.device.type != "cuda":
                raise TrainingError(f"kernels.offload_mlp: {mlp} needs a CUDA device (pinned host memory and a copy "
                                    "stream); this run is on the CPU. Set it to 0 (or auto)")
            why["offload_mlp"] = "set in the config"
        return cls(graph, offload, mlp, why)

    def after_patch(self, lm: nn.Module, cfg: Config) -> None:
        """The graph's model-level condition; an `auto` graph turns off (and says why), an explicit one stops."""
        if not self.cuda_graph:
            return
        users = torch_rng_dropout(lm)
        if not users:
            return
        what = f"dropout drawn from torch's generator ({', '.join(users[:3])}{', ...' if len(users) > 3 else ''})"
        if cfg.kernels.cuda_graph is True:
            raise TrainingError(f"kernels.cuda_graph: true cannot run this model: {what}, which a graph's checkpoint "
                                "recompute cannot replay. Set kernels.cuda_graph: false (or auto), or lora.dropout: 0")
        self.cuda_graph = False
        self.why["cuda_graph"] = f"auto: off ({what})"

    def lines(self) -> list[str]:
        return [f"kernels: cuda_graph {'on' if self.cuda_graph else 'off'} ({self.why['cuda_graph']}); "
                f"offload_activations {'on' if self.offload_activations else 'off'} "
                f"({self.why['offload_activations']}); offload_mlp {self.offload_mlp:g} ({self.why['offload_mlp']})"]

    def as_dict(self) -> dict:
        return {"cuda_graph": self.cuda_graph, "offload_activations": self.offload_activations,
                "offload_mlp": self.offload_mlp, "why": dict(self.why)}


def graph_blockers(cfg: Config, spec: BuildSpec) -> list[str]:
    """Why this run cannot replay its step as a CUDA graph (what is known before the model is built)."""
    out = []
    if spec.device.type != "cuda":
        out.append(f"no CUDA device (this run is on {spec.device.type}; TRITON_INTERPRET runs the kernels on the "
                   "CPU, not CUDA graphs)")
    if cfg.distributed.strategy != "none" or spec.partitioned:
        out.append(f"distributed.strategy {cfg.distributed.strategy}: one process only")
    if cfg.train.precision == "fp16":
        out.append("train.precision fp16 (the grad scaler reads the gradients on the host)")
    if cfg.objective == "classify":
        out.append("objective classify (its per-head losses are read on the host every step)")
    return out


def torch_rng_dropout(lm: nn.Module) -> list[str]:
    """Modules whose training forward draws from torch's generator: nn.Dropout with p > 0 other than the
    lora dropout of a layer on the kernels' fast path (the kernels draw that one themselves), and attention
    dropout in the model config."""
    from contract_review.kernels.patching.eligibility import is_lora_linear, lora_reason  # Triton: native only

    ours = set()
    for m in lm.modules():
        if is_lora_linear(m) and lora_reason(m) is None:
            ours.update(id(d) for d in m.lora_dropout.values())
    out = [name for name, m in lm.named_modules()
           if isinstance(m, nn.Dropout) and m.p > 0 and id(m) not in ours]
    config = getattr(lm, "config", None)
    if float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0:
        out.append(f"attention_dropout {config.attention_dropout}")
    return out
