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

from contract_review.kernels.cuda_graph import GraphedBackward
from contract_review.kernels.monkey_patch import patch
from contract_review.kernels.cuda_graph import _mask_decisions_as_eager


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


# the host-memory paths too: their copies, events and side-stream waits are captured and replayed
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


def test_bad_arguments_name_the_problem():
    model = _model(gc=False)
    with pytest.raises(ValueError, match="no parameter requires grad"):
        GraphedBackward(lambda b: 0, [torch.nn.Parameter(torch.ones(2), requires_grad=False)])
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        GraphedBackward(lambda b: 0, _params(model), warmup=0)
    step = GraphedBackward(lambda b: model(**b).loss, _params(model))
    ids, labels = batch(0)
    with pytest.raises(TypeError, match=r"batch\['labels'\] is a list; a graphed batch holds tensors only"):
        step({"input_ids": ids, "labels": labels.tolist()})
    vec = GraphedBackward(lambda b: model(**b).logits, _params(model))
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        vec({"input_ids": ids})


def test_zero3_partitioned_parameters_are_never_graphed():
    model = _model(gc=False)
    params = _params(model)
    params[0].ds_id = 7  # what DeepSpeed ZeRO-3 puts on a partitioned parameter
    with pytest.raises(ValueError, match="ZeRO-3 partitioned parameters cannot be graphed"):
        GraphedBackward(lambda b: model(**b).loss, params, enabled=True)
    step = GraphedBackward(lambda b: model(**b).loss, params)  # enabled=None: eager, and says why
    assert step.describe()["disabled_reason"] == "ZeRO-3 partitioned parameters" and not step.enabled


@pytest.mark.skipif(ON_GPU, reason="the CPU refusal of enabled=True")
def test_enabled_without_cuda_is_refused():
    model = _model(gc=False)
    with pytest.raises(ValueError, match="CUDA graphs need every trainable parameter on one CUDA device"):
        GraphedBackward(lambda b: model(**b).loss, _params(model), enabled=True)


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device")
def test_new_shapes_get_their_own_capture_up_to_max_graphs():
    model = _model()
    params = _params(model)
    step = GraphedBackward(lambda b: model(**b).loss, params, warmup=1, max_graphs=2)
    seqs = [32, 32, 32, 48, 48, 48, 64, 64]
    eager_losses = []
    ref = _model()
    for s in seqs:
        ids, labels = batch(0, seq=s)
        got = step({"input_ids": ids, "labels": labels})
        want = ref(input_ids=ids, labels=labels).loss.detach()
        eager_losses.append((got, want))
        model.zero_grad(set_to_none=True)
    # 32: eager, capture+replay, replay; 48: eager, capture+replay, replay; 64: past max_graphs, eager
    assert step.describe() == dict(enabled=True, graphs=2, disabled_reason=None, eager=4, captures=2, replays=4)
    for got, want in eager_losses:  # no optimizer step: the same loss every time
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


_HOST_SYNC = """
import sys
sys.path[:0] = {paths!r}
import kernel_testing, torch
from test_kernel_cuda_graph import _model, _params
from tiny_models import batch
from contract_review.kernels.cuda_graph import GraphCaptureError, GraphedBackward

model = _model(gc=False)

def loss_fn(b):
    loss = model(**b).loss
    if loss.item() != loss.item():  # a host sync: cannot be captured
        raise AssertionError("nan")
    return loss

step = GraphedBackward(loss_fn, _params(model), warmup=1)
ids, labels = batch(0)
step({{"input_ids": ids, "labels": labels}})
try:
    step({{"input_ids": ids, "labels": labels}})
except GraphCaptureError as e:
    print("RAISED", step.describe()["disabled_reason"][:40], "|", "host sync inside the loss function" in str(e))
"""


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device")
def test_a_host_sync_in_the_loss_is_a_clear_capture_error():
    # in a child process: a failed capture can leave CUDA's RNG in capture state for the rest of the process
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve()
    paths = [str(here.parent), str(here.parents[2])]
    out = subprocess.run([sys.executable, "-c", _HOST_SYNC.format(paths=paths)], capture_output=True, text=True,
                         timeout=300)
    assert "RAISED capture failed: " in out.stdout and out.stdout.rstrip().endswith("| True"), out.stdout + out.stderr[-3000:]


def _causal_mask(model, ids, **kw):
    """The mask transformers hands SDPA for this batch (None: SDPA's is_causal path)."""
    import inspect

    import transformers.masking_utils as mu

    emb = model.get_input_embeddings()(ids)
    args = dict(config=model.config, inputs_embeds=emb, attention_mask=None, past_key_values=None,
                position_ids=torch.arange(ids.shape[1], device=ids.device).unsqueeze(0))
    if "cache_position" in inspect.signature(mu.create_causal_mask).parameters:  # transformers 5.17
        args["cache_position"] = torch.arange(ids.shape[1], device=ids.device)
    return mu.create_causal_mask(**args, **kw)


@pytest.mark.parametrize("unpacked", [True, False])
def test_under_capture_unpacked_rows_keep_the_causal_path(monkeypatch, unpacked):
    # a capture cannot read tensors, so transformers keeps a dense causal mask (slow attention, no flash);
    # with the caller's promise of unpacked rows the capture makes the eager decision: no mask
    import transformers.utils.import_utils as iu

    model = tiny_lora_model("llama").base_model.model.model
    ids, _ = batch(0)
    assert _causal_mask(model, ids) is None  # eagerly: the is_causal path
    monkeypatch.setattr(iu, "is_cuda_stream_capturing", lambda: True)
    assert _causal_mask(model, ids) is not None  # what a capture gets from transformers
    with _mask_decisions_as_eager(unpacked):
        mask = _causal_mask(model, ids)
    assert (mask is None) is unpacked
    assert _causal_mask(model, ids) is not None  # restored after the capture


def test_unpacked_rows_refuses_a_batch_with_positions_or_mask():
    model = _model(gc=False)
    step = GraphedBackward(lambda b: model(**b).loss, _params(model), unpacked_rows=True)
    ids, labels = batch(0)
    with pytest.raises(ValueError, match=r"promises that no position_ids or attention_mask.*\['position_ids'\]"):
        step({"input_ids": ids, "labels": labels, "position_ids": torch.arange(ids.shape[1]).expand_as(ids)})


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device")
def test_the_captured_attention_takes_the_causal_path(monkeypatch):
    sdpa = torch.nn.functional.scaled_dot_product_attention
    seen = []

    def spy(*args, attn_mask=None, is_causal=False, **kw):
        seen.append((torch.cuda.is_current_stream_capturing(), attn_mask is None and is_causal))
        return sdpa(*args, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    _graphed_train(_model(), steps=3, batches=1, unpacked_rows=True)
    assert any(cap for cap, _ in seen) and all(causal for _, causal in seen)
