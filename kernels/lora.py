"""LoRA-aware projections: the frozen base matmul and the low-rank update in one autograd node.

    y = x W^T + s * (x A^T) B^T (+ bias)       W: (out, in) frozen, A: (r, in), B: (out, r), s = alpha / r

Layout: the projection helpers (forward and backward of one projection), then two autograd Functions:
``LoRALinearFunction`` (one projection: q, k, v, o) and ``LoRAMLPFunction`` (gate, up, SwiGLU, down).

Why this is faster than peft's module stack (dropout 0):
- peft casts x to the adapters' fp32 dtype (a full copy of x per projection) and runs the low-rank
  matmuls in fp32; here they run in the activation dtype with fp32 accumulation in the GEMM, the way the
  base matmul does, and only the tiny A and B are cast.
- the low-rank product is accumulated into the base output buffer by the GEMM itself
  (``addmm_``, beta = 1), not by a separate add and scale over the whole output; the same in backward
  for dx. Per projection that removes three elementwise passes over (tokens x out) in forward and two
  in backward.
- saved for backward: x (alive anyway) and x A^T (tokens x r, tiny), never the (tokens x out) products.
- the MLP keeps e = gate(x) and g = up(x) and recomputes h = silu(e) * g in the backward pass that
  needs it, inside the SwiGLU backward kernel, which writes de and dg over e and g.
The big matmuls stay on cuBLAS: at these shapes it is at the device's peak and a Triton GEMM would only
match it. No weight gradient is ever formed for W.

Dropout > 0, DoRA and other variants do not come here: ``kernels.patch`` sends them to peft's forward.
"""

from __future__ import annotations

import torch

from kernels._utils import compute_dtype
from kernels.swiglu import swiglu_backward, swiglu_forward


def _cast(t, dtype):
    return None if t is None else (t if t.dtype == dtype else t.to(dtype))


def projection_forward(x2, W, bias, A, B, scale, out_shape=None):
    """x2: (N, in) in the compute dtype. Returns (y, xa) with xa = x2 A^T (None without an adapter).

    With ``out_shape`` y is allocated in that shape and written through a 2-D view, so the caller can
    return it as a base tensor: autograd forbids in-place edits (RoPE) of views made inside a Function.
    """
    dtype = x2.dtype
    Wc = _cast(W, dtype)
    y = torch.empty(out_shape or (x2.shape[0], W.shape[0]), dtype=dtype, device=x2.device)
    y2 = y.view(-1, W.shape[0])
    if bias is None:
        torch.mm(x2, Wc.t(), out=y2)
    else:
        torch.addmm(_cast(bias, dtype), x2, Wc.t(), out=y2)
    xa = None
    if A is not None:
        xa = x2 @ _cast(A, dtype).t()
        # the GEMM's beta=1 epilogue adds the update into y: no (N, out) temporary, no extra pass
        y2.addmm_(xa, _cast(B, dtype).t(), alpha=scale)
    return y, xa


def projection_backward(dy, x2, W, A, B, scale, xa, need_dx, dx=None):
    """Returns (dx, dA, dB). dx is accumulated into ``dx`` when given (the MLP's gate and up share it)."""
    dtype = dy.dtype
    dA = dB = None
    dyB = None
    if A is not None:
        Bc = _cast(B, dtype)
        dyB = dy @ Bc  # (N, r)
        # dA = s (dy B)^T x, dB = s dy^T (x A^T): both reduce over the tokens, in the GEMM's fp32 accumulator
        dA = (dyB.t() @ x2).mul_(scale).to(A.dtype)
        dB = (dy.t() @ xa).mul_(scale).to(B.dtype)
    if need_dx:
        Wc = _cast(W, dtype)
        if dx is None:
            dx = dy @ Wc
        else:
            dx.addmm_(dy, Wc)
        if dyB is not None:
            dx.addmm_(dyB, _cast(A, dtype), alpha=scale)
    return dx, dA, dB


class LoRALinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, bias, A, B, scale):
        dtype = compute_dtype(x)
        shape = x.shape
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        with torch.autocast(x.device.type, enabled=False):
            y, xa = projection_forward(x2, W, bias, A, B, scale, out_shape=(*shape[:-1], W.shape[0]))
        ctx.save_for_backward(x2, W, A, B, xa)
        ctx.scale, ctx.x_dtype, ctx.has_bias = scale, x.dtype, bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, W, A, B, xa = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        need_dx = ctx.needs_input_grad[0]
        dx, dA, dB = projection_backward(dy2, x2, W, A, B, ctx.scale, xa, need_dx)
        if dx is not None:
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        dbias = dy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, None, dbias, dA, dB, None


def lora_linear(x, W, bias=None, A=None, B=None, scale=1.0):
    """``x W^T + scale (x A^T) B^T + bias``; W frozen (no gradient is formed for it)."""
    return LoRALinearFunction.apply(x, W, bias, A, B, scale)


class LoRAMLPFunction(torch.autograd.Function):
    """down(silu(gate(x)) * up(x)) with each projection optionally LoRA-adapted."""

    @staticmethod
    def forward(ctx, x, Wg, bg, Ag, Bg, Wu, bu, Au, Bu, Wd, bd, Ad, Bd, sg, su, sd):
        dtype = compute_dtype(x)
        shape = x.shape
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        with torch.autocast(x.device.type, enabled=False):
            e, xa_g = projection_forward(x2, Wg, bg, Ag, Bg, sg)
            g, xa_u = projection_forward(x2, Wu, bu, Au, Bu, su)
            h = swiglu_forward(e, g)
            y, ha_d = projection_forward(h, Wd, bd, Ad, Bd, sd, out_shape=(*shape[:-1], Wd.shape[0]))
        # h is dropped here and recomputed in backward from e and g (one fused elementwise pass)
        ctx.save_for_backward(x2, e, g, xa_g, xa_u, ha_d, Wg, Ag, Bg, Wu, Au, Bu, Wd, Ad, Bd)
        ctx.scales = (sg, su, sd)
        ctx.x_dtype = x.dtype
        ctx.has_bias = (bg is not None, bu is not None, bd is not None)
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, e, g, xa_g, xa_u, ha_d, Wg, Ag, Bg, Wu, Au, Bu, Wd, Ad, Bd = ctx.saved_tensors
        sg, su, sd = ctx.scales
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        need = ctx.needs_input_grad
        # down: dh = dy Wd + sd (dy Bd) Ad; its adapter gradient needs h itself, so dA_d waits for h
        dyB_d = dy2 @ _cast(Bd, dy2.dtype) if Ad is not None else None
        dh, _, _ = projection_backward(dy2, None, Wd, None, None, sd, None, True)
        if dyB_d is not None:
            dh.addmm_(dyB_d, _cast(Ad, dh.dtype), alpha=sd)
        # one pass: reads dh, e, g; writes h over dh, de over e, dg over g (all three are ours and dead)
        de, dg, h = swiglu_backward(dh, e, g, in_place=True, store_h=Ad is not None)
        dA_d = dB_d = None
        if Ad is not None:
            dA_d = (dyB_d.t() @ h).mul_(sd).to(Ad.dtype)
            dB_d = (dy2.t() @ ha_d).mul_(sd).to(Bd.dtype)
        need_dx = need[0]
        dx, dA_g, dB_g = projection_backward(de, x2, Wg, Ag, Bg, sg, xa_g, need_dx)
        dx, dA_u, dB_u = projection_backward(dg, x2, Wu, Au, Bu, su, xa_u, need_dx, dx=dx)
        if dx is not None:
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        hb = ctx.has_bias
        dbg = de.sum(0) if hb[0] and need[2] else None
        dbu = dg.sum(0) if hb[1] and need[6] else None
        dbd = dy2.sum(0) if hb[2] and need[10] else None
        return (dx, None, dbg, dA_g, dB_g, None, dbu, dA_u, dB_u, None, dbd, dA_d, dB_d,
                None, None, None)


def lora_mlp(x, gate, up, down):
    """gate, up, down: tuples (W, bias, A, B, scale) with A, B None for a projection without adapter."""
    (Wg, bg, Ag, Bg, sg), (Wu, bu, Au, Bu, su), (Wd, bd, Ad, Bd, sd) = gate, up, down
    return LoRAMLPFunction.apply(x, Wg, bg, Ag, Bg, Wu, bu, Au, Bu, Wd, bd, Ad, Bd, sg, su, sd)
