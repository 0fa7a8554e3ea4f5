"""LoRA dropout through ``kernels.patch`` on a tiny peft Llama (two layers, all seven projections: the q/k/v
node, o alone, the MLP node): the fast path with the masks the kernels draw gives exactly what peft's own
forward gives with those masks, under no checkpointing, non-reentrant and reentrant checkpointing (the
recompute rebuilds the same masks, with or without ``preserve_rng_state``), with the trimmed recompute and
the MLP stash (offload_mlp) too; the stack's key moves on at every training forward and repeats with the
seed. (Slow: each dropout kernel is ~0.3 s in Triton's interpreter.)"""

import copy

import pytest
import torch
from kernel_testing import TOL
from tiny_models import batch, loss_and_grads, tiny_lora_model
from torch import nn

from contract_review.kernels.ops.lora_dropout import LoRADropout, dropout_mask
from contract_review.kernels.patching.eligibility import DROPOUT, STACK_KEY, is_lora_linear
from contract_review.kernels.patching.monkey_patch import patch

P = 0.2


class _KernelMask(nn.Module):
    """peft's dropout module replaced by the mask the kernels draw for one layer (its stack's key now,
    its salt): peft's forward then computes exactly what the fast path computes."""

    def __init__(self, holder, salt: int, p: float):
        super().__init__()
        self.holder, self.salt, self.p = holder, salt, p

    def forward(self, x):
        drop = LoRADropout(self.p, self.holder.key, self.salt)
        mask = dropout_mask(x.numel() // x.shape[-1], x.shape[-1], drop)
        return x * mask.view(x.shape).to(x.dtype)


def _with_kernel_masks(ref, patched):
    lora_ref = [m for m in ref.modules() if is_lora_linear(m)]
    lora_ours = [m for m in patched.modules() if is_lora_linear(m)]
    assert len(lora_ref) == len(lora_ours) == 14
    for r, o in zip(lora_ref, lora_ours):
        holder, salt = o.__dict__[DROPOUT]
        r.lora_dropout["default"] = _KernelMask(holder, salt, P)
    return ref


def _assert_same(a, b, tol):
    (out_a, g_a), (out_b, g_b) = a, b
    assert abs(out_a.loss.item() - out_b.loss.item()) <= tol * abs(out_b.loss.item())
    worst = max(((g_a[n].double() - g_b[n].double()).norm() / g_b[n].double().norm()).item() for n in g_b)
    assert worst < 10 * tol, f"adapter gradient relative error {worst:.2e}"


@pytest.mark.parametrize("checkpointing,preserve,patch_kw", [
    (False, True, {}), ("non_reentrant", True, {}), ("non_reentrant", False, {"offload_mlp": 1.0}),
    ("reentrant", False, {})], ids=["no_checkpoint", "non_reentrant", "non_reentrant_stash", "reentrant"])
def test_fast_path_dropout_equals_peft_with_the_kernels_masks(checkpointing, preserve, patch_kw):
    ref = tiny_lora_model("llama", dropout=P, gradient_checkpointing=checkpointing, preserve_rng_state=preserve,
                          layers=2)
    model = patch(copy.deepcopy(ref), **patch_kw)
    assert model._kernels_fast_path["lora"] == {"fast": 14, "total": 14, "off": {}}
    assert model._kernels_fast_path["mlp"]["fast"] == 2
    ours = loss_and_grads(model)  # draws the stack's key for this forward; the recompute reuses it
    ref = _with_kernel_masks(ref, model)
    _assert_same(ours, loss_and_grads(ref), TOL[torch.float32])


def test_dropout_changes_the_output_and_eval_mode_turns_it_off():
    base = patch(tiny_lora_model("llama", dropout=0.0, layers=2))
    model = patch(tiny_lora_model("llama", dropout=P, layers=2))
    ids, labels = batch(1)
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids, labels=labels).loss, base(input_ids=ids, labels=labels).loss)
        model.eval(), base.eval()
        torch.testing.assert_close(model(input_ids=ids, labels=labels).loss, base(input_ids=ids, labels=labels).loss)


def test_the_key_moves_on_at_every_training_forward_and_repeats_with_the_seed():
    model = patch(tiny_lora_model("llama", dropout=P, layers=1))
    holder = model.base_model.model.model.__dict__[STACK_KEY]
    ids, labels = batch(0)
    runs = []
    for seed in (0, 0):
        torch.manual_seed(seed)
        with torch.no_grad():  # training mode: dropout on, the key drawn at each forward
            runs.append([(model(input_ids=ids, labels=labels).loss.item(), int(holder.key)) for _ in range(2)])
    (loss1, key1), (loss2, key2) = runs[0]
    assert key1 != key2 and loss1 != loss2, "a new mask every forward: same batch, different loss"
    assert runs[1] == runs[0], "the same seed draws the same keys, hence the same masks"
