"""`backend: native`: the hf backend with our Triton kernels patched in (`kernels.patching.monkey_patch.patch`,
its options in the config's `kernels:` section).

A run that asked for the kernels gets them or stops: no CUDA device (and no Triton interpreter), a
missing Triton, a patch that fails or finds nothing to patch each end the run with a `TrainingError`
naming the cause and the fix. Which modules took the kernels is in the run's start event
(`kernels_patched`); where a module cannot take the fast path (DoRA, dropout > 0, a 4-bit base, a
ZeRO-3 partitioned weight) the kernels call its own forward, module by module.
"""

from __future__ import annotations

import os

from ..config import Config
from ..errors import TrainingError
from .base import BuildSpec
from .hf import HFBackend

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

    def adapt(self, lm, cfg: Config, spec: BuildSpec) -> dict:
        try:
            # Triton is an optional extra (contract-review[kernels]): the other backends run without it
            from contract_review.kernels.patching.monkey_patch import patch
        except ImportError as exc:
            raise TrainingError(f"backend native: the kernels cannot be imported ({type(exc).__name__}: {exc}). "
                                "Install them with pip install 'contract-review[kernels]', or set backend: hf") from exc
        k = cfg.kernels
        try:
            patch(lm, offload_activations=k.offload_activations, offload_mlp=k.offload_mlp,
                  trim_recompute=k.trim_recompute, fuse_qkv=k.fuse_qkv)
        except Exception as exc:
            raise TrainingError(f"backend native: kernels.patch failed ({type(exc).__name__}: {exc}). Set "
                                "backend: hf to train without our kernels") from exc
        counts = getattr(lm, "_kernels_patch_counts", None)
        if not counts or not any(counts.get(kind) for kind in PATCHED_KINDS):
            raise TrainingError(f"backend native: kernels.patch found nothing to patch in this "
                                f"{lm.config.model_type} model (counts {counts}); the kernels cover Llama-family "
                                "decoders (RMSNorm, gated MLP, peft LoRA). Set backend: hf")
        return {"kernels_patched": counts}
