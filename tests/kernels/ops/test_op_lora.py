"""LoRA projections (base matmul + low-rank update in one node) and the fused LoRA MLP against float64."""

import pytest
import torch
from kernel_testing import DEVICE, DTYPES, check, shapes

from contract_review.kernels.ops.lora import lora_linear, lora_mlp, lora_shared_input

# (tokens, in, out, rank)
LINEAR = shapes(
    small=[(1, 8, 8, 1), (19, 33, 45, 4), (123, 123, 123, 16), (64, 64, 32, 8)],
    full=[(8192, 4096, 4096, 16), (8192, 4096, 1024, 16), (8192, 11008, 4096, 16), (615, 123, 123, 16)],
)
# (tokens, hidden, intermediate, rank)
MLP = shapes(
    small=[(7, 16, 40, 2), (123, 33, 47, 4), (64, 64, 172, 16)],
    full=[(8192, 4096, 11008, 16), (4096, 5120, 13824, 16), (615, 123, 345, 16)],
)


def _lora_params(out_f, in_f, r, dtype, with_adapter=True, bias=False):
    W = torch.randn(out_f, in_f, device=DEVICE, dtype=dtype) / in_f**0.5  # frozen base
    b = (0.1 * torch.randn(out_f, device=DEVICE, dtype=dtype)).requires_grad_() if bias else None
    if not with_adapter:
        return W, b, None, None, 0.0
    # adapters in fp32, as peft keeps them for a bf16 model; B non-zero so its path is exercised
    A = (torch.randn(r, in_f, device=DEVICE) / in_f**0.5).requires_grad_()
    B = (torch.randn(out_f, r, device=DEVICE) / r**0.5).requires_grad_()
    return W, b, A, B, 2.0


def _ref_linear(x, p):
    W, b, A, B, s = p
    y = x @ W.double().t()
    if A is not None:
        y = y + s * (x @ A.double().t()) @ B.double().t()
    return y if b is None else y + b.double()


def _leaves(p):
    return [t for t in (p[1], p[2], p[3]) if t is not None]


def _ref_leaves(p):
    W, b, A, B, s = p
    cp = lambda t: None if t is None else t.detach().double().requires_grad_()  # noqa: E731
    return (W, cp(b), cp(A), cp(B), s)


