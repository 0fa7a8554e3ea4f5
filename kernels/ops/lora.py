"""LoRA-aware projections: the frozen base matmul and the low-rank update in one autograd node.

    y = x W^T + s * (x A^T) B^T (+ bias)       W: (out, in) frozen, A: (r, in), B: (out, r), s = alpha / r

Layout: the projection helpers (forward and backward of one projection), then three autograd Functions:
``LoRALinearFunction`` (one projection: o, or q, k, v apart), ``LoRASharedInputFunction`` (q, k and v of
one input together) and ``LoRAMLPFunction`` (gate, up, SwiGLU, down).

Why this is faster than peft's module stack (dropout 0):
- peft casts x to the adapters' fp32 dtype (a full copy of x per projection) and runs the low-rank
  matmuls in fp32; here they run in the activation dtype with fp32 accumulation in the GEMM, the way the
  base matmul does, and only the tiny A and B are cast.
- the low-rank product is written first (a rank-r GEMM: one write of the output) and the base GEMM adds
  into it through its beta=1 epilogue, where reading the output hides under the compute-bound main loop:
  no (N, out) temporary and no separate read-modify-write pass over the output, in forward and for dx in
  backward; gate's and up's low-rank input-gradient terms are one GEMM over their concatenated ranks.
- saved for backward: x (alive anyway), x A^T (tokens x r, tiny) and the adapters as cast once in
  forward (so the backward casts nothing), never the (tokens x out) products; dA and dB take their scale
  in the GEMM's epilogue.
- the MLP keeps e = gate(x) and g = up(x) and recomputes h = silu(e) * g in the backward pass that
  needs it, inside the SwiGLU backward kernel, which writes de and dg over e and g.
- under gradient checkpointing the MLP's forward runs twice, and the second run (the recompute, in the
  backward pass) only has to rebuild what backward saves: e, g and h A_d^T. Its output, down(h), is never
  read there when the decoder layer ends with ``residual + mlp(x)`` (``kernels.patch`` decides that per
  layer class), so ``need_out=False`` skips the down projection: one of the seven GEMMs of the recompute,
  ~5% of a 7B step. With ``patch(offload_mlp=f)`` the picked layers' recompute also skips gate and up: the
  first forward's e and g come back from host memory (kernels/schedule/mlp_stash.py).
The big matmuls stay on cuBLAS: at these shapes it is at the device's peak and a Triton GEMM would only
match it. No weight gradient is ever formed for W.

Dropout > 0, DoRA and other variants do not come here: ``kernels.patch`` sends them to peft's forward.
"""

from __future__ import annotations

import torch

from contract_review.kernels.ops._utils import compute_dtype
from contract_review.kernels.ops.swiglu import swiglu_backward, swiglu_forward
# the MLP node's stash hand-over (offload_mlp) lives with the step scheduling; it imports no op back
from contract_review.kernels.schedule import mlp_stash


def _cast(t, dtype):
    return None if t is None else (t if t.dtype == dtype else t.to(dtype))


def projection_forward(x2, W, bias, A, B, scale, out_shape=None, xa=None):
    """x2: (N, in) in the compute dtype. Returns (y, xa) with xa = x2 A^T (None without an adapter; passed
    in when the caller made it, as a slice of one GEMM over several projections' concatenated ranks).

    With ``out_shape`` y is allocated in that shape and written through a 2-D view, so the caller can
    return it as a base tensor: autograd forbids in-place edits (RoPE) of views made inside a Function.
    """
    dtype = x2.dtype
    Wc = _cast(W, dtype)
    y = torch.empty(out_shape or (x2.shape[0], W.shape[0]), dtype=dtype, device=x2.device)
    y2 = y.view(-1, W.shape[0])
    if A is not None:
        if xa is None:
            xa = x2 @ _cast(A, dtype).t()
        # the low-rank product first (K = r: one write of y, beta=0 never reads the empty buffer), then
        # the base GEMM adds into it through its beta=1 epilogue, where reading y hides under the
        # compute-bound main loop; the other order costs a separate read-modify-write pass over y
        if bias is None:
            y2.addmm_(xa, _cast(B, dtype).t(), beta=0, alpha=scale)
        else:
            torch.addmm(_cast(bias, dtype), xa, _cast(B, dtype).t(), alpha=scale, out=y2)
        y2.addmm_(x2, Wc.t())
    elif bias is None:
        torch.mm(x2, Wc.t(), out=y2)
    else:
        torch.addmm(_cast(bias, dtype), x2, Wc.t(), out=y2)
    return y, xa


