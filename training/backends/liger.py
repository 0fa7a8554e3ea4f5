"""`backend: liger`: the hf backend with Liger Kernel's Triton ops (RoPE, RMSNorm, SwiGLU, fused linear +
cross-entropy) put into transformers' Llama/Mistral classes before the model is built. A comparison
backend (pip install 'contract-review[liger]'); GPU only, not under ZeRO-3 (the config refuses it)."""

from __future__ import annotations

from ..config import Config
from ..errors import TrainingError
from ..models import architecture_config, resolve_model
from .base import BuildSpec
from .hf import HFBackend


class LigerBackend(HFBackend):
    name = "liger"

    def check(self, cfg: Config, spec: BuildSpec) -> None:
        if spec.device.type != "cuda":
            raise TrainingError("backend liger: Liger Kernel's Triton ops need a CUDA device; set backend: hf here")
        super().check(cfg, spec)

    def before_load(self, cfg: Config, spec: BuildSpec) -> None:
        try:
            # an optional comparison backend: imported only when it is chosen
            from liger_kernel.transformers import apply_liger_kernel_to_llama, apply_liger_kernel_to_mistral
        except ImportError as exc:
            raise TrainingError(f"backend liger: liger-kernel is not importable ({exc}); pip install "
                                "'contract-review[liger]' or set backend: hf / native") from exc
        m = cfg.model
        kind = architecture_config(m.config if m.random_init else str(resolve_model(m.name))).model_type
        apply = {"llama": apply_liger_kernel_to_llama, "mistral": apply_liger_kernel_to_mistral}[kind]
        apply(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=True)
        self.applied = f"liger_kernel {kind}: rope, rms_norm, swiglu, fused_linear_cross_entropy"

    def adapt(self, lm, cfg: Config, spec: BuildSpec) -> dict:
        return {"liger": self.applied}