@pytest.mark.parametrize("shape", LINEAR, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_lora_linear_matches_float64_reference(shape, dtype, bias):
    n, i, o, r = shape
    x = torch.randn(2, n, i, device=DEVICE, dtype=dtype, requires_grad=True)
    p = _lora_params(o, i, r, dtype, bias=bias)
    y = lora_linear(x, *p)
    dy = torch.randn_like(y)
    y.backward(dy)
    xr, pr = x.detach().double().requires_grad_(), _ref_leaves(p)
    yr = _ref_linear(xr, pr)
    yr.backward(dy.double())
    assert y.dtype == dtype and p[0].grad is None
    check("y", y, yr, dtype)
    check("dx", x.grad, xr.grad, dtype)
    for name, t, tr in zip(("db", "dA", "dB") if bias else ("dA", "dB"), _leaves(p), _leaves(pr)):
        assert t.grad.dtype == t.dtype
        check(name, t.grad, tr.grad, dtype)


# (tokens, in, q out, k/v out, rank): an attention's q, k and v, with grouped-query k/v widths
QKV = shapes(
    small=[(1, 8, 8, 8, 1), (19, 33, 45, 15, 4), (64, 64, 64, 16, 8)],
    full=[(8192, 4096, 4096, 4096, 16), (8192, 4096, 4096, 1024, 16), (615, 123, 123, 41, 16)],
)


@pytest.mark.parametrize("shape", QKV, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
# mixed: biases (Qwen2's q/k/v), a different rank and scale for v (peft's rank/alpha patterns), which
# takes the per-projection dA path instead of one GEMM over the concatenated ranks
@pytest.mark.parametrize("variant", ["plain", "mixed"])
def test_shared_input_projections_match_float64_reference(shape, dtype, variant):
    n, i, oq, okv, r = shape
    mixed = variant == "mixed"
    x = torch.randn(2, n, i, device=DEVICE, dtype=dtype, requires_grad=True)
    ps = [_lora_params(oq, i, r, dtype, bias=mixed), _lora_params(okv, i, r, dtype, bias=mixed),
          _lora_params(okv, i, 2 * r if mixed else r, dtype, bias=mixed)]
    if mixed:
        ps[2] = (*ps[2][:4], 0.5)
    ys = lora_shared_input(x, ps)
    dys = [torch.randn_like(y) for y in ys]
    torch.autograd.backward(ys, dys)
    xr, prs = x.detach().double().requires_grad_(), [_ref_leaves(p) for p in ps]
    yrs = [_ref_linear(xr, pr) for pr in prs]
    torch.autograd.backward(yrs, [dy.double() for dy in dys])
    for j, (y, yr, p, pr) in enumerate(zip(ys, yrs, ps, prs)):
        assert y.dtype == dtype and y.shape == yr.shape and p[0].grad is None
        check(f"y{j}", y, yr, dtype)
        for name, t, tr in zip(("db", "dA", "dB") if mixed else ("dA", "dB"), _leaves(p), _leaves(pr)):
            assert t.grad.dtype == t.dtype
            check(f"{name}{j}", t.grad, tr.grad, dtype)
    check("dx", x.grad, xr.grad, dtype)


@pytest.mark.parametrize("shape", MLP, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
# all_scales: gate and up with different scales (peft's alpha_pattern), whose input-gradient terms are
# summed in one GEMM over the concatenated ranks with each scale folded into its A
@pytest.mark.parametrize("adapters", ["all", "all_scales", "gate_down", "none_bias"])
def test_lora_mlp_matches_float64_reference(shape, dtype, adapters):
    n, d, f, r = shape
    x = torch.randn(n, d, device=DEVICE, dtype=dtype, requires_grad=True)
    bias = adapters == "none_bias"
    gate = _lora_params(f, d, r, dtype, with_adapter=adapters != "none_bias", bias=bias)
    up = _lora_params(f, d, r, dtype, with_adapter=adapters.startswith("all"), bias=bias)
    if adapters == "all_scales":
        up = (*up[:4], 0.75)
    down = _lora_params(d, f, r, dtype, with_adapter=adapters != "none_bias", bias=bias)
    y = lora_mlp(x, gate, up, down)
    dy = torch.randn_like(y)
    y.backward(dy)

    xr = x.detach().double().requires_grad_()
    gr, ur, dr = _ref_leaves(gate), _ref_leaves(up), _ref_leaves(down)
    yr = _ref_linear(torch.nn.functional.silu(_ref_linear(xr, gr)) * _ref_linear(xr, ur), dr)
    yr.backward(dy.double())
    check("y", y, yr, dtype)
    check("dx", x.grad, xr.grad, dtype)
    for proj, p, pr in (("gate", gate, gr), ("up", up, ur), ("down", down, dr)):
        for t, tr in zip(_leaves(p), _leaves(pr)):
            check(f"{proj} grad", t.grad, tr.grad, dtype)


def test_lora_linear_under_autocast_runs_in_the_autocast_dtype():
    if DEVICE.type == "cpu":
        dtype = torch.bfloat16
    else:
        dtype = torch.float16
    x = torch.randn(5, 16, device=DEVICE, requires_grad=True)
    p = _lora_params(24, 16, 4, torch.float32)
    with torch.autocast(DEVICE.type, dtype=dtype):
        y = lora_linear(x, *p)
    assert y.dtype == dtype
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and p[2].grad.dtype == torch.float32
    check("y", y, _ref_linear(x.double(), p), dtype)
