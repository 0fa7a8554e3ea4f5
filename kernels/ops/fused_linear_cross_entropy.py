"""Fused lm_head + cross-entropy over the vocabulary, in chunks of rows, never holding all the logits.

Layout: the Triton kernel (one row's loss and logit gradient), the launcher that walks the chunks,
then the autograd Function.

Why: Llama-7B at 4 x 2048 tokens has 8192 x 32000 logits: 0.5 GB in bf16, 1 GB more once the loss
upcasts them, and as much again for their gradient. Here one chunk of rows at a time goes through
matmul -> loss and d(logits) in place -> d(hidden) = d(logits) @ W, so the peak is one chunk of logits.

The gradient is computed during the forward (the loss is a scalar: its gradient w.r.t. the hidden states
is known up to the incoming scale), saved, and scaled in the backward. The lm_head weight is therefore
only read during the forward, which is what DeepSpeed ZeRO-3 needs (it is gathered only there).

Labels of -100 (prompt tokens, padding) contribute neither loss nor gradient, and the mean is over the
counted tokens (or over ``num_items_in_batch`` when the trainer passes it for gradient accumulation).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from contract_review.kernels.ops._utils import next_power_of_2, rows_per_block


@triton.jit
def _cross_entropy_kernel(
    LOGITS, stride_logits, LABELS, LOSS,
    n_rows, n_vocab, ignore_index,
    BLOCK_R: tl.constexpr, BLOCK_V: tl.constexpr,
):
    # BLOCK_R rows a program (one on a GPU, many in the interpreter); each row is swept twice (online
    # max/sum-exp, then the gradient) in BLOCK_V slices, so any vocabulary size fits in registers
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < n_rows
    ptr = LOGITS + rows[:, None] * stride_logits
    label = tl.load(LABELS + rows, mask=rmask, other=ignore_index).to(tl.int64)
    valid = label != ignore_index
    safe_label = tl.where(valid, label, 0)
    cols = tl.arange(0, BLOCK_V)

    m = tl.full((BLOCK_R,), -float("inf"), tl.float32)
    s = tl.zeros((BLOCK_R,), tl.float32)
    for start in range(0, n_vocab, BLOCK_V):
        offs = start + cols
        mask = rmask[:, None] & (offs[None, :] < n_vocab)
        x = tl.load(ptr + offs[None, :], mask=mask, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)  # rows past n_rows: all -inf
        # rescale the running sum to the new max so exp never overflows (fp32 exp overflows past 88)
        s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(x - m_safe[:, None]), axis=1)
        m = m_new
    m = tl.where(rmask, m, 0.0)
    s = tl.where(rmask, s, 1.0)
    lse = m + tl.log(s)
    x_label = tl.load(LOGITS + rows * stride_logits + safe_label, mask=rmask, other=0.0).to(tl.float32)

    # The gradient is stored unscaled (softmax - onehot, in [-1, 1]); the 1/(counted tokens) factor is
    # applied to d(hidden) in the backward. Scaled here, fp16 logit gradients (p / 5000 ~ 1e-8) would
    # underflow: measured 1.4e-2 relative error in d(hidden) at 8192 x 32000 in fp16, against 3e-3 allowed.
    scale = tl.where(valid, 1.0, 0.0)
    for start in range(0, n_vocab, BLOCK_V):
        offs = start + cols
        mask = rmask[:, None] & (offs[None, :] < n_vocab)
        x = tl.load(ptr + offs[None, :], mask=mask, other=0.0).to(tl.float32)
        grad = tl.exp(x - lse[:, None]) * scale[:, None]
        grad = tl.where(offs[None, :] == safe_label[:, None], grad - scale[:, None], grad)
        # the logits are dead after this row: overwrite them with their gradient (no second buffer)
        tl.store(ptr + offs[None, :], grad.to(LOGITS.dtype.element_ty), mask=mask)
    tl.store(LOSS + rows, tl.where(valid, lse - x_label, 0.0), mask=rmask)


def _chunk_rows(n_rows: int, hidden: int, vocab: int) -> int:
    # one chunk of logits about as large as the hidden states themselves (n_rows x hidden): the memory
    # bound stays that of the activations, and chunks stay big enough (>= 1024 rows at 7B shapes, a
    # 1024 x 32000 x 4096 matmul) for the GEMMs to run near peak
    inc = max(1, triton.cdiv(vocab, hidden))
    return max(16, next_power_of_2(triton.cdiv(n_rows, inc)))


def fused_linear_cross_entropy_forward(
    h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor | None = None,
    ignore_index: int = -100, num_items_in_batch=None, need_dweight: bool = False,
    need_dbias: bool = False, chunk_rows: int | None = None,
):
    """h: (N, hidden), weight: (V, hidden), labels: (N,). Returns loss (fp32 scalar) and, for a unit
    upstream gradient, dh / scale, dweight / scale, dbias / scale, and scale (a 0-d device tensor, 1 over
    the counted tokens): the caller multiplies the gradients by it (the backward does, at no extra pass)."""
    n_rows, hidden = h.shape
    vocab = weight.shape[0]
    w = weight if weight.dtype == h.dtype else weight.to(h.dtype)
    b = None if bias is None else bias.to(h.dtype)
    labels = labels.contiguous()
    if num_items_in_batch is None:
        count = (labels != ignore_index).sum().clamp_min(1).to(torch.float32)
    else:
        count = torch.as_tensor(num_items_in_batch, device=h.device, dtype=torch.float32)
    scale = (1.0 / count).reshape(1)
    loss_rows = torch.empty(n_rows, dtype=torch.float32, device=h.device)
    dh = torch.empty_like(h)
    dweight = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_dweight else None
    dbias = torch.zeros(vocab, dtype=torch.float32, device=h.device) if need_dbias else None
    chunk = chunk_rows or _chunk_rows(n_rows, hidden, vocab)
    block_v = min(next_power_of_2(vocab), 4096 if h.is_cuda else 1024)
    block_r = 1 if h.is_cuda else rows_per_block(block_v, min(chunk, n_rows))
    for start in range(0, n_rows, chunk):
        end = min(start + chunk, n_rows)
        h_c = h[start:end]
        logits = h_c @ w.t() if b is None else torch.addmm(b, h_c, w.t())
        _cross_entropy_kernel[(triton.cdiv(end - start, block_r),)](
            logits, logits.stride(0), labels[start:end], loss_rows[start:end],
            end - start, vocab, ignore_index,
            BLOCK_R=block_r, BLOCK_V=block_v, num_warps=16 if block_v >= 4096 else 4,
        )
        # logits now hold d(loss)/d(logits) for this chunk, up to the factor ``scale``
        torch.mm(logits, w, out=dh[start:end])
        if need_dweight:
            dweight.addmm_(logits.t().float(), h_c.float())
        if need_dbias:
            dbias += logits.float().sum(0)
    loss = loss_rows.sum() * scale[0]
    return loss, dh, dweight, dbias, scale[0]


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, labels, bias, ignore_index, num_items_in_batch):
        loss, dh, dw, db, scale = fused_linear_cross_entropy_forward(
            h, weight, labels, bias, ignore_index, num_items_in_batch,
            need_dweight=ctx.needs_input_grad[1],
            need_dbias=bias is not None and ctx.needs_input_grad[3],
        )
        ctx.save_for_backward(dh, dw, db, scale)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, dloss):
        dh, dw, db, scale = ctx.saved_tensors
        # the gradients were kept unscaled; the token count's 1/n and the upstream gradient (gradient
        # accumulation, AMP's GradScaler) are applied together here, in fp32, then rounded once
        factor = dloss.float() * scale
        dh = (dh.float() * factor).to(dh.dtype) if dh.dtype != torch.float32 else dh * factor
        dw = None if dw is None else (dw * factor).to(ctx.weight_dtype)
        db = None if db is None else (db * factor).to(ctx.weight_dtype)
        return dh, dw, None, db, None, None


def fused_linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                               bias: torch.Tensor | None = None, ignore_index: int = -100,
                               num_items_in_batch=None) -> torch.Tensor:
    """Mean token cross-entropy of ``h @ weight.T (+ bias)`` against ``labels`` (rows flattened)."""
    h2 = h.reshape(-1, h.shape[-1])
    return FusedLinearCrossEntropyFunction.apply(h2, weight, labels.reshape(-1), bias, ignore_index,
                                                 num_items_in_batch)