def input_grad_lora(dyBs, As, scales, n_in, like):
    """sum_i s_i (dy_i B_i) A_i as one GEMM over the concatenated ranks, written into a fresh (N, in)
    buffer (beta=0: the empty buffer is never read): the start of an input gradient that the base
    GEMMs then accumulate into (beta=1)."""
    dtype = like.dtype
    dx = torch.empty((dyBs[0].shape[0], n_in), dtype=dtype, device=like.device)
    if len(dyBs) == 1:
        return dx.addmm_(dyBs[0], _cast(As[0], dtype), beta=0, alpha=scales[0])
    if all(s == scales[0] for s in scales):
        A_cat = torch.cat([_cast(A, dtype) for A in As])  # (sum r, in): tiny
        return dx.addmm_(torch.cat(dyBs, dim=1), A_cat, beta=0, alpha=scales[0])
    # different scales: fold each into its A in fp32 before the cast (tiny tensors)
    A_cat = torch.cat([(A.float() * s).to(dtype) for A, s in zip(As, scales)])
    return dx.addmm_(torch.cat(dyBs, dim=1), A_cat, beta=0)


# whether CUDA's addmm writes an fp32 result of bf16/fp16 operands (``out_dtype``, torch >= 2.8): None until
# the first adapter gradient tries it (an eager step, before any CUDA graph capture), then True or False
_FP32_OUT_ADDMM: bool | None = None


def lowrank_grad(a, b, scale, dtype):
    """s * a @ b with s applied in the GEMM's fp32 epilogue (alpha; no separate scale pass), returned in
    ``dtype`` (the adapter's own, fp32 for peft's adapters on a bf16 model). On CUDA the fp32 result comes
    straight from the GEMM's fp32 accumulator (``out_dtype``): no bf16 rounding of dA and dB and no cast
    kernel after each (448 launches a Llama-7B step)."""
    global _FP32_OUT_ADDMM
    shape = (a.shape[0], b.shape[1])
    if (a.is_cuda and dtype == torch.float32 and a.dtype in (torch.bfloat16, torch.float16)
            and _FP32_OUT_ADDMM is not False):
        try:
            out = torch.addmm(torch.empty(shape, dtype=dtype, device=a.device), a, b, dtype, beta=0, alpha=scale)
            _FP32_OUT_ADDMM = True
            return out
        except (RuntimeError, TypeError):  # a torch without addmm's out_dtype: round through the input dtype
            _FP32_OUT_ADDMM = False
    out = torch.empty(shape, dtype=a.dtype, device=a.device)
    return _cast(out.addmm_(a, b, beta=0, alpha=scale), dtype)


def adapter_grads(dy, x2, xa, B, scale, grad_dtypes):
    """(dy B, dA, dB) of one LoRA projection: dA = s (dy B)^T x and dB = s dy^T (x A^T) both reduce over
    the tokens in the GEMM's fp32 accumulator; ``grad_dtypes`` are the adapters' own (A's, B's)."""
    dyB = dy @ _cast(B, dy.dtype)  # (N, r)
    return dyB, lowrank_grad(dyB.t(), x2, scale, grad_dtypes[0]), lowrank_grad(dy.t(), xa, scale, grad_dtypes[1])


def shared_xa(x2, As):
    """x2 A_i^T of several adapters of one input as one GEMM over their concatenated ranks (x is read once):
    the (N, sum r) product and its column slices, one per adapter."""
    xa = x2 @ torch.cat(As).t()
    return xa, xa.split([A.shape[0] for A in As], dim=1)


def shared_dA(dyBs, x2, scales, dtypes):
    """dA_i = s_i (dy_i B_i)^T x for adapters of one input x: one GEMM over the concatenated ranks (x read
    once) when the scales and adapter dtypes agree, else one each; row slices of one buffer in the first case."""
    if len(dyBs) > 1 and all(s == scales[0] for s in scales) and all(d == dtypes[0] for d in dtypes):
        dA = lowrank_grad(torch.cat(dyBs, dim=1).t(), x2, scales[0], dtypes[0])
        return list(dA.split([dyB.shape[1] for dyB in dyBs]))
    return [lowrank_grad(dyB.t(), x2, s, d) for dyB, s, d in zip(dyBs, scales, dtypes)]


