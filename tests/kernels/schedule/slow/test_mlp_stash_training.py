"""``patch(model, offload_mlp=f)`` in training steps: the picked layers skip gate and up in the recompute with
the gradients of the model that recomputes them (every combination of trim and input offload), and the loss
curves of a few AdamW steps agree; which layers keep theirs on the device (``KEEP_LAST``)."""

import pytest
import torch
from tiny_models import assert_identical_step, batch, gate_up_gemms, tiny_lora_model, train_steps

from contract_review.kernels.schedule import mlp_stash
from contract_review.kernels.patching.monkey_patch import patch
from contract_review.kernels.schedule.offload import POOL



@pytest.mark.parametrize("trim", [True, False])
@pytest.mark.parametrize("offload_inputs", [False, True])
def test_stashed_layers_skip_gate_and_up_in_the_recompute_with_the_same_gradients(trim, offload_inputs):
    kw = dict(trim_recompute=trim, offload_activations=offload_inputs)
    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), **kw)
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_mlp=0.5, **kw)
    layers = ref.config.num_hidden_layers
    assert model._kernels_patch_counts["offload_mlp"] == layers // 2
    ids, labels = batch(0)
    # every layer's gate and up run in forward; in the recompute only the unpicked layers' do
    assert gate_up_gemms(ref, ids, labels) == (2 * layers, 2 * layers)
    assert gate_up_gemms(model, ids, labels) == (2 * layers, 2 * (layers - layers // 2))
    for seed in (0, 1):
        assert_identical_step(model, ref, seed)
    # every stash was used and let go: no host buffer is held between steps
    assert POOL.stats()["in_use"] == 0


def test_every_layer_stashed_in_a_few_training_steps_matches():
    ref = patch(tiny_lora_model("mistral", gradient_checkpointing="non_reentrant"))
    model = patch(tiny_lora_model("mistral", gradient_checkpointing="non_reentrant"), offload_mlp=1.0)
    layers = ref.config.num_hidden_layers
    assert model._kernels_patch_counts["offload_mlp"] == layers
    assert gate_up_gemms(model, *batch(0)) == (2 * layers, 0)
    model.zero_grad(set_to_none=True)
    curves = [torch.stack(train_steps(m, steps=3, batches=3)) for m in (model, ref)]
    assert torch.equal(curves[0], curves[1])


@pytest.mark.parametrize("keep", [1, 2])
def test_kept_layers_skip_gate_and_up_without_host_copies(keep, monkeypatch):
    """KEEP_LAST: the last layers' e and g stay on the device for their recompute (no pool buffer), the
    fraction goes to host memory from the others, and the gradients are the recomputing model's, bit for bit."""
    monkeypatch.setattr(mlp_stash, "KEEP_LAST", keep)
    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"))
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_mlp=0.5)
    layers = ref.config.num_hidden_layers
    plan = mlp_stash.stash_plan(layers, 0.5)
    host = sum(w == "host" for w in plan.values())
    assert sum(w == "device" for w in plan.values()) == keep and model._kernels_patch_counts["offload_mlp"] == len(plan)
    ids, labels = batch(0)
    assert gate_up_gemms(model, ids, labels) == (2 * layers, 2 * (layers - len(plan)))
    before = POOL.stats()["in_use"]
    loss = model(input_ids=ids, labels=labels).loss
    assert POOL.stats()["in_use"] - before == 2 * host  # e and g of each host stash only
    loss.backward()
    assert POOL.stats()["in_use"] == before
    for seed in (0, 1):
        assert_identical_step(model, ref, seed)
