"""``patch(model, offload_mlp=f)`` (kernels/schedule/mlp_stash.py): the picked layers' gate and up outputs go to host
memory in the checkpointed forward and the recompute skips their GEMMs, with the gradients of the model
that recomputes them, bit for bit; everything that must not stash does not."""

import pytest
import torch
from tiny_models import assert_identical_step, batch, tiny_lora_model

from contract_review.kernels.patching import binding, monkey_patch
from contract_review.kernels.schedule import mlp_stash
from contract_review.kernels.patching.monkey_patch import patch, unpatch
from contract_review.kernels.schedule.offload import POOL



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
        assert_identical_step(model, ref)
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


def test_bad_fraction_is_refused_before_the_model_changes():
    model = tiny_lora_model("llama", gradient_checkpointing="non_reentrant")
    with pytest.raises(ValueError, match="fraction of decoder layers"):
        patch(model, offload_mlp=2)
    assert not any(binding.ORIGINAL in m.__dict__ for m in model.modules())


def test_unpatch_forgets_the_picked_layers():
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_mlp=1.0)
    assert any(monkey_patch._STASH_LAYER in m.__dict__ for m in model.modules())
    unpatch(model)
    assert not any(monkey_patch._STASH_LAYER in m.__dict__ for m in model.modules())


