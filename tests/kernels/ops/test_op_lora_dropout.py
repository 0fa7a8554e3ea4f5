"""LoRA dropout drawn in-kernel (kernels/ops/lora_dropout.py) against plain PyTorch references.

Exact: with the mask the kernels draw (``dropout_mask``, the same Philox stream), every node (one projection,
q/k/v together, the MLP) matches a float64 reference ``x W^T + s B A (x * mask)`` forward and backward at the
tolerances of kernel_testing.TOL. Statistical: against peft's own LoRA layer (torch's dropout) the outputs
and input gradients of many independent rows have the same mean and variance, and dA the same expectation.
The mask: kept with probability 1 - p, scaled by 1/(1-p), a function of (key, salt, row, column) only.
"""

import math

import pytest
import torch
from kernel_testing import DEVICE, DTYPES, ON_GPU, TOL, check, shapes
from torch import nn

from contract_review.kernels.ops.lora import lora_linear, lora_mlp, lora_shared_input
from contract_review.kernels.ops.lora_dropout import LoRADropout, dropout_lowrank, dropout_mask

# (tokens, in, rank): K not a multiple of 4, tokens not a multiple of a row block, quarters over 64 columns
LOWRANK = shapes(small=[(37, 30, 4), (200, 300, 16)], full=[(8192, 4096, 16), (4096, 4096, 32), (615, 11008, 64)])
# (tokens, in, out, rank)
LINEAR = shapes(small=[(45, 40, 24, 8)], full=[(8192, 4096, 4096, 16), (4096, 4096, 4096, 32)])
# (tokens, hidden, intermediate, rank)
MLP = shapes(small=[(33, 24, 56, 4)], full=[(4096, 4096, 11008, 16)])


def _key(value: int = 1234) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.int64, device=DEVICE)


def _drop(p=0.2, salt=1, key=None) -> LoRADropout:
    return LoRADropout(p, _key() if key is None else key, salt)


def test_the_mask_keeps_one_minus_p_and_is_a_function_of_key_salt_and_position():
    n, k, p = 300, 130, 0.3
    d = _drop(p)
    m = dropout_mask(n, k, d)
    assert set(m.unique().tolist()) <= {0.0, torch.tensor(1 / (1 - p), dtype=torch.float32).item()}
    dropped = (m == 0).double().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / m.numel())
    torch.testing.assert_close(dropout_mask(n, k, d), m, rtol=0, atol=0)  # rebuilt: the same mask
    torch.testing.assert_close(dropout_mask(7, k, d), m[:7], rtol=0, atol=0)  # fewer rows: their masks unchanged
    for other in (_drop(p, salt=2), _drop(p, key=_key(99))):  # another projection, another forward
        agree = (dropout_mask(n, k, other) == m).double().mean().item()
        assert abs(agree - (p * p + (1 - p) ** 2)) < 0.02
    # neighbours along a row, and the four elements one Philox draw feeds (a quarter of the row apart), are
    # uncorrelated
    kept = (m != 0).double()
    for a, b in ((kept[:, :-1], kept[:, 1:]), (kept[:, :32], kept[:, 33:65]), (kept[:-1], kept[1:])):
        corr = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
        assert abs(corr.item()) < 5 / math.sqrt(a.numel())


