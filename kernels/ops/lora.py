"""LoRA-aware projections: the frozen base matmul and the low-rank update in one autograd node.

    y = x W^T + s * (x A^T) B^T (+ bias)       W: (out, in) frozen, A: (r, in), B: (out, r), s = alpha / r

Layout: the projection helpers (forward and backward of one projection), then three autograd Functions:
``LoRALinearFunction`` (one projection: o, or q, k, v apart), ``LoRASharedInputFunction`` (q, k and v of
one input together) and ``LoRAMLPFunction`` (gate, up, SwiGLU, down).

LoRA dropout (peft's ``y = x W^T + s * B(A(drop(x)))``, the branch input dropped) is a projection's sixth
spec entry, a ``LoRADropout``: its x A^T, its dA and the branch's part of dx then come from the Triton
kernels of kernels/ops/lora_dropout.py, which draw the mask in-kernel and rebuild it in backward (and in a
checkpoint's recompute); everything else is as below. Adapters of one input with dropout each have their
own mask (as peft's modules do), so their x A^T and dA are one kernel each instead of one shared GEMM.

Why this is faster than peft's module stack:
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

DoRA and other variants do not come here: ``kernels.patch`` sends them to peft's forward
(kernels/patching/eligibility.py).
"""

from __future__ import annotations

import torch

from contract_review.kernels.ops._utils import compute_dtype
from contract_review.kernels.ops.lora_dropout import dropout_backward, dropout_xa
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


def projection_backward(dy, x2, W, A, B, scale, xa, need_dx, grad_dtypes, drop=None):
    """Returns (dx, dA, dB). A and B come in the compute dtype (cast once in forward and saved);
    ``grad_dtypes`` are the adapters' own dtypes for dA and dB; ``drop``: the branch's dropout."""
    if A is None:
        return (input_grad(dy, W) if need_dx else None), None, None
    dyBs, (dA,), dx = lowrank_backward(x2, [dy], [A], [B], [scale], [drop], [grad_dtypes[0]], need_dx)
    dB = lowrank_grad(dy.t(), xa, scale, grad_dtypes[1])
    if need_dx:
        dx.addmm_(dy, _cast(W, dy.dtype))
    return dx, dA, dB


def lowrank_backward(x2, dys, As, Bs, scales, drops, a_dtypes, need_dx):
    """Adapters of one input x2: (dy_i B_i, dA_i, the low-rank part of dx in a fresh (N, in) buffer or None).

    Without dropout the dA are one GEMM over the concatenated ranks (``shared_dA``) and the dx terms one
    more (``input_grad_lora``); an adapter with dropout takes one kernel for its dA and its dx term (the
    mask rebuilt once for both), which adds its term into the same buffer. The base GEMMs then accumulate
    into dx (beta=1)."""
    dyBs = [dy @ _cast(B, dy.dtype) for dy, B in zip(dys, Bs)]  # (N, r) each
    dAs = [None] * len(dys)
    plain = [i for i, d in enumerate(drops) if d is None]
    if plain:
        for i, dA in zip(plain, shared_dA([dyBs[i] for i in plain], x2, [scales[i] for i in plain],
                                          [a_dtypes[i] for i in plain])):
            dAs[i] = dA
    dx = None
    if need_dx and plain:
        dx = input_grad_lora([dyBs[i] for i in plain], [As[i] for i in plain], [scales[i] for i in plain],
                             x2.shape[1], x2)
    for i, drop in enumerate(drops):
        if drop is None:
            continue
        accumulate = dx is not None
        if need_dx and dx is None:
            dx = torch.empty_like(x2)  # the first dropped term writes it whole (the kernel's stores, no read)
        dAs[i] = dropout_backward(dyBs[i], x2, As[i], drop, scales[i], dx=dx if need_dx else None,
                                  accumulate=accumulate, grad_dtype=a_dtypes[i])
    return dyBs, dAs, dx


def lowrank_inputs(x2, As, drops):
    """x2 A_i^T of adapters of one input: one GEMM over the concatenated ranks when none has dropout
    (``shared_xa``), else one each, the dropped ones through the dropout kernel."""
    if all(d is None for d in drops):
        return list(shared_xa(x2, As)[1]) if len(As) > 1 else [x2 @ As[0].t()]
    return [x2 @ A.t() if d is None else dropout_xa(x2, A, d) for A, d in zip(As, drops)]


def _spec(spec):
    """(W, bias, A, B, scale, dropout): a five-entry spec has no dropout."""
    return tuple(spec) if len(spec) == 6 else (*spec, None)


