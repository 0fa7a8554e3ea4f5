"""``patch(model, offload_mlp=f)`` (kernels/mlp_stash.py): the picked layers' gate and up outputs go to host
memory in the checkpointed forward and the recompute skips their GEMMs, with the gradients of the model
that recomputes them, bit for bit; everything that must not stash does not."""

import pytest
import torch
from kernel_testing import ON_GPU
from tiny_models import batch, loss_and_grads, projection_gemms, tiny_lora_model, train_steps

from contract_review.kernels import mlp_stash, monkey_patch
from contract_review.kernels.monkey_patch import patch, unpatch
from contract_review.kernels.offload import POOL


def _gate_up_gemms(model, ids, labels):
    """(forward, backward) counts of the gate and up projections' own GEMMs."""
    return projection_gemms(model, ids, labels, ("gate_proj.base_layer", "up_proj.base_layer"),
                            model.config.hidden_size)


def _assert_identical_step(model, ref, seed=0):
    """The same loss and the same adapter gradients, bit for bit, from one step of each."""
    (out_a, g_a), (out_b, g_b) = loss_and_grads(model, seed), loss_and_grads(ref, seed)
    assert torch.equal(out_a.loss, out_b.loss)
    for n in g_b:
        assert torch.equal(g_a[n], g_b[n]), n


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
    assert _gate_up_gemms(ref, ids, labels) == (2 * layers, 2 * layers)
    assert _gate_up_gemms(model, ids, labels) == (2 * layers, 2 * (layers - layers // 2))
    for seed in (0, 1):
        _assert_identical_step(model, ref, seed)
    # every stash was used and let go: no host buffer is held between steps
    assert POOL.stats()["in_use"] == 0


def test_every_layer_stashed_in_a_few_training_steps_matches():
    ref = patch(tiny_lora_model("mistral", gradient_checkpointing="non_reentrant"))
    model = patch(tiny_lora_model("mistral", gradient_checkpointing="non_reentrant"), offload_mlp=1.0)
    layers = ref.config.num_hidden_layers
    assert model._kernels_patch_counts["offload_mlp"] == layers
    assert _gate_up_gemms(model, *batch(0)) == (2 * layers, 0)
    model.zero_grad(set_to_none=True)
    curves = [torch.stack(train_steps(m, steps=3, batches=3)) for m in (model, ref)]
    assert torch.equal(curves[0], curves[1])


@pytest.mark.parametrize("checkpointing", [False, "reentrant"])
def test_nothing_is_stashed_where_no_recompute_would_use_it(checkpointing):
    """Without checkpointing e and g stay saved on the device; a reentrant checkpoint's first forward runs
    without grad (nothing to keep) and its recompute is not started by the MLP node: both compute as before."""
    ref = patch(tiny_lora_model("llama", gradient_checkpointing=checkpointing))
    model = patch(tiny_lora_model("llama", gradient_checkpointing=checkpointing), offload_mlp=1.0)
    made = []
    orig = mlp_stash.MLPStash.__init__

    def spy(self, *a, **k):
        made.append(1)
        orig(self, *a, **k)

    mlp_stash.MLPStash.__init__ = spy
    try:
        _assert_identical_step(model, ref)
    finally:
        mlp_stash.MLPStash.__init__ = orig
    assert made == []
    # and under no_grad (evaluation in training mode) nothing either
    with torch.no_grad():
        model(input_ids=batch(0)[0])
    assert all(v() is None or v().used for v in mlp_stash._latest.values() if v is not None)


def test_a_stash_is_used_only_by_the_recompute_of_its_own_node():
    """A forward whose graph is dropped unused leaves nothing behind, and the next step is unaffected;
    two forwards before one backward (their losses summed) still get each node its own e and g."""
    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"))
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_mlp=1.0)
    ids, labels = batch(0)
    loss = model(input_ids=ids, labels=labels).loss
    del loss  # the graph (and every stash on its nodes) goes
    assert POOL.stats()["in_use"] == 0
    ids2, labels2 = batch(1)
    for m in (model, ref):
        m.zero_grad(set_to_none=True)
        (m(input_ids=ids, labels=labels).loss + m(input_ids=ids2, labels=labels2).loss).backward()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        if p.requires_grad:
            assert torch.equal(p.grad, q.grad), n


def test_layers_are_picked_evenly_and_never_the_last_one_first():
    assert mlp_stash.layers_to_stash(32, 0.5) == list(range(0, 32, 2))
    picked = mlp_stash.layers_to_stash(40, 2 / 3)
    assert len(picked) == 26 and 39 not in picked
    assert mlp_stash.layers_to_stash(4, 1.0) == [0, 1, 2, 3] and mlp_stash.layers_to_stash(4, 0.0) == []
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="offload_mlp"):
            mlp_stash.layers_to_stash(4, bad)


