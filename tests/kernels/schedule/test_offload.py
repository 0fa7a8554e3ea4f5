"""``patch(model, offload_activations=True)``: gradient-checkpointed decoder layers keep their input hidden
state in host memory (kernels/schedule/offload.py). On CPU the copies are plain copies into pool buffers; on a GPU
they are the async side-stream copies with prefetch.

Tolerance: the offload moves bytes and computes nothing, so on CPU the loss, every LoRA gradient and the
gradient reaching the embeddings are bit-identical to the same patched model without offload
(``torch.equal``); on a GPU up to fp32 rounding (1e-6 relative: attention backward kernels need not be
run-to-run deterministic) with the same bound over a short AdamW run."""

import copy
import warnings

import pytest
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from kernel_testing import DEVICE
from tiny_models import assert_same_moved, batch, tiny_lora_model

from contract_review.kernels.patching.monkey_patch import patch, unpatch
from contract_review.kernels.schedule.offload import OffloadWarning
from contract_review.kernels.schedule import host_pool, offload


def _layers(model):
    return model.base_model.model.model.layers


def _stack(model):
    return model.base_model.model.model


def _step(model, seed=0):
    ids, labels = batch(seed)
    model.zero_grad(set_to_none=True)
    emb = model.get_input_embeddings()
    seen = {}
    h = emb.register_forward_hook(lambda m, a, out: seen.setdefault("emb", out))
    out = model(input_ids=ids, labels=labels)
    h.remove()
    in_use = offload.POOL.stats()["in_use"]
    emb_out = seen["emb"]
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if emb_out.grad is not None:  # a leaf (enable_input_require_grads) whose gradient patch did not skip
        grads["<embedding output>"] = emb_out.grad.detach().clone()
    return out.loss.detach(), grads, in_use



def _assert_same_step(a, b):
    (loss_a, g_a, _), (loss_b, g_b, _) = a, b
    assert_same_moved(loss_a, loss_b, "loss")
    # 56 LoRA matrices, and the embedding output's gradient where patch(skip_embedding_grad=False) kept it
    assert g_a.keys() == g_b.keys() and len(g_a) - ("<embedding output>" in g_a) == 56
    for n in g_b:
        assert_same_moved(g_a[n], g_b[n], n)


@pytest.mark.parametrize("checkpointing", ["non_reentrant", "reentrant"])
def test_offload_gives_the_same_loss_and_gradients(checkpointing):
    # the embedding output's gradient kept: the gradient into the first layer's (offloaded) input is compared too
    ref = patch(tiny_lora_model("llama", gradient_checkpointing=checkpointing), skip_embedding_grad=False)
    model = patch(copy.deepcopy(ref), offload_activations=True, skip_embedding_grad=False)
    assert model._kernels_patch_counts["offload"] == 4
    assert all(isinstance(layer._gradient_checkpointing_func, offload.OffloadCheckpoint) for layer in _layers(model))
    before = offload.POOL.stats()["in_use"]
    ours = _step(model)
    assert "<embedding output>" in ours[1]
    # the last layer's input stays on the device (KEEP_LAST_INPUT, tested below), the other three go to the host
    assert ours[2] - before == 3, "each of the first 3 layer inputs is held in a pool buffer until backward"
    assert offload.POOL.stats()["in_use"] == before, "backward hands every buffer back"
    _assert_same_step(ours, _step(ref))


