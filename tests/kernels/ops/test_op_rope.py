"""Rotary embedding kernel (in place on q and k) against float64 Hugging Face rotate_half RoPE."""

import pytest
import torch
from kernel_testing import DEVICE, DTYPES, check, shapes

from contract_review.kernels.ops.rope import rope

# (batch, q_heads, kv_heads, seq, head_dim): GQA (Mistral) and odd sizes included
SHAPES = shapes(
    small=[(1, 1, 1, 1, 2), (2, 4, 2, 7, 16), (3, 5, 5, 9, 24), (1, 8, 2, 33, 64)],
    full=[(4, 32, 32, 2048, 128), (2, 32, 8, 2048, 128), (5, 7, 1, 123, 64), (1, 40, 40, 4096, 128)],
)


def rope_tables(bsz, seq, dim, per_batch, device, dtype):
    inv = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim))
    pos = torch.arange(seq, device=device, dtype=torch.float64)
    pos = pos[None].expand(bsz if per_batch else 1, seq) + (torch.arange(bsz if per_batch else 1, device=device)[:, None] * 3)
    freqs = pos[..., None] * inv
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("per_batch", [False, True], ids=["shared_pos", "per_batch_pos"])
def test_rope_matches_float64_reference(shape, dtype, per_batch):
    bsz, hq, hk, seq, dim = shape
    cos, sin = rope_tables(bsz, seq, dim, per_batch, DEVICE, dtype)
    # as Hugging Face's attention makes them: transposed views of the projection outputs
    q_lin = torch.randn(bsz, seq, hq * dim, device=DEVICE, dtype=dtype, requires_grad=True)
    k_lin = torch.randn(bsz, seq, hk * dim, device=DEVICE, dtype=dtype, requires_grad=True)
    q = (q_lin * 1).view(bsz, seq, hq, dim).transpose(1, 2)
    k = (k_lin * 1).view(bsz, seq, hk, dim).transpose(1, 2)
    q_ptr = q.data_ptr()
    qo, ko = rope(q, k, cos, sin)
    assert qo.data_ptr() == q_ptr, "rope must rotate q in place"
    dq, dk = torch.randn_like(qo), torch.randn_like(ko)
    ((qo * dq).sum() + (ko * dk).sum()).backward()

    qr_lin, kr_lin = q_lin.detach().double().requires_grad_(), k_lin.detach().double().requires_grad_()
    qr = qr_lin.view(bsz, seq, hq, dim).transpose(1, 2)
    kr = kr_lin.view(bsz, seq, hk, dim).transpose(1, 2)
    c, s = cos.double()[:, None], sin.double()[:, None]
    qro, kro = qr * c + rotate_half(qr) * s, kr * c + rotate_half(kr) * s
    ((qro * dq.double()).sum() + (kro * dk.double()).sum()).backward()
    check("q", qo, qro, dtype)
    check("k", ko, kro, dtype)
    check("dq", q_lin.grad, qr_lin.grad, dtype)
    check("dk", k_lin.grad, kr_lin.grad, dtype)


def _graph_names(t):
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        todo.extend(f for f, _ in fn.next_functions)
    return {type(f).__name__ for f in seen}


@pytest.mark.parametrize("layout", ["projection", "wider_base", "plain"])
def test_rope_on_any_layout_and_no_copyslices_for_projection_outputs(layout):
    bsz, h, seq, dim = 2, 4, 9, 16
    cos, sin = rope_tables(bsz, seq, dim, False, DEVICE, torch.float32)
    lin = torch.randn(bsz, seq, (h + 1) * dim, device=DEVICE, requires_grad=True)
    if layout == "projection":  # q_proj(x).view(...).transpose(1, 2): rotated as the projection output
        q = (lin[..., : h * dim] * 1).view(bsz, seq, h, dim).transpose(1, 2)
    elif layout == "wider_base":  # a view that does not cover its base: rotated as the view
        q = (lin * 1)[..., : h * dim].view(bsz, seq, h, dim).transpose(1, 2)
    else:  # not a view at all
        q = (lin[..., : h * dim] * 1).view(bsz, seq, h, dim).transpose(1, 2).contiguous()
    k = (lin[..., h * dim:] * 1).view(bsz, seq, 1, dim).transpose(1, 2)
    want_q = q.detach().double() * cos.double()[:, None] + rotate_half(q.detach().double()) * sin.double()[:, None]
    qo, ko = rope(q, k, cos, sin)
    assert qo.shape == q.shape and qo.stride() == q.stride()
    check("q", qo, want_q, torch.float32)
    names = _graph_names(qo)
    # an in-place edit of a view makes autograd clone and copy the whole gradient back (CopySlices)
    assert ("CopySlices" in names) == (layout == "wider_base"), names
    dq = torch.randn_like(qo)
    (qo * dq).sum().backward()
    got = lin.grad[..., : h * dim].view(bsz, seq, h, dim).transpose(1, 2)
    ref_lin = lin.detach().double().requires_grad_()
    rq = ref_lin[..., : h * dim].view(bsz, seq, h, dim).transpose(1, 2)
    rqo = rq * cos.double()[:, None] + rotate_half(rq) * sin.double()[:, None]
    (rqo * dq.double()).sum().backward()
    check("dq", got, ref_lin.grad[..., : h * dim].view(bsz, seq, h, dim).transpose(1, 2), torch.float32)
