"""``patch(model, offload_mlp=f)`` (kernels/schedule/mlp_stash.py): the picked layers' gate and up outputs go to host
memory in the checkpointed forward and the recompute skips their GEMMs, with the gradients of the model
that recomputes them, bit for bit; everything that must not stash does not."""

import pytest
import torch
from kernel_testing import ON_GPU
from tiny_models import assert_identical_step, batch, tiny_lora_model

from contract_review.kernels.schedule import mlp_stash
from contract_review.kernels.patching.monkey_patch import patch



@pytest.mark.skipif(not ON_GPU, reason="the overlap with the side stream and pinned buffers exist on a GPU only")
def test_bf16_stash_on_the_gpu_matches_the_recompute():
    ref = patch(tiny_lora_model("llama", dtype=torch.bfloat16, gradient_checkpointing="non_reentrant"),
                offload_activations=True)
    model = patch(tiny_lora_model("llama", dtype=torch.bfloat16, gradient_checkpointing="non_reentrant"),
                  offload_activations=True, offload_mlp=0.5)
    for seed in (0, 1, 2):
        assert_identical_step(model, ref, seed)


@pytest.mark.skipif(not ON_GPU, reason="prefetches are copies on the side stream, which exist on a GPU only")
def test_the_first_recompute_s_input_is_fetched_before_any_stash(monkeypatch):
    """The side stream copies in order: when backward starts, the last layer's input must be queued before
    the next stash (344 MiB at 7B), or the first recompute waits for both."""
    from contract_review.kernels.schedule import offload

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