def _adapters(dtype, *tensors):
    """The adapters cast to the compute dtype once per forward and saved for backward as cast, so the
    backward casts nothing: at 13B micro-batch 1 the step is host-bound and every launch saved counts."""
    return [_cast(t, dtype) for t in tensors]


def _dtypes(*tensors):
    return tuple(None if t is None else t.dtype for t in tensors)


class LoRALinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, bias, A, B, scale, drop=None):
        dtype = compute_dtype(x)
        shape = x.shape
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        Ac, Bc = _adapters(dtype, A, B)
        with torch.autocast(x.device.type, enabled=False):
            xa = dropout_xa(x2, Ac, drop) if drop is not None and Ac is not None else None
            y, xa = projection_forward(x2, W, bias, Ac, Bc, scale, out_shape=(*shape[:-1], W.shape[0]), xa=xa)
        ctx.save_for_backward(x2, W, Ac, Bc, xa)
        ctx.scale, ctx.x_dtype, ctx.has_bias, ctx.drop = scale, x.dtype, bias is not None, drop
        ctx.grad_dtypes = _dtypes(A, B)
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, W, A, B, xa = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        need_dx = ctx.needs_input_grad[0]
        dx, dA, dB = projection_backward(dy2, x2, W, A, B, ctx.scale, xa, need_dx, grad_dtypes=ctx.grad_dtypes,
                                         drop=ctx.drop)
        if dx is not None:
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        dbias = dy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, None, dbias, dA, dB, None, None


def lora_linear(x, W, bias=None, A=None, B=None, scale=1.0, drop=None):
    """``x W^T + scale B(A(drop(x))) + bias``; W frozen (no gradient is formed for it); ``drop`` a
    ``LoRADropout`` or None."""
    return LoRALinearFunction.apply(x, W, bias, A, B, scale, drop)


