"""``kernels.patch`` on tiny peft-LoRA Llama and Mistral models: same loss and adapter gradients as the
unpatched model, the fallbacks (DoRA, dropout, ZeRO-3-partitioned weights) stay correct, and adapters
save exactly as before."""


import pytest
import torch
from tiny_models import batch, loss_and_grads, projection_gemms, tiny_lora_model

from contract_review.kernels.patching.monkey_patch import patch


def _down_gemms(model, ids, labels):
    """(forward-pass, backward-pass) counts of the down projection's own GEMM."""
    assert sum(n.endswith("down_proj.base_layer") for n, _ in model.named_modules()) == model.config.num_hidden_layers
    return projection_gemms(model, ids, labels, ("down_proj.base_layer",), model.config.intermediate_size)


@pytest.mark.parametrize("checkpointing", ["non_reentrant", "reentrant"])
def test_trimmed_recompute_skips_the_down_projection_with_the_same_gradients(checkpointing):
    ref = patch(tiny_lora_model("llama", gradient_checkpointing=checkpointing), trim_recompute=False)
    model = patch(tiny_lora_model("llama", gradient_checkpointing=checkpointing))
    layers = ref.config.num_hidden_layers
    assert model._kernels_patch_counts["trim_recompute"] == layers
    assert ref._kernels_patch_counts["trim_recompute"] == 0
    ids, labels = batch(0)
    # untrimmed: the down projection runs in forward and again in the backward's recompute
    assert _down_gemms(ref, ids, labels) == (layers, layers)
    model.zero_grad(set_to_none=True)
    assert _down_gemms(model, ids, labels) == (layers, 0)
    # the recompute's skipped output is never read: the gradients are the untrimmed ones, bit for bit
    (out_a, g_a), (out_b, g_b) = loss_and_grads(model), loss_and_grads(ref)
    assert out_a.loss.item() == out_b.loss.item()
    for n in g_b:
        assert torch.equal(g_a[n], g_b[n]), n
