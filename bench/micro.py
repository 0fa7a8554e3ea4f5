"""Per-kernel timings at Llama-7B shapes (4 x 2048 tokens): ours vs PyTorch eager vs torch.compile(eager).

Each op is timed forward + backward (the training cost), median of ``triton.testing.do_bench`` on random
bf16 data, and reported with the achieved rate: GB/s for the memory-bound ops (bytes = each tensor the
op must read or write, once), TFLOP/s for the matmul ops. One row per op in the results table
(harness.py), source `micro`.

RoPE is timed alone: ours rotates q and k in place, so each call needs fresh copies; they are made
before each call outside the timed region (with the L2 flush do_bench does), for all three columns, and
the timed region is the rotation's forward and backward only (``_bench_with_setup``; the row's
``timing`` says so). Copying inside the timed region, as before, charged ours for copies that
torch.compile fuses into its rotation.

    python bench/micro.py [--ops rms_norm,swiglu,...] [--no-compile]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
import triton

import harness
from contract_review.kernels.ops.fused_linear_cross_entropy import fused_linear_cross_entropy
from contract_review.kernels.ops.lora import lora_linear, lora_mlp
from contract_review.kernels.ops.rms_norm import rms_norm
from contract_review.kernels.ops.rope import rope
from contract_review.kernels.ops.swiglu import swiglu

N, D, FF, V, H, HD, R = 4 * 2048, 4096, 11008, 32000, 32, 128, 16
BF = torch.bfloat16


def _bench(fn, reps_ms=400):
    return triton.testing.do_bench(fn, warmup=100, rep=reps_ms, return_mode="median")


_FLUSH = None


def _bench_with_setup(setup, fn, warmup=10, reps=100):
    """Median ms of ``fn(setup())`` timing ``fn`` alone: ``setup`` (fresh inputs) and an L2 flush (a
    256 MB write, as do_bench's) run before each call, outside the CUDA events that bracket it."""
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")
    for _ in range(warmup):
        fn(setup())
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        args = setup()
        _FLUSH.zero_()
        starts[i].record()
        fn(args)
        ends[i].record()
    torch.cuda.synchronize()
    ts = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return ts[len(ts) // 2]


TIMING_DEFAULT = "forward+backward, median ms (triton do_bench)"


def op_rms_norm():
    x = torch.randn(N, D, device="cuda", dtype=BF, requires_grad=True)
    w = torch.randn(D, device="cuda", dtype=BF)
    dy = torch.randn(N, D, device="cuda", dtype=BF)

    def eager(x, w):
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype)

    return dict(ours=lambda: rms_norm(x, w, 1e-5).backward(dy), eager=lambda: eager(x, w).backward(dy),
                compile_fn=eager, compile_call=lambda f: f(x, w).backward(dy), bytes=5 * N * D * 2)


def op_swiglu():
    e = torch.randn(N, FF, device="cuda", dtype=BF, requires_grad=True)
    g = torch.randn(N, FF, device="cuda", dtype=BF, requires_grad=True)
    dh = torch.randn(N, FF, device="cuda", dtype=BF)

    def eager(e, g):
        return F.silu(e) * g

    return dict(ours=lambda: swiglu(e, g).backward(dh), eager=lambda: eager(e, g).backward(dh),
                compile_fn=eager, compile_call=lambda f: f(e, g).backward(dh), bytes=8 * N * FF * 2)


def op_rope():
    B, T = 4, 2048
    q0 = torch.randn(B, T, H * HD, device="cuda", dtype=BF, requires_grad=True)
    k0 = torch.randn(B, T, H * HD, device="cuda", dtype=BF, requires_grad=True)
    inv = 1.0 / (10000 ** (torch.arange(0, HD, 2, device="cuda").float() / HD))
    fr = torch.arange(T, device="cuda").float()[:, None] * inv
    emb = torch.cat([fr, fr], -1)[None]
    cos, sin = emb.cos().to(BF), emb.sin().to(BF)
    dq = torch.randn(B, H, T, HD, device="cuda", dtype=BF)
    dk = torch.randn(B, H, T, HD, device="cuda", dtype=BF)

    def setup():
        # fresh projection-like outputs for each call, made outside the timed region (ours rotates them in
        # place); clone's backward hands the gradient through unchanged (no kernel)
        return q0.clone(), k0.clone()

    def rot(x):
        return torch.cat([-x[..., HD // 2:], x[..., :HD // 2]], -1)

    def eager(q, k):
        c, s = cos[:, None], sin[:, None]
        return q * c + rot(q) * s, k * c + rot(k) * s

    def run(f, qk):
        # the transposed views the attention hands to apply_rotary_pos_emb; gradients go straight in (no
        # loss op, no accumulation into .grad): the timed work is the rotation forward and backward
        qc, kc = qk
        q, k = f(qc.view(B, T, H, HD).transpose(1, 2), kc.view(B, T, H, HD).transpose(1, 2))
        torch.autograd.grad((q, k), (q0, k0), (dq, dk))

    # bytes of the rotation itself: q and k read and written, forward and backward
    return dict(setup=setup, ours=lambda qk: run(lambda q, k: rope(q, k, cos, sin), qk),
                eager=lambda qk: run(eager, qk), compile_fn=eager, compile_call=lambda f, qk: run(f, qk),
                bytes=8 * B * T * H * HD * 2,
                timing="rotation alone: forward+backward of the q,k rotation on pre-made copies (copy and L2 "
                       "flush before each call, outside the timed region; same in all three columns); "
                       "CUDA events per call, median ms of 100")


def op_fused_linear_cross_entropy():
    h = torch.randn(N, D, device="cuda", dtype=BF, requires_grad=True)
    w = torch.randn(V, D, device="cuda", dtype=BF) / D**0.5
    labels = torch.randint(0, V, (N,), device="cuda")

    def eager(h, w):
        return F.cross_entropy((h @ w.t()).float(), labels)

    return dict(ours=lambda: fused_linear_cross_entropy(h, w, labels).backward(),
                eager=lambda: eager(h, w).backward(), compile_fn=eager,
                compile_call=lambda f: f(h, w).backward(), flops=4 * N * D * V)


def _peft_linear(x, W, A, B, s):
    # what peft's lora.Linear does: base in bf16, adapters on an fp32 copy of x, cast back
    y = x @ W.t()
    return (y + (x.to(A.dtype) @ A.t() @ B.t()) * s).to(y.dtype)


def op_lora_linear():
    x = torch.randn(N, D, device="cuda", dtype=BF, requires_grad=True)
    W = torch.randn(D, D, device="cuda", dtype=BF) / D**0.5
    A = (torch.randn(R, D, device="cuda") / D**0.5).requires_grad_()
    B = (torch.randn(D, R, device="cuda") / R).requires_grad_()
    dy = torch.randn(N, D, device="cuda", dtype=BF)
    return dict(ours=lambda: lora_linear(x, W, None, A, B, 2.0).backward(dy),
                eager=lambda: _peft_linear(x, W, A, B, 2.0).backward(dy), compile_fn=_peft_linear,
                compile_call=lambda f: f(x, W, A, B, 2.0).backward(dy), flops=4 * N * D * D)


def op_lora_mlp():
    x = torch.randn(N, D, device="cuda", dtype=BF, requires_grad=True)

    def proj(o, i):
        return (torch.randn(o, i, device="cuda", dtype=BF) / i**0.5, None,
                (torch.randn(R, i, device="cuda") / i**0.5).requires_grad_(),
                (torch.randn(o, R, device="cuda") / R).requires_grad_(), 2.0)

    g, u, d = proj(FF, D), proj(FF, D), proj(D, FF)
    dy = torch.randn(N, D, device="cuda", dtype=BF)

    def eager(x):
        return _peft_linear(F.silu(_peft_linear(x, g[0], g[2], g[3], 2.0)) * _peft_linear(x, u[0], u[2], u[3], 2.0),
                            d[0], d[2], d[3], 2.0)

    return dict(ours=lambda: lora_mlp(x, g, u, d).backward(dy), eager=lambda: eager(x).backward(dy),
                compile_fn=eager, compile_call=lambda f: f(x).backward(dy), flops=12 * N * D * FF)


OPS = {"rms_norm": op_rms_norm, "swiglu": op_swiglu, "rope": op_rope,
       "fused_linear_cross_entropy": op_fused_linear_cross_entropy, "lora_linear": op_lora_linear,
       "lora_mlp": op_lora_mlp}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-budget-s", type=float, default=240, help="skip torch.compile once this is spent")
    ap.add_argument("--out", default=None, help="results table (default: $BENCH_RESULTS or bench/results/runs.jsonl)")
    args = ap.parse_args(argv)
    unknown = [o for o in args.ops.split(",") if o not in OPS]
    if unknown:
        ap.error(f"unknown op(s) {unknown}; choose from {','.join(OPS)}")
    if not torch.cuda.is_available():
        ap.error("the micro benchmarks time compiled Triton kernels: they need a CUDA device")
    compile_spent = 0.0
    rows = []
    for name in args.ops.split(","):
        spec = OPS[name]()
        row = dict(harness.record("micro"), op=name, shape=f"tokens={N} hidden={D} ffn={FF} vocab={V}",
                   dtype="bfloat16", what="forward+backward, median ms", timing=spec.get("timing", TIMING_DEFAULT))
        setup = spec.get("setup")
        if setup is None:
            bench = _bench
            compile_call = spec["compile_call"]
        else:  # timed without its setup: fn takes what setup() made
            def bench(fn, setup=setup):
                return _bench_with_setup(setup, fn)

            def compile_call(f, spec=spec, setup=setup):
                return lambda args=None: spec["compile_call"](f, setup() if args is None else args)
        for col in ("ours", "eager"):
            torch.cuda.reset_peak_memory_stats()
            row[f"{col}_ms"] = bench(spec[col])
            row[f"{col}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if not args.no_compile and compile_spent < args.compile_budget_s:
            t = time.time()
            try:
                f = torch.compile(spec["compile_fn"])
                if setup is None:
                    compile_call(f)  # compile outside the timing
                    timed = lambda: compile_call(f)  # noqa: E731
                else:
                    timed = compile_call(f)
                    timed()  # compile outside the timing
                torch.cuda.reset_peak_memory_stats()
                row["compile_ms"] = bench(timed)
                row["compile_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            except Exception as e:  # noqa: BLE001
                row["compile_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            compile_spent += time.time() - t
        for col in ("ours", "eager", "compile"):
            ms = row.get(f"{col}_ms")
            if ms is None:
                continue
            if "bytes" in spec:
                row[f"{col}_gbps"] = spec["bytes"] / (ms * 1e-3) / 1e9
            if "flops" in spec:
                row[f"{col}_tflops"] = spec["flops"] / (ms * 1e-3) / 1e12
        rows.append(row)
        harness.append(row, args.out)  # row by row: a run stopped by its time cap keeps what it measured
        del spec
        torch.cuda.empty_cache()
    print(f"{'op':28s} {'ours ms':>8s} {'eager ms':>8s} {'compile':>8s}  rate (ours / eager / compile)")
    for r in rows:
        unit = "gbps" if "ours_gbps" in r else "tflops"
        rates = " / ".join(f"{r.get(f'{c}_{unit}', float('nan')):.0f}" for c in ("ours", "eager", "compile"))
        print(f"{r['op']:28s} {r['ours_ms']:8.3f} {r['eager_ms']:8.3f} {r.get('compile_ms', float('nan')):8.3f}  "
              f"{rates} {'GB/s' if unit == 'gbps' else 'TFLOP/s'}")


if __name__ == "__main__":
    sys.exit(main())