def test_layer_inputs_are_not_kept_on_the_device():
    # without offload autograd keeps every layer input for the recompute; with it only the host copy is
    # kept. Layer 0's input, the embedding output, is an autograd leaf (peft's enable_input_require_grads)
    # and stays alive to the end of the backward unless patch skips its gradient (the default)
    alive = {}
    for off, skip in ((False, True), (True, True), (True, False)):
        model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_activations=off,
                      skip_embedding_grad=skip)
        refs = []
        # the memory, not the tensor object: patch may hand the layer a detached alias of its input
        hooks = [layer.register_forward_pre_hook(lambda m, a: refs.append(StorageWeakRef(a[0].untyped_storage())))
                 for layer in _layers(model)]
        ids, labels = batch(0)
        loss = model(input_ids=ids, labels=labels).loss
        for h in hooks:
            h.remove()
        if off and DEVICE.type == "cuda":
            # on a GPU the newest copies may still be running when the forward ends: their device tensors
            # are held until the compute stream has waited for them, at the latest when backward fetches
            held = [not r.expired() for r in refs]
            assert held == [i >= 3 - offload._HELD_COPIES or (i == 0 and not skip) for i in range(4)]
            offload.release_copied(DEVICE)
        alive[off, skip] = [not r.expired() for r in refs]
        loss.backward()
    # the last layer's input is not offloaded (KEEP_LAST_INPUT): its recompute comes first in backward
    assert alive[False, True] == [True] * 4
    assert alive[True, True] == [False] * 3 + [True]
    assert alive[True, False] == [True] + [False] * 2 + [True]


def test_the_last_layers_input_stays_on_the_device(monkeypatch):
    """KEEP_LAST_INPUT (the default): the last layer's input (recomputed first in backward) is not copied out
    and back; the other three are, and the gradients are those of the model that offloads all four."""
    assert offload.KEEP_LAST_INPUT
    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_activations=True)
    model = patch(copy.deepcopy(ref), offload_activations=True)
    before = offload.POOL.stats()["in_use"]
    monkeypatch.setattr(offload, "KEEP_LAST_INPUT", False)
    full = _step(ref)
    monkeypatch.setattr(offload, "KEEP_LAST_INPUT", True)
    kept = _step(model)
    assert [layer._gradient_checkpointing_func.last for layer in _layers(model)] == [False] * 3 + [True]
    assert (full[2] - before, kept[2] - before) == (4, 3)
    assert offload.POOL.stats()["in_use"] == before
    _assert_same_step(kept, full)


def test_the_next_input_is_fetched_when_the_gradient_reaches_the_last_layer(monkeypatch):
    """With the last layer's input kept, the first offloaded input backward needs is the one before it: its
    fetch starts when the gradient reaches the last layer's output (a hook), ahead of that layer's recompute."""
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_activations=True)
    calls = []
    orig = offload.prefetch_newest
    monkeypatch.setattr(offload, "prefetch_newest", lambda device: (calls.append(device), orig(device))[1])
    ids, labels = batch(0)
    loss = model(input_ids=ids, labels=labels).loss
    assert calls == []
    loss.backward()
    assert calls == [ids.device]


def test_dropout_recompute_draws_the_same_masks():
    # LoRA dropout 0.1 (peft's path): the recompute must replay the forward's random masks (torch's
    # checkpoint stashes the RNG state; the offload must not disturb it)
    ref = patch(tiny_lora_model("llama", dropout=0.1, gradient_checkpointing="non_reentrant"))
    model = patch(copy.deepcopy(ref), offload_activations=True)
    torch.manual_seed(7)
    ours = _step(model)
    torch.manual_seed(7)
    _assert_same_step(ours, _step(ref))


def test_patch_before_gradient_checkpointing_enable():
    # the Trainer enables gradient checkpointing in its __init__, after the user patched
    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"))
    model = patch(tiny_lora_model("llama"), offload_activations=True)
    assert model._kernels_patch_counts["offload"] == 0
    with pytest.warns(OffloadWarning, match="gradient checkpointing is off"):
        _step(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    before = offload.POOL.stats()["in_use"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", OffloadWarning)
        ours = _step(model)
    assert ours[2] - before == 3, "installed at the first training forward after gradient_checkpointing_enable"
    assert all(isinstance(layer._gradient_checkpointing_func, offload.OffloadCheckpoint) for layer in _layers(model))
    _assert_same_step(ours, _step(ref))


def test_eval_and_no_grad_forwards_offload_nothing():
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_activations=True)
    before = offload.POOL.stats()
    ids, labels = batch(1)
    with torch.no_grad():
        model(input_ids=ids, labels=labels)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OffloadWarning)  # no "gradient checkpointing is off" in eval either
        model(input_ids=ids, labels=labels)
    assert offload.POOL.stats()["in_use"] == before["in_use"]


