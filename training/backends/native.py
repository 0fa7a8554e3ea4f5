"""`backend: native`: the hf backend with our Triton kernels patched in (`kernels.patching.monkey_patch.patch`,
its options in the config's `kernels:` section, `auto` decided by kernel_options.py).

A run that asked for the kernels gets them or stops: no CUDA device (and no Triton interpreter), a
missing Triton, a patch that fails or finds nothing to patch, an option the run cannot honour (the CUDA
graph on a CPU, say) each end the run with a `TrainingError` naming the cause and the fix. At start the run
prints, and its start event records, what the kernels' options came to (`kernels_plan`) and how many LoRA
projections, MLPs, norms and RoPE calls took the fast path and why the others did not, one line per reason,
with a warning when most of a kind did not (`fast_path`; kernels/patching/eligibility.py). Such a module
calls its own forward, module by module: the run is correct, only slower there.
"""

from __future__ import annotations

import os
import sys

from ..config import Config
from ..errors import TrainingError
from .base import BuildSpec
from .hf import HFBackend
from .kernel_options import KernelPlan

# the modules patch() swaps; a patch that swapped none of them would leave a plain hf run under our name
PATCHED_KINDS = ("rms_norm", "mlp", "lora", "causal_lm")


class NativeBackend(HFBackend):
    name = "native"

    def check(self, cfg: Config, spec: BuildSpec) -> None:
        if spec.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise TrainingError("backend native: our Triton kernels need a CUDA device and this machine has none "
                                "(TRITON_INTERPRET=1 runs them in Triton's CPU interpreter, for tests only). "
                                "Set backend: hf to train with transformers + peft here")
        super().check(cfg, spec)
        self.plan = KernelPlan.before_build(cfg, spec)

    def checkpointing_kwargs(self, cfg: Config, spec: BuildSpec) -> dict:
        # a CUDA graph capture cannot stash torch's RNG state; the kernels' own dropout needs none (their key
        # is drawn outside the checkpoint), and KernelPlan.after_patch turns the graph off for any other dropout
        return {"use_reentrant": False, "preserve_rng_state": not self.plan.cuda_graph}

    def adapt(self, lm, cfg: Config, spec: BuildSpec) -> dict:
        try:
            # Triton is an optional extra (contract-review[kernels]): the other backends run without it
            from contract_review.kernels.patching.eligibility import off_majority, report_lines
            from contract_review.kernels.patching.monkey_patch import patch
        except ImportError as exc:
            raise TrainingError(f"backend native: the kernels cannot be imported ({type(exc).__name__}: {exc}). "
                                "Install them with pip install 'contract-review[kernels]', or set backend: hf") from exc
        k, plan = cfg.kernels, self.plan
        try:
            patch(lm, offload_activations=plan.offload_activations, offload_mlp=plan.offload_mlp,
                  trim_recompute=k.trim_recompute, fuse_qkv=k.fuse_qkv)
        except Exception as exc:
            raise TrainingError(f"backend native: kernels.patch failed ({type(exc).__name__}: {exc}). Set "
                                "backend: hf to train without our kernels") from exc
        counts = getattr(lm, "_kernels_patch_counts", None)
        if not counts or not any(counts.get(kind) for kind in PATCHED_KINDS):
            raise TrainingError(f"backend native: kernels.patch found nothing to patch in this "
                                f"{lm.config.model_type} model (counts {counts}); the kernels cover Llama-family "
                                "decoders (RMSNorm, gated MLP, peft LoRA). Set backend: hf")
        was_graph = plan.cuda_graph
        plan.after_patch(lm, cfg)
        if was_graph and not plan.cuda_graph and cfg.model.gradient_checkpointing:
            # torch's dropout is in the model after all: its recompute must replay the RNG state again
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        report = getattr(lm, "_kernels_fast_path", {})
        if spec.main:
            for line in plan.lines() + report_lines(report):
                print(line, file=sys.stderr)
        return {"kernels_patched": counts, "fast_path": report, "fast_path_off_majority": off_majority(report),
                "kernels_plan": plan.as_dict(), "cuda_graph": plan.cuda_graph}


def fast_path_preview(cfg: Config) -> list[str]:
    """What backend native would take the fast path for with this config, on one CUDA GPU, read off the model's
    skeleton on the meta device (no weights read, no GPU, seconds even for 13B): the lines the run would print
    at start (`contract-review doctor --fast-path CONFIG`). What only a call decides (extra arguments) is not
    in it; a quantized base (lora.quantize) is read from the config, not built."""
    import torch

    from contract_review.kernels.patching.eligibility import (fast_path_report, install_dropout_keys,
                                                              is_lora_linear, report_lines)
    from contract_review.kernels.patching.embedding_grad import is_stack

    from ..adapters import lora
    from ..models import architecture_config, resolve_model

    if cfg.backend != "native":
        return [f"backend {cfg.backend}: our kernels are not used (backend native uses them)"]
    m = cfg.model
    arch = architecture_config(m.config if m.random_init else str(resolve_model(m.name)), overrides=m.overrides)
    arch._attn_implementation = m.attn_implementation
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        lm = lora.wrap(AutoModelForCausalLM.from_config(arch), cfg.lora, "CAUSAL_LM")
    lm.train()
    install_dropout_keys([s for s in lm.modules() if is_stack(s)])
    report = fast_path_report(lm, meta_ok=True)
    if cfg.lora.quantize:
        n = sum(1 for x in lm.modules() if is_lora_linear(x))
        report["lora"] = {"fast": 0, "total": n, "off": {f"base layer quantized (lora.quantize {cfg.lora.quantize}: "
                                                         "bitsandbytes), not a plain nn.Linear": n}}
        mlps = report.get("mlp", {}).get("total", 0)
        if mlps:
            report["mlp"] = {"fast": 0, "total": mlps, "off": {"quantized projections; the MLP runs their own "
                                                               "forwards around our SwiGLU": mlps}}
    spec = BuildSpec(torch.device("cuda", 0), partitioned=cfg.distributed.strategy == "deepspeed"
                     and cfg.distributed.zero_stage == 3)
    try:
        plan = KernelPlan.before_build(cfg, spec).lines()
    except TrainingError as exc:
        plan = [f"kernels: {exc}"]
    return [f"{cfg.output.name or 'config'} on one CUDA GPU (backend native):"] + plan + report_lines(report)