@pytest.mark.parametrize("shape", LOWRANK, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropped_lowrank_matches_the_reference_with_the_same_mask(shape, dtype):
    n, k, r = shape
    d = _drop(0.1)
    x = torch.randn(n, k, device=DEVICE, dtype=dtype, requires_grad=True)
    A = (torch.randn(r, k, device=DEVICE) / k**0.5).requires_grad_()
    y = dropout_lowrank(x, A, d)
    dy = torch.randn_like(y)
    y.backward(dy)
    m = dropout_mask(n, k, d).double()
    xr, Ar = x.detach().double().requires_grad_(), A.detach().double().requires_grad_()
    yr = (xr * m) @ Ar.t()
    yr.backward(dy.double())
    check("y", y, yr, dtype)
    check("dx", x.grad, xr.grad, dtype)
    check("dA", A.grad, Ar.grad, dtype)
    assert A.grad.dtype == torch.float32 and x.grad.dtype == dtype


def _params(out_f, in_f, r, dtype, bias=False, scale=2.0):
    W = torch.randn(out_f, in_f, device=DEVICE, dtype=dtype) / in_f**0.5
    b = (0.1 * torch.randn(out_f, device=DEVICE, dtype=dtype)).requires_grad_() if bias else None
    A = (torch.randn(r, in_f, device=DEVICE) / in_f**0.5).requires_grad_()
    B = (torch.randn(out_f, r, device=DEVICE) / r**0.5).requires_grad_()
    return W, b, A, B, scale


def _ref(x, p, mask):
    """float64 ``x W^T + s (x * mask) A^T B^T + b`` with fresh leaves for b, A, B."""
    W, b, A, B, s = p
    leaf = lambda t: None if t is None else t.detach().double().requires_grad_()  # noqa: E731
    b, A, B = leaf(b), leaf(A), leaf(B)
    xd = x if mask is None else x * mask
    y = x @ W.double().t() + s * (xd @ A.t()) @ B.t()
    return (y if b is None else y + b), [t for t in (b, A, B) if t is not None]


def _grads(p):
    return [t.grad for t in (p[1], p[2], p[3]) if t is not None]


@pytest.mark.parametrize("shape", LINEAR, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_lora_linear_with_dropout_matches_the_reference(shape, dtype, bias):
    n, i, o, r = shape
    d = _drop(0.05)
    x = torch.randn(2, n, i, device=DEVICE, dtype=dtype, requires_grad=True)
    p = _params(o, i, r, dtype, bias=bias)
    y = lora_linear(x, *p, d)
    dy = torch.randn_like(y)
    y.backward(dy)
    xr = x.detach().double().requires_grad_()
    yr, leaves = _ref(xr, p, dropout_mask(2 * n, i, d).double().view(2, n, i))
    yr.backward(dy.double())
    check("y", y, yr, dtype)
    check("dx", x.grad, xr.grad, dtype)
    for name, g, ref in zip(("db", "dA", "dB") if bias else ("dA", "dB"), _grads(p), leaves):
        check(name, g, ref.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("drops", ["all", "k_without"], ids=str)
def test_qkv_node_with_dropout_matches_the_reference(dtype, drops):
    """q, k, v of one input, each with its own mask (peft draws one per module); k without dropout mixes the
    shared-GEMM path in."""
    n, i, o, r = LINEAR[0]
    x = torch.randn(n, i, device=DEVICE, dtype=dtype, requires_grad=True)
    ps = [_params(o, i, r, dtype), _params(o // 2, i, r, dtype), _params(o // 2, i, 2 * r, dtype, scale=0.5)]
    ds = [_drop(0.1, salt=1), None if drops == "k_without" else _drop(0.1, salt=2), _drop(0.3, salt=3)]
    ys = lora_shared_input(x, [(*p, d) for p, d in zip(ps, ds)])
    dys = [torch.randn_like(y) for y in ys]
    torch.autograd.backward(ys, dys)
    xr = x.detach().double().requires_grad_()
    refs = [_ref(xr, p, None if d is None else dropout_mask(n, i, d).double()) for p, d in zip(ps, ds)]
    torch.autograd.backward([yr for yr, _ in refs], [dy.double() for dy in dys])
    for j, (y, p, (yr, leaves)) in enumerate(zip(ys, ps, refs)):
        check(f"y{j}", y, yr, dtype)
        for name, g, ref in zip(("dA", "dB"), _grads(p), leaves):
            check(f"{name}{j}", g, ref.grad, dtype)
    check("dx", x.grad, xr.grad, dtype)


@pytest.mark.parametrize("shape", MLP, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("drops", ["all", "down_only", "gate_only"])
def test_mlp_node_with_dropout_matches_the_reference(shape, dtype, drops):
    n, dm, f, r = shape
    x = torch.randn(n, dm, device=DEVICE, dtype=dtype, requires_grad=True)
    gate, up, down = _params(f, dm, r, dtype), _params(f, dm, r, dtype, scale=0.75), _params(dm, f, r, dtype)
    ds = {"all": (_drop(0.1, 1), _drop(0.1, 2), _drop(0.1, 3)), "down_only": (None, None, _drop(0.2, 3)),
          "gate_only": (_drop(0.2, 1), None, None)}[drops]
    y = lora_mlp(x, (*gate, ds[0]), (*up, ds[1]), (*down, ds[2]))
    dy = torch.randn_like(y)
    y.backward(dy)
    masks = [None if d is None else dropout_mask(n, width, d).double() for d, width in zip(ds, (dm, dm, f))]
    xr = x.detach().double().requires_grad_()
    (e, lg), (g, lu) = _ref(xr, gate, masks[0]), _ref(xr, up, masks[1])
    yr, ld = _ref(nn.functional.silu(e) * g, down, masks[2])
    yr.backward(dy.double())
    check("y", y, yr, dtype)
    check("dx", x.grad, xr.grad, dtype)
    for proj, p, leaves in (("gate", gate, lg), ("up", up, lu), ("down", down, ld)):
        for g_, ref in zip(_grads(p), leaves):
            check(f"{proj} grad", g_, ref.grad, dtype)


def test_same_statistics_as_peft_dropout_forward_and_backward():
    """Many identical rows through peft's LoRA layer (torch's dropout) and through ours: each row is an
    independent draw of the dropout, so per output feature the rows' mean and variance must agree (forward
    and input gradient), and dA (a sum over the rows) must agree with its expectation in both."""
    from peft import LoraConfig, get_peft_model

    n = 65536 if ON_GPU else 1024
    k, o, r, p = 32, 16, 4, 0.25
    torch.manual_seed(0)

    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(k, o, bias=False)

        def forward(self, x):
            return self.proj(x)

    layer = get_peft_model(One(), LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=p, target_modules=["proj"]))
    layer = layer.to(DEVICE).base_model.model.proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_(0, 0.5)
    layer.train()
    W, A, B = layer.base_layer.weight, layer.lora_A["default"].weight, layer.lora_B["default"].weight
    s = layer.scaling["default"]
    x0, dy0 = torch.randn(k, device=DEVICE), torch.randn(o, device=DEVICE)

    def run(fn):
        x = x0.repeat(n, 1).requires_grad_()
        A.grad = None
        y = fn(x)
        y.backward(dy0.repeat(n, 1))
        return y.detach().double(), x.grad.double(), A.grad.double()

    y_peft, dx_peft, dA_peft = run(layer)
    y_ours, dx_ours, dA_ours = run(lambda x: lora_linear(x, W, None, A, B, s, _drop(p)))

    def same_distribution(a, b, what):
        se = ((a.var(0) + b.var(0)) / n).sqrt()
        assert ((a.mean(0) - b.mean(0)).abs() <= 5 * se + 1e-6).all(), f"{what}: means differ"
        ratio = a.var(0).sum() / b.var(0).sum()  # pooled over features; ~2.5% standard error at n = 1024
        assert abs(ratio.item() - 1) < 0.15, f"{what}: variance ratio {ratio.item():.3f}"

    same_distribution(y_ours, y_peft, "output")
    same_distribution(dx_ours, dx_peft, "input gradient")
    # E[dA] = n s (B^T dy0) x0^T; each element's relative spread is sqrt(p / ((1 - p) n))
    expect = n * s * torch.outer(B.double().t() @ dy0.double(), x0.double())
    tol = 6 * math.sqrt(p / ((1 - p) * n))
    for name, dA in (("ours", dA_ours), ("peft", dA_peft)):
        err = ((dA - expect).norm() / expect.norm()).item()
        assert err < tol, f"dA ({name}) relative error {err:.3f} against its expectation (allowed {tol:.3f})"