def test_unpatch_restores_the_checkpoint_functions():
    ref = tiny_lora_model("llama", gradient_checkpointing="non_reentrant")
    originals = [layer._gradient_checkpointing_func for layer in _layers(ref)]
    model = patch(ref, offload_activations=True)
    assert offload.is_enabled(model)
    unpatch(model)
    assert not offload.is_enabled(model) and not _stack(model)._forward_pre_hooks
    assert [layer._gradient_checkpointing_func for layer in _layers(model)] == originals
    assert not any(isinstance(layer._gradient_checkpointing_func, offload.OffloadCheckpoint) for layer in _layers(model))


def test_transformers_own_offload_is_replaced_not_stacked():
    # gradient_checkpointing_enable(offload=True) wraps checkpoint in save_on_cpu, whose hooks would sit
    # inside ours and take the input first: ours unwraps it to plain checkpoint with the same kwargs
    import functools

    from torch.utils.checkpoint import checkpoint

    def checkpoint_func(function, *args, **kwargs):
        raise AssertionError("the save_on_cpu wrapper must not run")

    checkpoint_func.__module__ = "transformers.modeling_utils"
    wrapped = offload.OffloadCheckpoint(functools.partial(checkpoint_func, use_reentrant=False))
    assert wrapped.inner.func is checkpoint and wrapped.inner.keywords == {"use_reentrant": False}
    assert wrapped.original.func is checkpoint_func


def test_checkpoint_function_that_bypasses_the_hooks_warns():
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), offload_activations=True)
    for layer in _layers(model):  # someone's own function that never saves the layer input itself
        layer._gradient_checkpointing_func = offload.OffloadCheckpoint(lambda fn, *a: fn(a[0].clone(), *a[1:]))
    ids, labels = batch(0)
    with pytest.warns(OffloadWarning, match="did not save the layer input"):
        model(input_ids=ids, labels=labels).loss.backward()
    with torch.autograd.graph.disable_saved_tensors_hooks("disabled here"):
        with pytest.warns(OffloadWarning, match="saved-tensor hooks are disabled"):
            model(input_ids=ids, labels=labels)


def test_zero3_partitioned_parameters_warn():
    model = tiny_lora_model("llama", gradient_checkpointing="non_reentrant")
    _layers(model)[0].self_attn.q_proj.base_layer.weight.ds_id = 1  # how ZeRO-3 marks a partitioned weight
    with pytest.warns(OffloadWarning, match="ZeRO-3"):
        patch(model, offload_activations=True)


def test_a_model_without_decoder_layers_is_refused():
    with pytest.raises(ValueError, match="GradientCheckpointingLayer"):
        patch(torch.nn.Sequential(torch.nn.Linear(4, 4)), offload_activations=True)


def test_host_pool_best_fit_and_growth():
    pool = host_pool.HostPool()
    mib = 1 << 20
    a = pool.acquire(3 * mib, False, None)
    assert a.numel() == host_pool._round_bytes(3 * mib) >= 3 * mib
    pool.release(a, False, None)
    assert pool.acquire(2 * mib, False, None) is a  # a smaller request reuses the larger buffer
    pool.release(a, False, None)
    b = pool.acquire(64 * mib, False, None)  # a larger one: new buffer, which replaces the too-small idle one
    assert b.numel() >= 64 * mib and pool.stats() == {"buffers": 1, "bytes": b.numel(), "in_use": 1, "free": 0}
    pool.release(b, False, None)
    # two sizes in use at once (layer inputs and offload_mlp's gate/up outputs), released in any order:
    # every step after the first is served from the pool, nothing is dropped or allocated again
    for step in range(3):
        held = [pool.acquire(n * mib, False, None) for n in (4, 12, 4, 12, 4)]
        if step == 0:
            first = pool.stats()
        for buf in held[::-1] if step % 2 else held:
            pool.release(buf, False, None)
        assert pool.stats() == dict(first, in_use=0, free=5)
        assert all(t.numel() >= n * mib for t, n in zip(held, (4, 12, 4, 12, 4)))
    assert host_pool._round_bytes(64 * mib) == 64 * mib  # the 7B layer input (8192 x 4096 bf16): no slack
    assert host_pool._round_bytes(65 * mib) <= 65 * mib * 1.25
