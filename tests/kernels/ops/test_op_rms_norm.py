"""RMSNorm kernel against a float64 Llama RMSNorm: output, dx and dw."""

import pytest
import torch
from kernel_testing import DEVICE, DTYPES, check, shapes

from contract_review.kernels.ops.rms_norm import rms_norm

SHAPES = shapes(
    small=[(1, 1, 8), (2, 7, 64), (3, 5, 123), (5, 123, 123)],
    full=[(4, 2048, 4096), (2, 2048, 5120), (5, 123, 123), (3, 1, 4097)],
)


def reference(x, w, eps):
    x, w = x.double(), w.double()
    return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weight_grad", [True, False], ids=["dw", "frozen_w"])
def test_rms_norm_matches_float64_reference(shape, dtype, weight_grad):
    x = torch.randn(shape, device=DEVICE, dtype=dtype, requires_grad=True)
    w = (1 + 0.1 * torch.randn(shape[-1], device=DEVICE, dtype=dtype)).requires_grad_(weight_grad)
    y = rms_norm(x, w, 1e-6)
    dy = torch.randn_like(y)
    y.backward(dy)

    xr = x.detach().double().requires_grad_()
    wr = w.detach().double().requires_grad_()
    yr = reference(xr, wr, 1e-6)
    yr.backward(dy.double())

    assert y.dtype == dtype
    check("y", y, yr, dtype)
    check("dx", x.grad, xr.grad, dtype)
    if weight_grad:
        check("dw", w.grad, wr.grad, dtype)
    else:
        assert w.grad is None


def test_rms_norm_accepts_non_contiguous_input():
    x = torch.randn(6, 4, 32, device=DEVICE).transpose(0, 1)  # rows not contiguous in memory
    w = torch.randn(32, device=DEVICE)
    check("y", rms_norm(x, w, 1e-5), reference(x, w, 1e-5), torch.float32)
