"""LoRA dropout on the fast path: the low-rank branch's input dropped in-kernel, the mask never stored.

peft's LoRA layer is ``y = x W^T + s * B(A(drop(x)))``: dropout acts on the low-rank branch's input only.
Here ``drop(x) A^T`` (forward) and, in backward, the branch's input gradient ``s * drop'(dy B A)`` and
``dA = s * (dy B)^T drop(x)`` are Triton kernels that draw the keep mask themselves from Philox
(``tl.randint4x``) at every element's position and the node's seed: the mask is rebuilt wherever it is
needed (forward, a gradient-checkpointing recompute, backward) and no (tokens x in) mask or dropped copy
of x is ever written. ``x W^T`` and everything without dropout stay on cuBLAS (kernels/ops/lora.py).

Layout: the mask (where each element's random number comes from), the Triton kernels (forward, backward,
the mask alone), their launchers, then ``DropoutLowRankFunction`` (``drop(x) A^T`` as an autograd node:
the op on its own, which tests/kernels/ops/test_op_lora_dropout.py checks against a PyTorch reference).
kernels/ops/lora.py's LoRA nodes call the launchers.

The mask. Element (i, j) of an (N, K) input, with ``Q = ceil(K / 4)``: Philox counter ``i * Q + j mod Q``,
word ``j // Q`` of the four ``randint4x`` returns (one Philox evaluation feeds four elements, a quarter of
the row apart, so each kernel tile loads four contiguous column slices). The element is kept when that
word, as a uniform float in [0, 1) (``tl.uint_to_uniform_float``: 31 random bits), is >= p, and kept
values are scaled by 1 / (1 - p), as ``torch.nn.Dropout`` does. The mapping depends on (i, j, K) only,
never on a kernel's block sizes, so every kernel that rebuilds the mask rebuilds the same one.

The seed. Philox's 64-bit key is ``salt << 32 | (key & 0xffffffff)``: ``key`` is a one-element int64
device tensor that the decoder stack redraws at every training forward (``DropoutKey``: eager from
torch's CPU generator, so a seeded run repeats its masks and a resumed run continues its RNG stream;
inside a CUDA graph capture by an in-graph increment, so every replay gets a fresh mask), and ``salt`` is
the projection's own number, so no two projections share a mask (peft draws one per module, too). The key
is read on the device when a kernel runs, so the recompute and the backward of a micro-batch see the key
of its forward as long as the next forward has not begun (true of any training loop: a micro-batch's
backward precedes the next micro-batch's forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from contract_review.kernels.ops._utils import INTERPRET, next_power_of_2, program_count


@dataclass(frozen=True)
class LoRADropout:
    """The dropout of one LoRA projection's branch input: probability ``p`` (0 < p < 1), the stack's
    ``key`` (int64, one element, on the input's device) and the projection's ``salt``."""

    p: float
    key: torch.Tensor
    salt: int

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.p)

    @property
    def threshold(self) -> int:
        """An element is kept when 31 of its random bits, as an integer, are at least this: probability
        1 - p to within 2^-31."""
        return min(2**31 - 1, round(self.p * 2**31))


class DropoutKey:
    """The per-forward part of the dropout seed of one decoder stack (see the module docstring).

    ``advance(device)`` before every training forward of the stack: eager, a fresh value from torch's CPU
    generator is written into the device tensor (a fill kernel, no host sync); inside a CUDA graph
    capture, the tensor is incremented in the graph instead, so each replay moves it on."""

    def __init__(self):
        self.key: torch.Tensor | None = None

    def advance(self, device: torch.device) -> None:
        if self.key is None or self.key.device != device:
            self.key = torch.zeros(1, dtype=torch.int64, device=device)
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            self.key.add_(1)
        else:
            self.key.fill_(int(torch.randint(0, 2**31 - 1, (1,))))


# ---------------------------------------------------------------------------------------------------
# kernels
#
# Few nested @triton.jit calls on purpose: Triton's interpreter (the CPU tests) re-patches the language
# module at every nested call (~3 ms each), so the quarters are a static loop in the kernel body and the
# random numbers one helper call an iteration.

INTERPRET_DOT = tl.constexpr(INTERPRET)


@triton.jit
def _philox(KEY, salt, counter):
    """Four uint32 blocks of Philox4x32-10 (Triton's ``randint4x``, in one call) at ``counter`` (int64) under
    the key ``(KEY[0] & 0xffffffff, salt)``."""
    key = tl.load(KEY).to(tl.int64)
    k0 = (key & 0xFFFFFFFF).to(tl.uint32)
    c0 = counter.to(tl.uint32)
    c1 = (counter >> 32).to(tl.uint32)
    c2 = c0 * 0
    # salt is a Python int in the interpreter and a scalar tensor when compiled; adding it to a tensor works
    # in both (tl.to_tensor does not exist before Triton 3.7)
    k1 = (c2 + salt).to(tl.uint32)
    c3 = c2
    for _ in tl.static_range(10):
        _c0, _c2 = c0, c2
        c0 = tl.math.umulhi(0xCD9E8D57, _c2) ^ c1 ^ k0
        c2 = tl.math.umulhi(0xD2511F53, _c0) ^ c3 ^ k1
        # uint32 products and sums wrap (no overflow checks outside Triton's debug mode)
        c1 = _c2 * 0xCD9E8D57
        c3 = _c0 * 0xD2511F53
        k0 = k0 + 0x9E3779B9
        k1 = k1 + 0xBB67AE85
    return c0, c1, c2, c3


@triton.jit(do_not_specialize=["salt"])
def _dropout_xa_kernel(X, stride_x, A, stride_a, OUT, stride_o, KEY, salt, N, K, Q, R, threshold, scale,
                       BLOCK_M: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_R: tl.constexpr, IEEE: tl.constexpr):
    """OUT (N, R) = drop(X) (N, K) @ A^T, A (R, K); one program per BLOCK_M rows, the K loop in quarters."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < N
    rr = tl.arange(0, BLOCK_R)
    rrmask = rr < R
    acc = tl.zeros((BLOCK_M, BLOCK_R), dtype=tl.float32)
    for g0 in range(0, Q, BLOCK_G):
        g = g0 + tl.arange(0, BLOCK_G)
        r0, r1, r2, r3 = _philox(KEY, salt, rows[:, None] * Q + g[None, :])
        for t in tl.static_range(4):
            if t == 0:
                r = r0
            elif t == 1:
                r = r1
            elif t == 2:
                r = r2
            else:
                r = r3
            cols = t * Q + g
            cmask = (g < Q) & (cols < K)
            x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0)
            keep = (r >> 1).to(tl.int32, bitcast=True) >= threshold
            xd = tl.where(keep, x.to(tl.float32) * scale, 0.0).to(x.dtype)
            # A^T's tile: (columns of x) x (ranks)
            a = tl.load(A + rr[None, :] * stride_a + cols[:, None], mask=cmask[:, None] & rrmask[None, :], other=0.0)
            if INTERPRET_DOT:  # the interpreter's bf16 dot is wrong (Triton 3.9): fp32 operands, same values
                acc = tl.dot(xd.to(tl.float32), a.to(tl.float32), acc, input_precision="ieee")
            elif IEEE:  # fp32 operands: IEEE products, not TF32's 10-bit mantissa
                acc = tl.dot(xd, a, acc, input_precision="ieee")
            else:
                acc = tl.dot(xd, a, acc)
    tl.store(OUT + rows[:, None] * stride_o + rr[None, :], acc.to(OUT.dtype.element_ty),
             mask=rmask[:, None] & rrmask[None, :])


@triton.jit(do_not_specialize=["salt"])
def _dropout_backward_kernel(X, stride_x, DYB, stride_d, A, stride_a, DX, stride_dx, DAP, KEY, salt,
                             N, K, Q, R, rows_per_split, threshold, scale, s_dx, s_da,
                             BLOCK_M: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_R: tl.constexpr,
                             WRITE_DX: tl.constexpr, ACCUMULATE: tl.constexpr, COMPUTE_DA: tl.constexpr,
                             IEEE: tl.constexpr):
    """Program (column block, token split): for its BLOCK_G columns of each quarter of the row and its rows,
    DX = s * drop'(DYB @ A) (written, or added to DX) and DAP[split] = s * DYB^T drop(X) (a partial dA).
    The four quarters' dA accumulate side by side in one (4 x BLOCK_R, BLOCK_G) block."""
    g = tl.program_id(0) * BLOCK_G + tl.arange(0, BLOCK_G)
    split = tl.program_id(1)
    rr = tl.arange(0, BLOCK_R)
    rrmask = rr < R
    acc0 = tl.zeros((BLOCK_R, BLOCK_G), dtype=tl.float32)
    acc1 = tl.zeros((BLOCK_R, BLOCK_G), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_R, BLOCK_G), dtype=tl.float32)
    acc3 = tl.zeros((BLOCK_R, BLOCK_G), dtype=tl.float32)
    start = split.to(tl.int64) * rows_per_split
    for m in range(0, rows_per_split, BLOCK_M):
        rows = start + m + tl.arange(0, BLOCK_M)
        rmask = (rows < N) & (rows < start + rows_per_split)
        dyb = tl.load(DYB + rows[:, None] * stride_d + rr[None, :], mask=rmask[:, None] & rrmask[None, :], other=0.0)
        r0, r1, r2, r3 = _philox(KEY, salt, rows[:, None] * Q + g[None, :])
        for t in tl.static_range(4):
            if t == 0:
                r = r0
            elif t == 1:
                r = r1
            elif t == 2:
                r = r2
            else:
                r = r3
            cols = t * Q + g
            cmask = (g < Q) & (cols < K)
            m2 = rmask[:, None] & cmask[None, :]
            keep = (r >> 1).to(tl.int32, bitcast=True) >= threshold
            if WRITE_DX:
                # the branch's input gradient: s * (dy B A) where kept, times 1/(1-p); A's slice is small
                # (ranks x BLOCK_G) and cached, re-read every row block
                a = tl.load(A + rr[:, None] * stride_a + cols[None, :], mask=rrmask[:, None] & cmask[None, :],
                            other=0.0)
                if INTERPRET_DOT:
                    d = tl.dot(dyb.to(tl.float32), a.to(tl.float32), input_precision="ieee")
                elif IEEE:
                    d = tl.dot(dyb, a, input_precision="ieee")
                else:
                    d = tl.dot(dyb, a)
                d = tl.where(keep, d * s_dx, 0.0)
                ptr = DX + rows[:, None] * stride_dx + cols[None, :]
                if ACCUMULATE:
                    d += tl.load(ptr, mask=m2, other=0.0).to(tl.float32)
                tl.store(ptr, d.to(DX.dtype.element_ty), mask=m2)
            if COMPUTE_DA:
                x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=m2, other=0.0)
                xd = tl.where(keep, x.to(tl.float32) * scale, 0.0).to(x.dtype)
                if INTERPRET_DOT:
                    part = tl.dot(tl.trans(dyb).to(tl.float32), xd.to(tl.float32), input_precision="ieee")
                elif IEEE:
                    part = tl.dot(tl.trans(dyb), xd, input_precision="ieee")
                else:
                    part = tl.dot(tl.trans(dyb), xd)
                if t == 0:
                    acc0 += part
                elif t == 1:
                    acc1 += part
                elif t == 2:
                    acc2 += part
                else:
                    acc3 += part
    if COMPUTE_DA:
        base = DAP + split.to(tl.int64) * R * K + rr[:, None] * K
        for t in tl.static_range(4):
            if t == 0:
                acc = acc0
            elif t == 1:
                acc = acc1
            elif t == 2:
                acc = acc2
            else:
                acc = acc3
            cols = t * Q + g
            tl.store(base + cols[None, :], acc * s_da, mask=rrmask[:, None] & ((g < Q) & (cols < K))[None, :])


