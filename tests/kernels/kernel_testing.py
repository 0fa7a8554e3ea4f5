"""Shared settings of the kernels tests: CPU under Triton's interpreter with small shapes, or a CUDA GPU at full 7B shapes.

The same test files run in both places:
- no CUDA device (CI, laptops): TRITON_INTERPRET=1 is set here, before anything imports triton (Triton
  picks interpreted or compiled kernels when a @triton.jit function is defined), and the small shapes run.
- a CUDA device: compiled kernels, full Llama-7B shapes (4 x 2048 tokens, hidden 4096, MLP 11008,
  vocabulary 32000). ``KERNELS_TEST_DEVICE=cpu`` forces the interpreter even there;
  ``KERNELS_TEST_SHAPES=small`` keeps small shapes on the GPU.

Each op is compared with a float64 PyTorch reference by the relative error ||out - ref|| / ||ref||,
forward and gradients, against the per-dtype tolerances in TOL.
"""

from __future__ import annotations

import os

import torch

_FORCE = os.environ.get("KERNELS_TEST_DEVICE", "")
ON_GPU = torch.cuda.is_available() and _FORCE != "cpu"
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

DEVICE = torch.device("cuda" if ON_GPU else "cpu")
FULL = ON_GPU and os.environ.get("KERNELS_TEST_SHAPES", "full") != "small"

# relative-norm tolerances against float64. fp32: rounding of ~1e-7 per op, reductions of up to 32000
# terms; bf16 (8-bit mantissa, ~4e-3 a rounding) and fp16 (11-bit, ~5e-4): the output's own rounding
# plus the inputs of a chain (the MLP chains three matmuls and the activation).
TOL = {
    torch.float32: 1e-5,
    torch.bfloat16: 2e-2,
    torch.float16: 3e-3,
}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double(), ref.detach().double()
    assert torch.isfinite(out).all(), "non-finite values in the kernel's output"
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def check(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, factor: float = 1.0):
    assert out.shape == ref.shape, f"{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    err = rel_err(out, ref)
    tol = TOL[dtype] * factor
    assert err < tol, f"{name}: relative error {err:.3e} over the {dtype} tolerance {tol:.1e}"


def shapes(small: list, full: list) -> list:
    return full if FULL else small
