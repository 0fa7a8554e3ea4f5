"""``GraphedBackward`` over several training steps on CPU (the eager path the graph captures): the same loss
curve as eager training, plain and with both host-memory offloads, and gradient accumulation that matches."""

import pytest
import torch
from kernel_testing import ON_GPU
from tiny_models import batch, graph_model, graphed_train, train_steps, trainable

from contract_review.kernels.schedule.cuda_graph import GraphedBackward


@pytest.mark.parametrize("patch_kw", [{}, {"offload_activations": True, "offload_mlp": 0.5}], ids=["plain", "offload"])
def test_graphed_training_matches_eager_training(patch_kw):
    ref = train_steps(graph_model(**patch_kw), steps=8, batches=2)
    got, step = graphed_train(graph_model(**patch_kw), steps=8, batches=2, unpacked_rows=True)
    ref, got = torch.stack(ref), torch.stack(got)
    if ON_GPU:
        assert step.describe() == dict(enabled=True, graphs=1, disabled_reason=None, eager=2, captures=1, replays=6)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    else:
        assert step.describe() == dict(enabled=False, graphs=0, disabled_reason="no CUDA device", eager=8)
        assert torch.equal(got, ref)  # same ops, same order: bit-identical
    assert got[-1] < got[0] - 0.05  # and it learns


def _grads(model):
    return [p.grad.detach().clone() for p in trainable(model)]


def test_gradients_accumulate_and_zero_grad_resets_them():
    model = graph_model(gc=False)
    b0, b1 = batch(0), batch(1)
    model(input_ids=b0[0], labels=b0[1]).loss.backward()
    model(input_ids=b1[0], labels=b1[1]).loss.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    model(input_ids=b1[0], labels=b1[1]).loss.backward()
    want_b1 = _grads(model)
    model.zero_grad(set_to_none=True)

    step = GraphedBackward(lambda b: model(input_ids=b["ids"], labels=b["labels"]).loss, trainable(model), warmup=1)
    for _ in range(2):  # with a graph: call 1 eager, call 2 captured and replayed, call 3+ replays
        for ids, labels in (b0, b1):
            step({"ids": ids, "labels": labels})
            # the backward added into the bound buffers in place (the memory a graph replays into), and
            # made no second set of gradients
            assert all(p.grad is a for p, a in zip(trainable(model), step._acc))
        for g, w in zip(_grads(model), want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
        model.zero_grad(set_to_none=True)  # .grad None: re-bound and zeroed before the next call
    # zero_grad(set_to_none=False) zeroes the buffers in place; a caller's own .grad tensor is copied in
    step({"ids": b0[0], "labels": b0[1]})
    model.zero_grad(set_to_none=False)
    for p in trainable(model):
        p.grad = torch.zeros_like(p)
    step({"ids": b1[0], "labels": b1[1]})
    for g, w in zip(_grads(model), want_b1):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
