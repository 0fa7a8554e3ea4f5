"""Rotary position embedding, applied in place to q and k, forward and backward.

Layout: one Triton kernel (the backward is the same rotation by the opposite angle), its launcher, then
the autograd Function.

q: (batch, heads, seq, head_dim) and k: (batch, kv_heads, seq, head_dim), any strides with a unit last
stride (the Hugging Face attention hands us transposed views of the projection outputs). cos and sin:
(batch or 1, seq, head_dim) as the Hugging Face rotary module returns them: cat(freqs, freqs), so only the
first half is read. Every Llama-family rope type (default, linear, dynamic, llama3, yarn) builds them so.

In place because q and k are fresh projection outputs nothing else reads: the rotation then costs one
read and one write of q and k and no allocation. When q or k is the usual transposed view of a projection
output, the projection output itself is rotated (so autograd sees an in-place edit of a plain tensor, not
of a view, and needs no CopySlices in backward) and a fresh view of it is returned.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from contract_review.kernels.ops._utils import next_power_of_2, rows_per_block


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


def _heads_view(x: torch.Tensor, heads: int | None) -> torch.Tensor:
    """x itself, or for a projection output (batch, seq, heads * head_dim) the (batch, heads, seq, head_dim)
    view the kernel reads."""
    if heads is None:
        return x
    b, t, hd = x.shape
    return x.view(b, t, heads, hd // heads).transpose(1, 2)


class RoPEFunction(torch.autograd.Function):
    # One tensor per call: autograd refuses in-place edits of *views* (q and k are transposed views of
    # the projection outputs) by a Function that returns more than one tensor. q and k are two calls.
    # ``heads``: x is the projection output itself, (batch, seq, heads * head_dim), rotated in place as
    # (batch, heads, seq, head_dim); see ``rope`` for why.
    @staticmethod
    def forward(ctx, x, cos, sin, heads=None):
        if x.stride(-1) != 1:
            x = x.contiguous()  # rotated in a copy: the input itself is left as it is
        else:
            ctx.mark_dirty(x)
        rope_rotate(_heads_view(x, heads), cos, sin)
        ctx.save_for_backward(cos, sin)
        ctx.heads = heads
        return x

    @staticmethod
    def backward(ctx, dy):
        cos, sin = ctx.saved_tensors
        # into a fresh buffer: autograd may hand the same gradient tensor to another node too
        dx = torch.empty(dy.shape, dtype=dy.dtype, device=dy.device)
        rope_rotate(_heads_view(dy, ctx.heads), cos, sin, out=_heads_view(dx, ctx.heads), backward=True)
        return dx, None, None, None


def _projection_output(x: torch.Tensor) -> torch.Tensor | None:
    """The (batch, seq, heads * head_dim) tensor that x (batch, heads, seq, head_dim) is the transposed
    view of (``proj(h).view(b, t, heads, d).transpose(1, 2)``, how Hugging Face attention makes q and k),
    when it is a plain contiguous tensor that x covers exactly; else None."""
    base = x._base
    if base is None or base._base is not None or x.dim() != 4 or not base.is_contiguous() or base.dim() != 3:
        return None
    b, h, t, d = x.shape
    if (tuple(base.shape) != (b, t, h * d) or x.storage_offset() != base.storage_offset()
            or x.stride() != (t * h * d, d, h * d, 1)):
        return None
    return base


def _rope_one(x, cos, sin):
    base = _projection_output(x)
    if base is None:
        return RoPEFunction.apply(x, cos, sin)
    heads = x.shape[1]
    # in place on the projection output itself, not on the transposed view of it: an in-place edit of a
    # view makes autograd rebase the base's history (CopySlices), whose backward clones the whole gradient
    # and copies the slice back, and leaves older views with as_strided backwards: ~20 ms a 7B micro-batch
    # 4 step (run 20261128T184406Z-solo13 profile). The returned view is made after the edit, so its
    # backward is a plain view/transpose.
    return _heads_view(RoPEFunction.apply(base, cos, sin, heads), heads)


def rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Applies rotary embedding to q and k in place (when their last stride is 1) and returns them (for a
    transposed view of a projection output: a new view of the rotated output, same shape and strides)."""
    return _rope_one(q, cos, sin), _rope_one(k, cos, sin)
