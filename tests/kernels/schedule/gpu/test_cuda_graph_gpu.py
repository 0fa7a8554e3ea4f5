"""``GraphedBackward`` on a GPU: the captured step trains as the eager one does (1e-5 relative in fp32),
one capture per batch signature up to ``max_graphs``, a clear error for a capture that syncs with the
host, and SDPA's causal path inside the capture."""

import pytest
import torch
from kernel_testing import ON_GPU
from tiny_models import batch, graph_model, graphed_train, trainable

from contract_review.kernels.schedule.cuda_graph import GraphedBackward


_HOST_SYNC = """
import sys
sys.path[:0] = {paths!r}
import kernel_testing, torch
from tiny_models import batch, graph_model, trainable
from contract_review.kernels.schedule.cuda_graph import GraphCaptureError, GraphedBackward

model = graph_model(gc=False)

def loss_fn(b):
    loss = model(**b).loss
    if loss.item() != loss.item():  # a host sync: cannot be captured
        raise AssertionError("nan")
    return loss

step = GraphedBackward(loss_fn, trainable(model), warmup=1)
ids, labels = batch(0)
step({{"input_ids": ids, "labels": labels}})
try:
    step({{"input_ids": ids, "labels": labels}})
except GraphCaptureError as e:
    print("RAISED", step.describe()["disabled_reason"][:40], "|", "host sync inside the loss function" in str(e))
"""


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device")
def test_new_shapes_get_their_own_capture_up_to_max_graphs():
    model = graph_model()
    params = trainable(model)
    step = GraphedBackward(lambda b: model(**b).loss, params, warmup=1, max_graphs=2)
    seqs = [32, 32, 32, 48, 48, 48, 64, 64]
    eager_losses = []
    ref = graph_model()
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


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device")
def test_a_host_sync_in_the_loss_is_a_clear_capture_error():
    # in a child process: a failed capture can leave CUDA's RNG in capture state for the rest of the process
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve()
    paths = [str(here.parent), str(here.parents[2]), str(here.parents[4])]
    out = subprocess.run([sys.executable, "-c", _HOST_SYNC.format(paths=paths)], capture_output=True, text=True,
                         timeout=300)
    assert "RAISED capture failed: " in out.stdout and out.stdout.rstrip().endswith("| True"), out.stdout + out.stderr[-3000:]


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device")
def test_the_captured_attention_takes_the_causal_path(monkeypatch):
    sdpa = torch.nn.functional.scaled_dot_product_attention
    seen = []

    def spy(*args, attn_mask=None, is_causal=False, **kw):
        seen.append((torch.cuda.is_current_stream_capturing(), attn_mask is None and is_causal))
        return sdpa(*args, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    graphed_train(graph_model(), steps=3, batches=1, unpacked_rows=True)
    assert any(cap for cap, _ in seen) and all(causal for _, causal in seen)
