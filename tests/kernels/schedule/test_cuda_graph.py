"""``GraphedBackward`` (kernels/schedule/cuda_graph.py): a micro-batch's forward and backward replayed as a CUDA graph.

On CPU every call takes the eager path, which is the same code the graph captures (a backward that
accumulates in place into the persistent ``.grad`` buffers): checked bit-identical to ``loss.backward()`` training,
with accumulation, both kinds of ``zero_grad`` and the argument checks. On a GPU the tiny patched model,
gradient-checkpointed, trains the same with the graph as eagerly (fp32; 1e-5 relative, the replay runs the
same kernels in the same order, only the attention backward may differ run to run), and the capture
bookkeeping (warm-up, one capture per signature, ``max_graphs``) holds."""

import pytest
import torch
from kernel_testing import ON_GPU
from tiny_models import batch, graph_model, tiny_lora_model, trainable

from contract_review.kernels.schedule.cuda_graph import GraphedBackward, _mask_decisions_as_eager


# the host-memory paths too: their copies, events and side-stream waits are captured and replayed


def _grads(model):
    return [p.grad.detach().clone() for p in trainable(model)]


def test_bad_arguments_name_the_problem():
    model = graph_model(gc=False)
    with pytest.raises(ValueError, match="no parameter requires grad"):
        GraphedBackward(lambda b: 0, [torch.nn.Parameter(torch.ones(2), requires_grad=False)])
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        GraphedBackward(lambda b: 0, trainable(model), warmup=0)
    step = GraphedBackward(lambda b: model(**b).loss, trainable(model))
    ids, labels = batch(0)
    with pytest.raises(TypeError, match=r"batch\['labels'\] is a list; a graphed batch holds tensors only"):
        step({"input_ids": ids, "labels": labels.tolist()})
    vec = GraphedBackward(lambda b: model(**b).logits, trainable(model))
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        vec({"input_ids": ids})


def test_zero3_partitioned_parameters_are_never_graphed():
    model = graph_model(gc=False)
    params = trainable(model)
    params[0].ds_id = 7  # what DeepSpeed ZeRO-3 puts on a partitioned parameter
    with pytest.raises(ValueError, match="ZeRO-3 partitioned parameters cannot be graphed"):
        GraphedBackward(lambda b: model(**b).loss, params, enabled=True)
    step = GraphedBackward(lambda b: model(**b).loss, params)  # enabled=None: eager, and says why
    assert step.describe()["disabled_reason"] == "ZeRO-3 partitioned parameters" and not step.enabled


@pytest.mark.skipif(ON_GPU, reason="the CPU refusal of enabled=True")
def test_enabled_without_cuda_is_refused():
    model = graph_model(gc=False)
    with pytest.raises(ValueError, match="CUDA graphs need every trainable parameter on one CUDA device"):
        GraphedBackward(lambda b: model(**b).loss, trainable(model), enabled=True)


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
    model = graph_model(gc=False)
    step = GraphedBackward(lambda b: model(**b).loss, trainable(model), unpacked_rows=True)
    ids, labels = batch(0)
    with pytest.raises(ValueError, match=r"promises that no position_ids or attention_mask.*\['position_ids'\]"):
        step({"input_ids": ids, "labels": labels, "position_ids": torch.arange(ids.shape[1]).expand_as(ids)})
