"""Fused lm_head + cross-entropy against float64 F.cross_entropy on full logits: loss, dh, dW, db."""

import pytest
import torch
from kernel_testing import DEVICE, DTYPES, check, shapes

from contract_review.kernels.ops.fused_linear_cross_entropy import fused_linear_cross_entropy, fused_linear_cross_entropy_forward

# (tokens, hidden, vocab)
SHAPES = shapes(
    small=[(1, 8, 16), (37, 24, 131), (123, 33, 1031), (64, 16, 3000)],
    full=[(8192, 4096, 32000), (2048, 5120, 32000), (615, 123, 32003), (4096, 4096, 128256)],
)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["frozen_head", "trained_head_bias", "num_items"])
def test_fused_linear_cross_entropy_matches_float64_reference(shape, dtype, mode):
    n, d, v = shape
    if mode != "frozen_head" and n * v > 10**8:
        pytest.skip("the weight-gradient variants run at the smaller full shapes only")
    h = torch.randn(n, d, device=DEVICE, dtype=dtype, requires_grad=True)
    w = (torch.randn(v, d, device=DEVICE, dtype=dtype) / d**0.5).requires_grad_(mode == "trained_head_bias")
    b = (0.1 * torch.randn(v, device=DEVICE, dtype=dtype)).requires_grad_() if mode == "trained_head_bias" else None
    labels = torch.randint(0, v, (n,), device=DEVICE)
    labels[torch.rand(n, device=DEVICE) < 0.3] = -100  # masked prompt tokens
    labels[0] = 1  # at least one counted token (all masked is its own test: the reference gives NaN)
    num_items = 1000 if mode == "num_items" else None
    loss = fused_linear_cross_entropy(h, w, labels, b, num_items_in_batch=num_items)
    (2.5 * loss).backward()  # a non-unit upstream gradient

    hr, wr = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    br = None if b is None else b.detach().double().requires_grad_()
    logits = hr @ wr.t() if br is None else hr @ wr.t() + br
    if num_items is None:
        ref = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100)
    else:
        ref = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100, reduction="sum") / num_items
    (2.5 * ref).backward()
    # the logits are rounded to the input dtype by the matmul, as in the Hugging Face model
    check("loss", loss.reshape(1), ref.reshape(1), dtype, factor=0.5)
    check("dh", h.grad, hr.grad, dtype)
    if mode == "trained_head_bias":
        check("dW", w.grad, wr.grad, dtype)
        check("db", b.grad, br.grad, dtype)
    else:
        assert w.grad is None


def test_all_tokens_masked_gives_zero_loss_and_gradient():
    h = torch.randn(9, 16, device=DEVICE, requires_grad=True)
    w = torch.randn(40, 16, device=DEVICE)
    loss = fused_linear_cross_entropy(h, w, torch.full((9,), -100, device=DEVICE))
    loss.backward()
    assert loss.item() == 0.0 and h.grad.abs().max().item() == 0.0


def test_chunks_give_the_same_result_as_one_pass():
    h = torch.randn(50, 16, device=DEVICE)
    w = torch.randn(70, 16, device=DEVICE)
    labels = torch.randint(0, 70, (50,), device=DEVICE)
    one = fused_linear_cross_entropy_forward(h, w, labels, chunk_rows=64)
    many = fused_linear_cross_entropy_forward(h, w, labels, chunk_rows=7)
    check("loss", many[0].reshape(1), one[0].reshape(1), torch.float32)
    check("dh", many[1] * many[4], one[1] * one[4], torch.float32)
