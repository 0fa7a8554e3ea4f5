"""SwiGLU kernel (h = silu(e) * g) against float64 PyTorch: output, de and dg."""

import pytest
import torch
from kernel_testing import DEVICE, DTYPES, check, shapes

from contract_review.kernels.ops.swiglu import swiglu, swiglu_backward

SHAPES = shapes(
    small=[(1, 1, 1), (2, 7, 64), (5, 123, 123), (3, 1, 1031)],
    full=[(4, 2048, 11008), (2, 2048, 13824), (5, 123, 123)],
)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_swiglu_matches_float64_reference(shape, dtype):
    e = (3 * torch.randn(shape, device=DEVICE, dtype=dtype)).requires_grad_()
    g = torch.randn(shape, device=DEVICE, dtype=dtype, requires_grad=True)
    h = swiglu(e, g)
    dh = torch.randn_like(h)
    h.backward(dh)

    er, gr = e.detach().double().requires_grad_(), g.detach().double().requires_grad_()
    hr = torch.nn.functional.silu(er) * gr
    hr.backward(dh.double())
    check("h", h, hr, dtype)
    check("de", e.grad, er.grad, dtype)
    check("dg", g.grad, gr.grad, dtype)


def test_swiglu_backward_in_place_recomputes_h():
    # the LoRA MLP's backward path: de, dg written over e, g and h over dh, in one pass
    e, g, dh = (torch.randn(3, 77, device=DEVICE) for _ in range(3))
    er, gr, dhr = e.double(), g.double(), dh.double()
    de, dg, h = swiglu_backward(dh, e, g, in_place=True, store_h=True)
    assert de.data_ptr() == e.data_ptr() and dg.data_ptr() == g.data_ptr() and h.data_ptr() == dh.data_ptr()
    sig = torch.sigmoid(er)
    check("h", h, er * sig * gr, torch.float32)
    check("de", de, dhr * gr * sig * (1 + er * (1 - sig)), torch.float32)
    check("dg", dg, dhr * er * sig, torch.float32)
