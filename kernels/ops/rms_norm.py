"""RMSNorm, Llama style: y = w * cast(x / rms(x)), forward and backward in one pass over each row.

Layout: the two Triton kernels (forward, backward), their launchers, then the autograd Function.

Saved for backward: x (already alive: it is the residual stream) and one fp32 rstd per row, so the
backward never recomputes the row reduction.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from contract_review.kernels.ops._utils import program_count, row_settings, rows_per_block


@triton.jit
def _rms_norm_forward_kernel(
    Y, X, W, RSTD,
    stride_y, stride_x,
    n_rows, n_cols, eps,
    BLOCK_R: tl.constexpr, BLOCK: tl.constexpr,
):
    # a tile of BLOCK_R whole rows (one row at Llama widths on a GPU; many in the interpreter)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK)
    rmask = rows < n_rows
    mask = rmask[:, None] & (cols[None, :] < n_cols)
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0)
    x_f32 = x.to(tl.float32)
    # the mean of squares in fp32 whatever the input dtype: bf16 has 8 bits of mantissa, a 4096-term sum in
    # bf16 would lose the small terms entirely
    var = tl.sum(x_f32 * x_f32, axis=1) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    tl.store(RSTD + rows, rstd, mask=rmask)
    w = tl.load(W + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    # Llama rounds the normalised row to the input dtype before the weight multiply; doing the same keeps
    # the patched model closer to the reference in bf16/fp16
    x_hat = (x_f32 * rstd[:, None]).to(x.dtype).to(tl.float32)
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], (x_hat * w[None, :]).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rms_norm_backward_kernel(
    DX, DY, X, W, RSTD, DW_PARTIAL,
    stride_dx, stride_dy, stride_x,
    n_rows, n_cols, rows_per_program,
    BLOCK_R: tl.constexpr, BLOCK: tl.constexpr,
    HAS_DW: tl.constexpr,
):
    # Each program walks a contiguous run of rows (a multiple of BLOCK_R) and keeps its share of dW in
    # registers, so dW costs one small (programs x n_cols) fp32 buffer and one sum in torch instead of an
    # atomic add per row.
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    cmask = cols < n_cols
    w = tl.load(W + cols, mask=cmask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    row_start = pid.to(tl.int64) * rows_per_program
    for r0 in range(0, rows_per_program, BLOCK_R):
        rows = row_start + r0 + tl.arange(0, BLOCK_R)
        rmask = rows < n_rows
        mask = rmask[:, None] & cmask[None, :]
        dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=rmask, other=0.0)
        x_hat = x * rstd[:, None]
        wdy = w[None, :] * dy
        # d/dx of x*rstd: the rstd term plus the term through rstd's dependence on every x of the row
        c = tl.sum(x_hat * wdy, axis=1) / n_cols
        dx = (wdy - x_hat * c[:, None]) * rstd[:, None]
        tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        if HAS_DW:
            dw_acc += tl.sum(dy * x_hat, axis=0)
    if HAS_DW:
        tl.store(DW_PARTIAL + pid * n_cols + cols, dw_acc, mask=cmask)


def rms_norm_forward(x: torch.Tensor, weight: torch.Tensor, eps: float):
    """Returns y (x's shape, the promoted dtype of x and weight, as Llama's module gives), x as 2-D, rstd."""
    shape = x.shape
    n_cols = shape[-1]
    x2 = x.reshape(-1, n_cols)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    n_rows = x2.shape[0]
    out_dtype = torch.result_type(weight, x) if weight.dtype != x.dtype else x.dtype
    # allocated in x's shape (a base tensor, not a view made here: later in-place ops stay legal)
    y = torch.empty(shape, dtype=out_dtype, device=x.device)
    rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    block, num_warps = row_settings(n_cols)
    block_r = rows_per_block(block, n_rows)
    _rms_norm_forward_kernel[(triton.cdiv(n_rows, block_r),)](
        y, x2, weight, rstd, n_cols, x2.stride(0), n_rows, n_cols, eps,
        BLOCK_R=block_r, BLOCK=block, num_warps=num_warps,
    )
    return y, x2, rstd


def rms_norm_backward(dy: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor,
                      need_dw: bool, x_dtype: torch.dtype):
    n_rows, n_cols = x2.shape
    dy2 = dy.reshape(-1, n_cols)
    if dy2.stride(-1) != 1:
        dy2 = dy2.contiguous()
    dx = torch.empty((n_rows, n_cols), dtype=x_dtype, device=x2.device)
    block, num_warps = row_settings(n_cols)
    block_r = rows_per_block(block, n_rows)
    programs = max(1, min(triton.cdiv(n_rows, block_r), program_count(x2.device) * 4))
    # whole tiles per program, so no two programs touch one row
    rows_per_program = triton.cdiv(triton.cdiv(n_rows, programs), block_r) * block_r
    programs = triton.cdiv(n_rows, rows_per_program)
    dw_partial = (torch.empty((programs, n_cols), dtype=torch.float32, device=x2.device)
                  if need_dw else rstd)  # any valid pointer when unused
    _rms_norm_backward_kernel[(programs,)](
        dx, dy2, x2, weight, rstd, dw_partial,
        dx.stride(0), dy2.stride(0), x2.stride(0),
        n_rows, n_cols, rows_per_program,
        BLOCK_R=block_r, BLOCK=block, HAS_DW=need_dw, num_warps=num_warps,
    )
    dw = dw_partial.sum(0).to(weight.dtype) if need_dw else None
    return dx, dw


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        y, x2, rstd = rms_norm_forward(x, weight, eps)
        ctx.save_for_backward(x2, weight, rstd)
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, weight, rstd = ctx.saved_tensors
        # frozen norm weights (the LoRA case) skip the dW reduction entirely
        dx, dw = rms_norm_backward(dy, x2, weight, rstd, ctx.needs_input_grad[1], ctx.x_dtype)
        return dx.view(ctx.x_shape), dw, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return RMSNormFunction.apply(x, weight, eps)