@triton.jit(do_not_specialize=["salt"])
def _dropout_mask_kernel(OUT, KEY, salt, N, K, Q, threshold, scale, BLOCK_M: tl.constexpr, BLOCK_G: tl.constexpr):
    """OUT (N, K) float32: 1/(1-p) where kept, 0 where dropped (the mask every other kernel draws)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    g = tl.program_id(1) * BLOCK_G + tl.arange(0, BLOCK_G)
    r0, r1, r2, r3 = _philox(KEY, salt, rows[:, None] * Q + g[None, :])
    for t in tl.static_range(4):
        if t == 0:
            r = r0
        elif t == 1:
            r = r1
        elif t == 2:
            r = r2
        else:
            r = r3
        cols = t * Q + g
        keep = (r >> 1).to(tl.int32, bitcast=True) >= threshold
        tl.store(OUT + rows[:, None] * K + cols[None, :], tl.where(keep, scale, 0.0),
                 mask=(rows < N)[:, None] & ((g < Q) & (cols < K))[None, :])


# ---------------------------------------------------------------------------------------------------
# launchers

# Column slices of BLOCK_G a quarter: four dots of (BLOCK_M x BLOCK_G) @ (BLOCK_G x ranks) an iteration.
_BLOCK_G = 64


def _block_r(r: int) -> int:
    return max(16, next_power_of_2(r))  # tl.dot needs every dimension >= 16


def _quarter(k: int) -> int:
    return triton.cdiv(k, 4)


def _ieee(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32  # fp32 operands: IEEE products, not TF32's 10-bit mantissa


def _rows_block(n: int, device: torch.device) -> int:
    if INTERPRET:  # few programs, each a Python loop: tiles as large as the rows (up to 256)
        return min(256, max(16, next_power_of_2(n)))
    # enough programs to cover the device: small row blocks when there are few rows
    return 64 if triton.cdiv(n, 64) >= program_count(device) else 32


def dropout_xa(x2: torch.Tensor, A: torch.Tensor, drop: LoRADropout) -> torch.Tensor:
    """drop(x2) @ A^T: x2 (N, K) and A (R, K) in the compute dtype; (N, R) in it."""
    x2, A = x2.contiguous(), A.contiguous()
    n, k = x2.shape
    r = A.shape[0]
    out = torch.empty((n, r), dtype=x2.dtype, device=x2.device)
    bm = _rows_block(n, x2.device)
    br = _block_r(r)
    _dropout_xa_kernel[(triton.cdiv(n, bm),)](
        x2, x2.stride(0), A, A.stride(0), out, out.stride(0), drop.key, drop.salt, n, k, _quarter(k), r,
        drop.threshold, drop.scale, BLOCK_M=bm, BLOCK_G=_BLOCK_G, BLOCK_R=br, IEEE=_ieee(x2),
        num_warps=4 if br <= 32 else 8)
    return out


def dropout_backward(dyB: torch.Tensor, x2: torch.Tensor | None, A: torch.Tensor, drop: LoRADropout, scale: float,
                     *, dx: torch.Tensor | None = None, accumulate: bool = False, grad_dtype=None):
    """The dropped branch's backward, one mask rebuild for both parts:
    - ``dx`` given (N, K): ``s * drop'(dyB @ A)`` written into it (``accumulate``: added to what it holds);
    - ``x2`` given: returns dA = ``s * dyB^T drop(x2)`` (R, K) in ``grad_dtype`` (fp32 partial sums over
      token splits, summed in order: deterministic), else None.
    dyB (N, R) and A (R, K) in the compute dtype."""
    write_dx, compute_da = dx is not None, x2 is not None
    if not (write_dx or compute_da):
        return None
    dyB, A = dyB.contiguous(), A.contiguous()
    n, r = dyB.shape
    k = A.shape[1]
    like = x2 if compute_da else dx
    q = _quarter(k)
    bg = _BLOCK_G
    br = _block_r(r)
    if br > 32 and not INTERPRET:
        bg = 32  # four (ranks x columns) fp32 accumulators and four A slices per program: keep them in registers
    col_blocks = triton.cdiv(q, bg)
    bm = _rows_block(n, like.device) if INTERPRET else 64
    # splits of the tokens: enough programs to fill the device twice; each split's dA is a partial sum
    splits = max(1, min(triton.cdiv(n, bm), triton.cdiv(2 * program_count(like.device), col_blocks)))
    rows_per_split = triton.cdiv(triton.cdiv(n, splits), bm) * bm
    splits = triton.cdiv(n, rows_per_split)
    dap = torch.empty((splits, r, k), dtype=torch.float32, device=like.device) if compute_da else like
    x_arg = x2.contiguous() if compute_da else dyB
    dx_arg = dx if write_dx else dyB
    if write_dx:
        assert dx.is_contiguous() and dx.shape == (n, k)
    _dropout_backward_kernel[(col_blocks, splits)](
        x_arg, x_arg.stride(0), dyB, dyB.stride(0), A, A.stride(0), dx_arg, dx_arg.stride(0), dap,
        drop.key, drop.salt, n, k, q, r, rows_per_split, drop.threshold, drop.scale, scale * drop.scale, scale,
        BLOCK_M=bm, BLOCK_G=bg, BLOCK_R=br, WRITE_DX=write_dx, ACCUMULATE=accumulate, COMPUTE_DA=compute_da,
        IEEE=_ieee(like), num_warps=4 if br <= 32 else 8)
    if not compute_da:
        return None
    dA = dap[0] if splits == 1 else dap.sum(0)
    return dA if grad_dtype in (None, torch.float32) else dA.to(grad_dtype)


def dropout_mask(n: int, k: int, drop: LoRADropout) -> torch.Tensor:
    """The (n, k) float32 mask the kernels draw for this dropout: 1/(1-p) where kept, 0 where dropped."""
    out = torch.empty((n, k), dtype=torch.float32, device=drop.key.device)
    q = _quarter(k)
    bm = _rows_block(n, out.device)
    _dropout_mask_kernel[(triton.cdiv(n, bm), triton.cdiv(q, _BLOCK_G))](
        out, drop.key, drop.salt, n, k, q, drop.threshold, drop.scale, BLOCK_M=bm, BLOCK_G=_BLOCK_G)
    return out


# ---------------------------------------------------------------------------------------------------
# autograd


class DropoutLowRankFunction(torch.autograd.Function):
    """``drop(x) A^T`` as one node: x (..., K), A (R, K). Backward: dx = drop'(dy A) (the mask rebuilt, not
    saved), dA = dy^T drop(x). Runs in autocast's dtype when autocast is on, like the LoRA nodes."""

    @staticmethod
    def forward(ctx, x, A, drop):
        from contract_review.kernels.ops._utils import compute_dtype

        dtype = compute_dtype(x)
        x2 = x.reshape(-1, x.shape[-1]).to(dtype)
        Ac = A.to(dtype)
        out = dropout_xa(x2, Ac, drop)
        ctx.save_for_backward(x2, Ac)
        ctx.drop, ctx.x_dtype, ctx.a_dtype = drop, x.dtype, A.dtype
        return out.view(*x.shape[:-1], A.shape[0])

    @staticmethod
    def backward(ctx, dy):
        x2, A = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        dx = torch.empty_like(x2) if ctx.needs_input_grad[0] else None
        dA = dropout_backward(dy2, x2 if ctx.needs_input_grad[1] else None, A, ctx.drop, 1.0, dx=dx,
                              grad_dtype=ctx.a_dtype)
        if dx is not None:
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        return dx, dA, None


def dropout_lowrank(x: torch.Tensor, A: torch.Tensor, drop: LoRADropout) -> torch.Tensor:
    """``drop(x) @ A^T`` with the mask drawn in-kernel from ``drop`` (rebuilt in backward, never stored)."""
    return DropoutLowRankFunction.apply(x, A, drop)