def test_the_plan_keeps_the_last_layers_on_the_device_and_spreads_the_fraction_over_the_others():
    assert mlp_stash.stash_plan(32, 0.5, keep_last=0) == {i: "host" for i in range(0, 32, 2)}
    plan = mlp_stash.stash_plan(32, 0.5, keep_last=2)
    assert plan == {30: "device", 31: "device", **{i: "host" for i in range(0, 30, 2)}}
    assert mlp_stash.stash_plan(3, 1.0, keep_last=5) == {0: "device", 1: "device", 2: "device"}
    assert mlp_stash.stash_plan(32, 0.0, keep_last=2) == {}  # offload_mlp off: nothing kept either
    with pytest.raises(ValueError, match="offload_mlp"):
        mlp_stash.stash_plan(4, 1.5, keep_last=1)


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
    assert _gate_up_gemms(model, ids, labels) == (2 * layers, 2 * (layers - len(plan)))
    before = POOL.stats()["in_use"]
    loss = model(input_ids=ids, labels=labels).loss
    assert POOL.stats()["in_use"] - before == 2 * host  # e and g of each host stash only
    loss.backward()
    assert POOL.stats()["in_use"] == before
    for seed in (0, 1):
        _assert_identical_step(model, ref, seed)


def test_bad_fraction_is_refused_before_the_model_changes():
    model = tiny_lora_model("llama", gradient_checkpointing="non_reentrant")
    with pytest.raises(ValueError, match="fraction of decoder layers"):
        patch(model, offload_mlp=2)
    assert not any(monkey_patch._ORIG in m.__dict__ for m in model.modules())


def test_unpatch_forgets_the_picked_layers():
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_mlp=1.0)
    assert any(monkey_patch._STASH_LAYER in m.__dict__ for m in model.modules())
    unpatch(model)
    assert not any(monkey_patch._STASH_LAYER in m.__dict__ for m in model.modules())


@pytest.mark.skipif(not ON_GPU, reason="the overlap with the side stream and pinned buffers exist on a GPU only")
def test_bf16_stash_on_the_gpu_matches_the_recompute():
    ref = patch(tiny_lora_model("llama", dtype=torch.bfloat16, gradient_checkpointing="non_reentrant"),
                offload_activations=True)
    model = patch(tiny_lora_model("llama", dtype=torch.bfloat16, gradient_checkpointing="non_reentrant"),
                  offload_activations=True, offload_mlp=0.5)
    for seed in (0, 1, 2):
        _assert_identical_step(model, ref, seed)


@pytest.mark.skipif(not ON_GPU, reason="prefetches are copies on the side stream, which exist on a GPU only")
def test_the_first_recompute_s_input_is_fetched_before_any_stash(monkeypatch):
    """The side stream copies in order: when backward starts, the last layer's input must be queued before
    the next stash (344 MiB at 7B), or the first recompute waits for both."""
    from contract_review.kernels import offload

    model = patch(tiny_lora_model("llama", dtype=torch.bfloat16, gradient_checkpointing="non_reentrant"),
                  offload_activations=True, offload_mlp=0.5)
    ids, labels = batch(0)
    loss = model(input_ids=ids, labels=labels).loss
    newest = offload._newest[offload.device_key(ids.device)]()
    stash = mlp_stash._latest[offload.device_key(ids.device)]()
    while stash is not None and stash.on_device:  # the last layer's (KEEP_LAST): nothing to fetch
        stash = stash.prev()
    assert newest is not None and newest.gpu is None and stash is not None and stash.e.gpu is None
    order = []
    orig = offload._Offloaded._start_h2d

    def spy(self):
        order.append(self)
        orig(self)

    monkeypatch.setattr(offload._Offloaded, "_start_h2d", spy)  # a class with __slots__: patched on the class
    mlp_stash.prefetch_latest(ids.device)
    assert order[:2] == [newest, stash.e]
    loss.backward()