def input_grad(dy, W, dyBs=(), As=(), scales=()):
    """dy W + sum_i s_i (dy_i B_i) A_i: the low-rank terms written first (one GEMM, ``input_grad_lora``),
    then the base GEMM adds into them (beta=1), as in forward."""
    Wc = _cast(W, dy.dtype)
    if not dyBs:
        return dy @ Wc
    return input_grad_lora(dyBs, As, scales, W.shape[1], dy).addmm_(dy, Wc)


def projection_backward(dy, x2, W, A, B, scale, xa, need_dx, grad_dtypes):
    """Returns (dx, dA, dB). A and B come in the compute dtype (cast once in forward and saved);
    ``grad_dtypes`` are the adapters' own dtypes for dA and dB."""
    dA = dB = None
    lowrank = ((), (), ())
    if A is not None:
        dyB, dA, dB = adapter_grads(dy, x2, xa, B, scale, grad_dtypes)
        lowrank = ([dyB], [A], [scale])
    return (input_grad(dy, W, *lowrank) if need_dx else None), dA, dB


def _adapters(dtype, *tensors):
    """The adapters cast to the compute dtype once per forward and saved for backward as cast, so the
    backward casts nothing: at 13B micro-batch 1 the step is host-bound and every launch saved counts."""
    return [_cast(t, dtype) for t in tensors]


def _dtypes(*tensors):
    return tuple(None if t is None else t.dtype for t in tensors)


class LoRALinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, bias, A, B, scale):
        dtype = compute_dtype(x)
        shape = x.shape
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        Ac, Bc = _adapters(dtype, A, B)
        with torch.autocast(x.device.type, enabled=False):
            y, xa = projection_forward(x2, W, bias, Ac, Bc, scale, out_shape=(*shape[:-1], W.shape[0]))
        ctx.save_for_backward(x2, W, Ac, Bc, xa)
        ctx.scale, ctx.x_dtype, ctx.has_bias = scale, x.dtype, bias is not None
        ctx.grad_dtypes = _dtypes(A, B)
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, W, A, B, xa = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        need_dx = ctx.needs_input_grad[0]
        dx, dA, dB = projection_backward(dy2, x2, W, A, B, ctx.scale, xa, need_dx, grad_dtypes=ctx.grad_dtypes)
        if dx is not None:
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        dbias = dy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, None, dbias, dA, dB, None


def lora_linear(x, W, bias=None, A=None, B=None, scale=1.0):
    """``x W^T + scale (x A^T) B^T + bias``; W frozen (no gradient is formed for it)."""
    return LoRALinearFunction.apply(x, W, bias, A, B, scale)


