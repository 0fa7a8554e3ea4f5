"""Triton kernels for LoRA fine-tuning of Llama/Mistral-family models.

    from kernels import patch
    model = get_peft_model(model, lora_config)
    patch(model)                      # RMSNorm, RoPE, SwiGLU/LoRA MLP, LoRA projections, fused loss
    patch(model, offload_activations=True)  # also: checkpointed layer inputs in pinned host memory
    patch(model, offload_mlp=0.5)     # also: every other layer's MLP gate/up outputs there, not recomputed
    step = GraphedBackward(loss_fn, params)  # forward + backward replayed as a CUDA graph (cuda_graph.py)

One file per op (``rms_norm``, ``rope``, ``swiglu``, ``fused_linear_cross_entropy``, ``lora``), each with
its Triton kernels, launchers and one autograd Function; ``patch`` swaps them into a model.

Name clash: Hugging Face publishes a library also imported as ``kernels`` (hub kernels), which
transformers probes for with ``importlib.util.find_spec("kernels")`` and then a version read from the
distribution metadata (the ``kernels`` distribution, else whichever distribution ships the top-level
``kernels``, i.e. ours, ``contract-review``; only with no metadata at all does it import us and read
``__version__``). It uses the hub library only for versions in [0.18.2, 0.19). So: this package defines
no ``__version__`` and the project's version must stay outside that window; ``from kernels import
get_kernel`` (or any hub name) raises ImportError, so a probe that goes further fails cleanly. This
module imports nothing heavy: a probe costs no Triton import. tests/kernels/test_hub_name_guard.py
checks all of this against the installed transformers.
"""

from __future__ import annotations

# marks this package as ours (not Hugging Face's hub-kernels library) for anyone who needs to tell apart
IS_CONTRACT_REVIEW_KERNELS = True

_LAZY = {
    "patch": ("kernels.monkey_patch", "patch"),
    "unpatch": ("kernels.monkey_patch", "unpatch"),
    "rms_norm": ("kernels.rms_norm", "rms_norm"),
    "rope": ("kernels.rope", "rope"),
    "swiglu": ("kernels.swiglu", "swiglu"),
    "fused_linear_cross_entropy": ("kernels.fused_linear_cross_entropy", "fused_linear_cross_entropy"),
    "lora_linear": ("kernels.lora", "lora_linear"),
    "lora_mlp": ("kernels.lora", "lora_mlp"),
    "OffloadWarning": ("kernels.offload", "OffloadWarning"),
    "GraphedBackward": ("kernels.cuda_graph", "GraphedBackward"),
    "GraphCaptureError": ("kernels.cuda_graph", "GraphCaptureError"),
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    if name == "__version__":
        # no version: see the module docstring (transformers would compare it with the hub library's)
        raise AttributeError(name)
    # `from kernels import get_kernel` etc. (the hub library's API) must fail as an ImportError would
    raise AttributeError(
        f"module 'kernels' (contract-review's Triton kernels) has no attribute {name!r}; "
        "it is not Hugging Face's hub 'kernels' library"
    )