class LoRASharedInputFunction(torch.autograd.Function):
    """Several LoRA projections of one input (an attention's q, k and v) in one autograd node.

    Apart, each projection reads x for its own x A^T in forward and for its own dA in backward, writes its
    own dx, and autograd adds the three dx with two more (tokens x hidden) passes. Together:
    - forward: x A^T for all of them is one GEMM over the concatenated ranks;
    - backward: dA for all of them is one GEMM ([dy_1 B_1 | dy_2 B_2 | ...]^T x, when the scales and
      adapter dtypes agree), and dx is one buffer: the low-rank terms as one GEMM (``input_grad_lora``),
      then each base GEMM accumulating into it (beta=1); no separate adds.
    With dropout each projection's x A^T and dA is its own dropout kernel (its own mask), and its dx term
    is added into the same buffer (``lowrank_backward``).
    ``flat``: (W, bias, A, B, scale, dropout) of each projection, one after another; every one has an adapter."""

    @staticmethod
    def forward(ctx, x, *flat):
        specs = [flat[i:i + 6] for i in range(0, len(flat), 6)]
        dtype = compute_dtype(x)
        shape = x.shape
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        As = _adapters(dtype, *(s[2] for s in specs))
        Bs = _adapters(dtype, *(s[3] for s in specs))
        drops = [s[5] for s in specs]
        ctx.grad_dtypes = [_dtypes(s[2], s[3]) for s in specs]
        outs = []
        with torch.autocast(x.device.type, enabled=False):
            xas = lowrank_inputs(x2, As, drops)  # (N, r_i) each: slices of one GEMM without dropout
            for (W, bias, _, _, scale, _), A, B, xa_j in zip(specs, As, Bs, xas):
                y, _ = projection_forward(x2, W, bias, A, B, scale, out_shape=(*shape[:-1], W.shape[0]), xa=xa_j)
                outs.append(y)
        ctx.save_for_backward(x2, *xas, *(s[0] for s in specs), *As, *Bs)
        ctx.scales, ctx.x_dtype, ctx.drops = [s[4] for s in specs], x.dtype, drops
        ctx.has_bias = [s[1] is not None for s in specs]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *dys):
        n = len(ctx.scales)
        x2, *rest = ctx.saved_tensors
        xas, Ws, As, Bs = rest[:n], rest[n:2 * n], rest[2 * n:3 * n], rest[3 * n:]
        scales, gdt = ctx.scales, ctx.grad_dtypes
        dy2s = [dy.reshape(-1, dy.shape[-1]).to(x2.dtype) for dy in dys]
        need_dx = ctx.needs_input_grad[0]
        _, dAs, dx = lowrank_backward(x2, dy2s, As, Bs, scales, ctx.drops, [g[0] for g in gdt], need_dx)
        dBs = [lowrank_grad(dy2.t(), xa_j, s, g[1]) for dy2, xa_j, s, g in zip(dy2s, xas, scales, gdt)]
        if need_dx:
            for dy2, W in zip(dy2s, Ws):
                dx.addmm_(dy2, _cast(W, dy2.dtype))
            dx = dx.view(*dys[0].shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        grads = [dx]
        for j in range(n):
            dbias = dy2s[j].sum(0) if ctx.has_bias[j] and ctx.needs_input_grad[2 + 6 * j] else None
            grads += [None, dbias, dAs[j], dBs[j], None, None]
        return tuple(grads)


def lora_shared_input(x, specs):
    """The projections ``specs`` ((W, bias, A, B, scale[, dropout]) each, every one with an adapter) of one
    input x, as one autograd node: a tuple of their outputs."""
    return LoRASharedInputFunction.apply(x, *(t for spec in specs for t in _spec(spec)))


class LoRAMLPFunction(torch.autograd.Function):
    """down(silu(gate(x)) * up(x)) with each projection optionally LoRA-adapted (``drops``: each one's
    dropout or None)."""

    @staticmethod
    def forward(ctx, x, Wg, bg, Ag, Bg, Wu, bu, Au, Bu, Wd, bd, Ad, Bd, sg, su, sd, drops=(None, None, None),
                need_out=True, owner=None, stash=None):
        dtype = compute_dtype(x)
        shape = x.shape
        out_shape = (*shape[:-1], Wd.shape[0])
        x2 = _cast(x.reshape(-1, shape[-1]), dtype)
        ctx.grad_dtypes = _dtypes(Ag, Bg, Au, Bu, Ad, Bd)
        Ag, Bg, Au, Bu, Ad, Bd = _adapters(dtype, Ag, Bg, Au, Bu, Ad, Bd)
        drop_g, drop_u, drop_d = drops
        # a recompute whose node was handed this module's stash: e, g and the low-rank inputs as the first
        # forward made them, fetched from host memory instead of two GEMMs (kernels/schedule/mlp_stash.py)
        stashed = None if owner is None else mlp_stash.take(owner, (x2.shape[0], Wg.shape[0]), dtype)
        with torch.autocast(x.device.type, enabled=False):
            if stashed is None or stashed[0] is None:
                ha_d = None if stashed is None else stashed[4]  # a SmallStash: h A_d^T only
                xa_g = xa_u = None
                adapted = [(A, d) for A, d in ((Ag, drop_g), (Au, drop_u)) if A is not None]
                if len(adapted) == 2 or any(d is not None for _, d in adapted):
                    # gate and up share x: one x A^T GEMM for both (without dropout)
                    xas = iter(lowrank_inputs(x2, [A for A, _ in adapted], [d for _, d in adapted]))
                    xa_g = next(xas) if Ag is not None else None
                    xa_u = next(xas) if Au is not None else None
                e, xa_g = projection_forward(x2, Wg, bg, Ag, Bg, sg, xa=xa_g)
                g, xa_u = projection_forward(x2, Wu, bu, Au, Bu, su, xa=xa_u)
            else:
                e, g, xa_g, xa_u, ha_d = stashed
            if need_out:
                h = swiglu_forward(e, g)
                ha = dropout_xa(h, Ad, drop_d) if Ad is not None and drop_d is not None else None
                y, ha_d = projection_forward(h, Wd, bd, Ad, Bd, sd, out_shape=out_shape, xa=ha)
            else:
                # a checkpoint recompute whose output nobody reads: only what backward saves is rebuilt
                # (h A_d^T for dB_d, unless the first forward kept it); the output is left unwritten
                if ha_d is None and Ad is not None:
                    ha_d = lowrank_inputs(swiglu_forward(e, g), [Ad], [drop_d])[0]
                y = torch.empty(out_shape, dtype=dtype, device=x.device)
        if stash and owner is not None and any(ctx.needs_input_grad):
            if stash == "small":
                if ha_d is not None:
                    ctx.stash = mlp_stash.SmallStash(owner, ha_d)
            else:
                ctx.stash = mlp_stash.MLPStash(owner, e, g, (xa_g, xa_u, ha_d), on_device=stash == "device")
        # h is dropped here and recomputed in backward from e and g (one fused elementwise pass)
        ctx.save_for_backward(x2, e, g, xa_g, xa_u, ha_d, Wg, Ag, Bg, Wu, Au, Bu, Wd, Ad, Bd)
        ctx.scales, ctx.drops = (sg, su, sd), drops
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
        drop_g, drop_u, drop_d = ctx.drops
        gdt = ctx.grad_dtypes
        dy2 = dy.reshape(-1, dy.shape[-1]).to(x2.dtype)
        need = ctx.needs_input_grad
        # down: dh = dy Wd + sd (dy Bd) Ad (masked by down's dropout), the low-rank term written first and
        # the base GEMM adding into it (beta=1); its adapter gradient needs h itself, so dA_d waits for h
        dyB_d = dy2 @ _cast(Bd, dy2.dtype) if Ad is not None else None
        if Ad is not None and drop_d is not None:
            dh = torch.empty((dy2.shape[0], Wd.shape[1]), dtype=dy2.dtype, device=dy2.device)
            dropout_backward(dyB_d, None, Ad, drop_d, sd, dx=dh)
            dh.addmm_(dy2, _cast(Wd, dy2.dtype))
        else:
            dh = input_grad(dy2, Wd, *(([dyB_d], [Ad], [sd]) if Ad is not None else ()))
        # one pass: reads dh, e, g; writes h over dh, de over e, dg over g (all three are ours and dead)
        de, dg, h = swiglu_backward(dh, e, g, in_place=True, store_h=Ad is not None)
        dA_d = dB_d = None
        if Ad is not None:
            dA_d = (lowrank_grad(dyB_d.t(), h, sd, gdt[4]) if drop_d is None
                    else dropout_backward(dyB_d, h, Ad, drop_d, sd, grad_dtype=gdt[4]))
            dB_d = lowrank_grad(dy2.t(), ha_d, sd, gdt[5])
        need_dx = need[0]
        # gate and up share x: their adapter gradients (both dA one reduction over the tokens without
        # dropout), both low-rank input-gradient terms into one buffer, then the two base GEMMs into it
        adapted = [(dyx, A, B, s, d, gdt[k]) for dyx, A, B, s, d, k in
                   ((de, Ag, Bg, sg, drop_g, 0), (dg, Au, Bu, su, drop_u, 2)) if A is not None]
        dA_g = dB_g = dA_u = dB_u = None
        dx = None
        if adapted:
            _, dAs, dx = lowrank_backward(x2, *map(list, zip(*adapted)), need_dx)
            dAs = iter(dAs)
            if Ag is not None:
                dA_g, dB_g = next(dAs), lowrank_grad(de.t(), xa_g, sg, gdt[1])
            if Au is not None:
                dA_u, dB_u = next(dAs), lowrank_grad(dg.t(), xa_u, su, gdt[3])
        if need_dx:
            dx = input_grad(de, Wg) if dx is None else dx.addmm_(de, _cast(Wg, de.dtype))
            dx.addmm_(dg, _cast(Wu, dg.dtype))
            dx = dx.view(*dy.shape[:-1], dx.shape[-1]).to(ctx.x_dtype)
        hb = ctx.has_bias
        dbg = de.sum(0) if hb[0] and need[2] else None
        dbu = dg.sum(0) if hb[1] and need[6] else None
        dbd = dy2.sum(0) if hb[2] and need[10] else None
        return (dx, None, dbg, dA_g, dB_g, None, dbu, dA_u, dB_u, None, dbd, dA_d, dB_d,
                None, None, None, None, None, None, None)


def lora_mlp(x, gate, up, down, need_out=True, owner=None, stash=None):
    """gate, up, down: tuples (W, bias, A, B, scale[, dropout]) with A, B None for a projection without
    adapter, dropout a ``LoRADropout`` or None.

    ``need_out=False`` returns an unwritten tensor of the output's shape and skips the down projection:
    only for a gradient-checkpointing recompute whose output is never read (the backward is unchanged).
    ``owner`` (the MLP module) lets a recompute use the e and g its first forward kept in host memory;
    ``stash="host"`` (that first forward, checkpointed) keeps them in host memory, ``"device"`` on the
    device, ``"small"`` only h A_d^T (on the device) for a trimmed recompute: kernels/schedule/mlp_stash.py."""
    (Wg, bg, Ag, Bg, sg, dg), (Wu, bu, Au, Bu, su, du), (Wd, bd, Ad, Bd, sd, dd) = map(_spec, (gate, up, down))
    return LoRAMLPFunction.apply(x, Wg, bg, Ag, Bg, Wu, bu, Au, Bu, Wd, bd, Ad, Bd, sg, su, sd, (dg, du, dd),
                                 need_out, owner, stash)