class LoRASharedInputFunction(torch.autograd.Function):
    """Several LoRA projections of one input (an attention's q, k and v) in one autograd node.

    Apart, each projection reads x for its own x A^T in forward and for its own dA in backward, writes its
    own dx, and autograd adds the three dx with two more (tokens x hidden) passes. Together:
    - forward: x A^T for all of them is one GEMM over the concatenated ranks;
    - backward: dA for all of them is one GEMM ([dy_1 B_1 | dy_2 B_2 | ...]^T x, when the scales and
      adapter dtypes agree), and dx is one buffer: the low-rank terms as one GEMM (``input_grad_lora``),
      then each base GEMM accumulating into it (beta=1); no separate adds.
    ``flat``: (W, bias, A, B, scale) of each projection, one after another; every one has an adapter."""

    @staticmethod
    def forward(ctx, x, *flat):
        specs = [flat[i:i + 5] for i in range(0, len(flat), 5)]
        dtype = compute_dtype(x)
        shape = x.shape
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        As = _adapters(dtype, *(s[2] for s in specs))
        Bs = _adapters(dtype, *(s[3] for s in specs))
        ctx.grad_dtypes = [_dtypes(s[2], s[3]) for s in specs]
        outs = []
        with torch.autocast(x.device.type, enabled=False):
            xa, xas = shared_xa(x2, As)  # (N, sum of ranks) and its slices
            for (W, bias, _, _, scale), A, B, xa_j in zip(specs, As, Bs, xas):
                y, _ = projection_forward(x2, W, bias, A, B, scale, out_shape=(*shape[:-1], W.shape[0]), xa=xa_j)
                outs.append(y)
        ctx.save_for_backward(x2, xa, *(s[0] for s in specs), *As, *Bs)
        ctx.scales, ctx.x_dtype = [s[4] for s in specs], x.dtype
        ctx.has_bias = [s[1] is not None for s in specs]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *dys):
        n = len(ctx.scales)
        x2, xa, *rest = ctx.saved_tensors
        Ws, As, Bs = rest[:n], rest[n:2 * n], rest[2 * n:]
        scales, gdt = ctx.scales, ctx.grad_dtypes
        dy2s = [dy.reshape(-1, dy.shape[-1]).to(x2.dtype) for dy in dys]
        dyBs = [dy2 @ B for dy2, B in zip(dy2s, Bs)]  # (N, r) each
        dAs = shared_dA(dyBs, x2, scales, [g[0] for g in gdt])
        xas = xa.split([A.shape[0] for A in As], dim=1)  # as forward sliced it
        dBs = [lowrank_grad(dy2.t(), xa_j, s, g[1]) for dy2, xa_j, s, g in zip(dy2s, xas, scales, gdt)]
        dx = None
        if ctx.needs_input_grad[0]:
            dx = input_grad_lora(dyBs, As, scales, x2.shape[1], x2)
            for dy2, W in zip(dy2s, Ws):
                dx.addmm_(dy2, _cast(W, dy2.dtype))
            dx = dx.view(*dys[0].shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        grads = [dx]
        for j in range(n):
            dbias = dy2s[j].sum(0) if ctx.has_bias[j] and ctx.needs_input_grad[2 + 5 * j] else None
            grads += [None, dbias, dAs[j], dBs[j], None]
        return tuple(grads)


def lora_shared_input(x, specs):
    """The projections ``specs`` ((W, bias, A, B, scale) each, every one with an adapter) of one input x, as
    one autograd node: a tuple of their outputs."""
    return LoRASharedInputFunction.apply(x, *(t for spec in specs for t in spec))


class LoRAMLPFunction(torch.autograd.Function):
    """down(silu(gate(x)) * up(x)) with each projection optionally LoRA-adapted."""

    @staticmethod
    def forward(ctx, x, Wg, bg, Ag, Bg, Wu, bu, Au, Bu, Wd, bd, Ad, Bd, sg, su, sd, need_out=True,
                owner=None, stash=None):
        dtype = compute_dtype(x)
        shape = x.shape
        out_shape = (*shape[:-1], Wd.shape[0])
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        ctx.grad_dtypes = _dtypes(Ag, Bg, Au, Bu, Ad, Bd)
        Ag, Bg, Au, Bu, Ad, Bd = _adapters(dtype, Ag, Bg, Au, Bu, Ad, Bd)
        # a recompute whose node was handed this module's stash: e, g and the low-rank inputs as the first
        # forward made them, fetched from host memory instead of two GEMMs (kernels/schedule/mlp_stash.py)
        stashed = None if owner is None else mlp_stash.take(owner, (x2.shape[0], Wg.shape[0]), dtype)
        with torch.autocast(x.device.type, enabled=False):
            if stashed is None or stashed[0] is None:
                ha_d = None if stashed is None else stashed[4]  # a SmallStash: h A_d^T only
                xa_g = xa_u = None
                if Ag is not None and Au is not None:  # gate and up share x: one x A^T GEMM for both
                    _, (xa_g, xa_u) = shared_xa(x2, (Ag, Au))
                e, xa_g = projection_forward(x2, Wg, bg, Ag, Bg, sg, xa=xa_g)
                g, xa_u = projection_forward(x2, Wu, bu, Au, Bu, su, xa=xa_u)
            else:
                e, g, xa_g, xa_u, ha_d = stashed
            if need_out:
                h = swiglu_forward(e, g)
                y, ha_d = projection_forward(h, Wd, bd, Ad, Bd, sd, out_shape=out_shape)
            else:
                # a checkpoint recompute whose output nobody reads: only what backward saves is rebuilt
                # (h A_d^T for dB_d, unless the first forward kept it); the output is left unwritten
                if ha_d is None and Ad is not None:
                    ha_d = swiglu_forward(e, g) @ Ad.t()
                y = torch.empty(out_shape, dtype=dtype, device=x.device)
        if stash and owner is not None and any(ctx.needs_input_grad):
            if stash == "small":
                if ha_d is not None:
                    ctx.stash = mlp_stash.SmallStash(owner, ha_d)
            else:
                ctx.stash = mlp_stash.MLPStash(owner, e, g, (xa_g, xa_u, ha_d), on_device=stash == "device")
        # h is dropped here and recomputed in backward from e and g (one fused elementwise pass)
        ctx.save_for_backward(x2, e, g, xa_g, xa_u, ha_d, Wg, Ag, Bg, Wu, Au, Bu, Wd, Ad, Bd)
        ctx.scales = (sg, su, sd)
        ctx.x_dtype = x.dtype
        ctx.has_bias = (bg is not None, bu is not None, bd is not None)
        return y

    @staticmethod
    def backward(ctx, dy):
        mlp_stash.prefetch_latest(dy.device)
        # reading the saved tensors starts the checkpoint's recompute (if any); our stash goes with it
        with mlp_stash.handing(getattr(ctx, "stash", None)):
            x2, e, g, xa_g, xa_u, ha_d, Wg, Ag, Bg, Wu, Au, Bu, Wd, Ad, Bd = ctx.saved_tensors
        ctx.stash = None
        sg, su, sd = ctx.scales
        gdt = ctx.grad_dtypes
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        need = ctx.needs_input_grad
        # down: dh = dy Wd + sd (dy Bd) Ad, the low-rank term written first and the base GEMM adding
        # into it (beta=1); its adapter gradient needs h itself, so dA_d waits for h
        dyB_d = dy2 @ _cast(Bd, dy2.dtype) if Ad is not None else None
        dh = input_grad(dy2, Wd, *(([dyB_d], [Ad], [sd]) if Ad is not None else ()))
        # one pass: reads dh, e, g; writes h over dh, de over e, dg over g (all three are ours and dead)
        de, dg, h = swiglu_backward(dh, e, g, in_place=True, store_h=Ad is not None)
        dA_d = dB_d = None
        if Ad is not None:
            dA_d = lowrank_grad(dyB_d.t(), h, sd, gdt[4])
            dB_d = lowrank_grad(dy2.t(), ha_d, sd, gdt[5])
        need_dx = need[0]
        # gate and up share x: their adapter gradients first, then both low-rank input-gradient terms as
        # one GEMM over the concatenated ranks, then the two base GEMMs accumulating into it
        dA_g = dB_g = dA_u = dB_u = None
        dyBs, As, ss = [], [], []
        if Ag is not None and Au is not None:
            # both dA as one reduction over the tokens (x read once), as their x A^T was one GEMM in forward
            dyBs, As, ss = [de @ Bg, dg @ Bu], [Ag, Au], [sg, su]
            dA_g, dA_u = shared_dA(dyBs, x2, ss, (gdt[0], gdt[2]))
            dB_g = lowrank_grad(de.t(), xa_g, sg, gdt[1])
            dB_u = lowrank_grad(dg.t(), xa_u, su, gdt[3])
        elif Ag is not None:
            dyB_g, dA_g, dB_g = adapter_grads(de, x2, xa_g, Bg, sg, gdt[0:2])
            dyBs.append(dyB_g), As.append(Ag), ss.append(sg)
        elif Au is not None:
            dyB_u, dA_u, dB_u = adapter_grads(dg, x2, xa_u, Bu, su, gdt[2:4])
            dyBs.append(dyB_u), As.append(Au), ss.append(su)
        dx = None
        if need_dx:
            dx = input_grad(de, Wg, dyBs, As, ss)
            dx.addmm_(dg, _cast(Wu, dg.dtype))
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        hb = ctx.has_bias
        dbg = de.sum(0) if hb[0] and need[2] else None
        dbu = dg.sum(0) if hb[1] and need[6] else None
        dbd = dy2.sum(0) if hb[2] and need[10] else None
        return (dx, None, dbg, dA_g, dB_g, None, dbu, dA_u, dB_u, None, dbd, dA_d, dB_d,
                None, None, None, None, None, None)


def lora_mlp(x, gate, up, down, need_out=True, owner=None, stash=None):
    """gate, up, down: tuples (W, bias, A, B, scale) with A, B None for a projection without adapter.

    ``need_out=False`` returns an unwritten tensor of the output's shape and skips the down projection:
    only for a gradient-checkpointing recompute whose output is never read (the backward is unchanged).
    ``owner`` (the MLP module) lets a recompute use the e and g its first forward kept in host memory;
    ``stash="host"`` (that first forward, checkpointed) keeps them in host memory, ``"device"`` on the
    device, ``"small"`` only h A_d^T (on the device) for a trimmed recompute: kernels/schedule/mlp_stash.py."""
    (Wg, bg, Ag, Bg, sg), (Wu, bu, Au, Bu, su), (Wd, bd, Ad, Bd, sd) = gate, up, down
    return LoRAMLPFunction.apply(x, Wg, bg, Ag, Bg, Wu, bu, Au, Bu, Wd, bd, Ad, Bd, sg, su, sd, need_out,
                                 owner, stash)
