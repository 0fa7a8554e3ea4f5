"""Rotary position embedding, applied in place to q and k, forward and backward.

Layout: one Triton kernel (the backward is the same rotation by the opposite angle), its launcher, then
the autograd Function.

q: (batch, heads, seq, head_dim) and k: (batch, kv_heads, seq, head_dim), any strides with a unit last
stride (the Hugging Face attention hands us transposed views of the projection outputs). cos and sin:
(batch or 1, seq, head_dim) as the Hugging Face rotary module returns them: cat(freqs, freqs), so only the
first half is read. Every Llama-family rope type (default, linear, dynamic, llama3, yarn) builds them so.

In place because q and k are fresh projection outputs nothing else reads: the rotation then costs one
read and one write of q and k and no allocation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._utils import next_power_of_2, rows_per_block


@triton.jit
def _rope_kernel(
    X, Y, COS, SIN,
    sx_b, sx_h, sx_t,
    sy_b, sy_h, sy_t,
    sc_b, sc_t,
    seq_len, n_heads, half,
    BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
    BACKWARD: tl.constexpr,
):
    # A tile of BLOCK_T positions x (all heads x half the head dim), flattened to 2-D: column j is head
    # j // BLOCK_D, dim j % BLOCK_D. One position a program on a GPU (32 heads x 64 = 2048 elements);
    # many in the interpreter. cos/sin are read once per position and reused by every head.
    # Y may be X (the in-place forward) or a fresh buffer (the backward).
    n_tblocks = tl.cdiv(seq_len, BLOCK_T)
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_tblocks
    t = (pid % n_tblocks) * BLOCK_T + tl.arange(0, BLOCK_T)
    j = tl.arange(0, BLOCK_H * BLOCK_D)
    h = j // BLOCK_D
    d = j % BLOCK_D
    tmask = t < seq_len
    cmask = tmask[:, None] & (d[None, :] < half)
    mask = cmask & (h[None, :] < n_heads)
    cs_off = b * sc_b + t[:, None] * sc_t + d[None, :]
    c = tl.load(COS + cs_off, mask=cmask, other=0.0).to(tl.float32)
    s = tl.load(SIN + cs_off, mask=cmask, other=0.0).to(tl.float32)
    if BACKWARD:
        # the rotation is orthogonal: its transpose (the gradient map) is the rotation by -angle
        s = -s
    x_ptr = X + b * sx_b + t[:, None] * sx_t + h[None, :] * sx_h + d[None, :]
    y_ptr = Y + b * sy_b + t[:, None] * sy_t + h[None, :] * sy_h + d[None, :]
    x1 = tl.load(x_ptr, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + half, mask=mask, other=0.0).to(tl.float32)
    # rotate_half(x) = cat(-x2, x1): out1 = x1*cos - x2*sin, out2 = x2*cos + x1*sin
    tl.store(y_ptr, (x1 * c - x2 * s).to(Y.dtype.element_ty), mask=mask)
    tl.store(y_ptr + half, (x2 * c + x1 * s).to(Y.dtype.element_ty), mask=mask)


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def rope_rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor | None = None,
                backward: bool = False) -> torch.Tensor:
    """Rotates x (batch, heads, seq, head_dim) into ``out`` (x itself when None: in place)."""
    bsz, n_heads, seq_len, head_dim = x.shape
    x = _unit_last(x) if out is not None else x
    y = x if out is None else out
    cos, sin = _unit_last(cos), _unit_last(sin)
    if cos.dim() == 2:  # (seq, dim): one table for every sequence
        cos, sin = cos.unsqueeze(0), sin.unsqueeze(0)
    # a batch of one table broadcasts: stride 0 makes every batch row read the same cos/sin
    sc_b = cos.stride(0) if cos.shape[0] > 1 else 0
    half = head_dim // 2
    block_h, block_d = next_power_of_2(n_heads), next_power_of_2(half)
    block_t = rows_per_block(block_h * block_d, seq_len)
    _rope_kernel[(bsz * triton.cdiv(seq_len, block_t),)](
        x, y, cos, sin,
        x.stride(0), x.stride(1), x.stride(2),
        y.stride(0), y.stride(1), y.stride(2),
        sc_b, cos.stride(1),
        seq_len, n_heads, half,
        BLOCK_T=block_t, BLOCK_H=block_h, BLOCK_D=block_d,
        BACKWARD=backward, num_warps=4 if block_t * block_h * block_d <= 2048 else 8,
    )
    return y


class RoPEFunction(torch.autograd.Function):
    # One tensor per call: autograd refuses in-place edits of *views* (q and k are transposed views of
    # the projection outputs) by a Function that returns more than one tensor. q and k are two calls.
    @staticmethod
    def forward(ctx, x, cos, sin):
        if x.stride(-1) != 1:
            x = x.contiguous()
            rope_rotate(x, cos, sin)
        else:
            rope_rotate(x, cos, sin)
            ctx.mark_dirty(x)
        ctx.save_for_backward(cos, sin)
        return x

    @staticmethod
    def backward(ctx, dy):
        cos, sin = ctx.saved_tensors
        # into a fresh buffer: autograd may hand the same gradient tensor to another node too
        dx = rope_rotate(dy, cos, sin, out=torch.empty(dy.shape, dtype=dy.dtype, device=dy.device),
                         backward=True)
        return dx, None, None


def rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Applies rotary embedding to q and k in place (when their last stride is 1) and returns them."""
    return RoPEFunction.apply(q, cos, sin), RoPEFunction.apply(k, cos, sin)
