"""``kernels.patch`` on tiny peft-LoRA Llama and Mistral models: same loss and adapter gradients as the
unpatched model, the fallbacks (DoRA, ZeRO-3-partitioned weights) stay correct and are reported with their
reason, and adapters save exactly as before. LoRA dropout on the fast path: tests/kernels/patching/
test_patch_dropout.py."""

import copy
import enum

import pytest
import torch
from kernel_testing import TOL
from tiny_models import batch, loss_and_grads, projection_gemms, tiny_lora_model

from contract_review.kernels.patching.monkey_patch import patch, unpatch
from contract_review.kernels.patching import binding, monkey_patch
from contract_review.kernels.patching.eligibility import fast_path_report, report_lines


def _assert_same(a, b, dtype, factor=1.0):
    (out_a, g_a), (out_b, g_b) = a, b
    tol = TOL[dtype] * factor
    assert abs(out_a.loss.item() - out_b.loss.item()) <= tol * abs(out_b.loss.item())
    worst = max(((g_a[n].double() - g_b[n].double()).norm() / g_b[n].double().norm()).item() for n in g_b)
    assert worst < 10 * tol, f"adapter gradient relative error {worst:.2e}"


@pytest.mark.parametrize("family", ["llama", "mistral"])
@pytest.mark.parametrize("checkpointing", [False, "non_reentrant", "reentrant"])
def test_patched_model_gives_the_unpatched_loss_and_gradients(family, checkpointing):
    ref_model = tiny_lora_model(family, gradient_checkpointing=checkpointing)
    model = copy.deepcopy(ref_model)
    patch(model)
    counts = model._kernels_patch_counts
    assert counts["rms_norm"] == 9 and counts["mlp"] == 4 and counts["lora"] == 28 and counts["causal_lm"] == 1
    out, grads = loss_and_grads(model)
    assert out.logits is None, "the fused loss path returns no logits"
    _assert_same((out, grads), loss_and_grads(ref_model), torch.float32)
    unpatch(model)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_patched_half_precision_model_matches(dtype):
    ref_model = tiny_lora_model("llama", dtype=dtype)
    model = patch(copy.deepcopy(ref_model))
    # half-precision base with fp32 adapters: peft runs the adapters in fp32, we in the base dtype
    _assert_same(loss_and_grads(model), loss_and_grads(ref_model), dtype, factor=2.0)


def test_dora_falls_back_to_peft_stays_correct_and_is_reported():
    ref_model = tiny_lora_model("llama", use_dora=True)
    model = patch(copy.deepcopy(ref_model))
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert monkey_patch.lora_spec(layer) is None, "DoRA must not take the fast path"
    report = model._kernels_fast_path
    assert report["lora"] == {"fast": 0, "total": 28, "off": {"DoRA or another LoRA variant": 28}}
    assert report["mlp"]["fast"] == 0 and report["rms_norm"] == {"fast": 9, "total": 9, "off": {}}
    lines = report_lines(report)
    assert "0/28 LoRA projections" in lines[0]
    assert any(line.startswith("  28 LoRA projections off the fast path: DoRA") for line in lines)
    assert any(line.startswith("WARNING") and "28 of 28 LoRA projections" in line for line in lines)
    assert any(line.startswith("WARNING") and "4 of 4 MLPs" in line for line in lines)
    _assert_same(loss_and_grads(model), loss_and_grads(ref_model), torch.float32)


def test_the_fast_path_report_of_a_plain_lora_model_counts_everything():
    model = patch(tiny_lora_model("mistral", dropout=0.1))
    report = model._kernels_fast_path
    assert {k: (r["fast"], r["total"]) for k, r in report.items()} == {
        "lora": (28, 28), "mlp": (4, 4), "rms_norm": (9, 9), "rope": (4, 4), "loss": (1, 1)}
    assert not any(line.startswith("WARNING") for line in report_lines(report))


def test_partitioned_weights_fall_back_to_the_module_forward():
    # DeepSpeed ZeRO-3 marks its parameters with ds_id and ds_status (NOT_AVAILABLE while partitioned, the
    # names of deepspeed's ZeroParamStatus); the fast paths must not read a partitioned one
    ref_model = tiny_lora_model("llama")
    model = patch(copy.deepcopy(ref_model))
    layers = model.base_model.model.model.layers
    not_available = enum.Enum("ZeroParamStatus", "AVAILABLE NOT_AVAILABLE INFLIGHT").NOT_AVAILABLE
    for i, w in enumerate([layers[0].self_attn.q_proj.base_layer.weight, layers[1].mlp.down_proj.base_layer.weight]):
        w.ds_id, w.ds_status, w.ds_numel = i + 1, not_available, w.numel()
    assert monkey_patch.lora_spec(layers[0].self_attn.q_proj) is None
    assert monkey_patch.proj_spec(layers[1].mlp.down_proj) is None
    report = fast_path_report(model)
    assert report["lora"]["off"] == {"base weight partitioned by DeepSpeed ZeRO-3 (not gathered by a layer wrapper)": 2}
    assert report["mlp"]["off"] == {"down_proj off the fast path (base weight partitioned by DeepSpeed ZeRO-3 (not gathered by a layer wrapper)); "
                                    "the MLP runs its projections' own forwards around our SwiGLU": 1}
    _assert_same(loss_and_grads(model), loss_and_grads(ref_model), torch.float32)


def test_eval_with_labels_returns_logits_and_the_same_loss():
    ref_model = tiny_lora_model("mistral").eval()
    model = patch(copy.deepcopy(ref_model)).eval()
    ids, labels = batch(3)
    with torch.no_grad():
        out, ref = model(input_ids=ids, labels=labels), ref_model(input_ids=ids, labels=labels)
    assert out.logits is not None
    torch.testing.assert_close(out.logits, ref.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=1e-5)


def test_save_pretrained_writes_the_same_adapter(tmp_path):
    from safetensors.torch import load_file

    ref_model = tiny_lora_model("llama")
    model = patch(copy.deepcopy(ref_model))
    model.save_pretrained(tmp_path / "patched")
    ref_model.save_pretrained(tmp_path / "ref")
    a = load_file(tmp_path / "patched" / "adapter_model.safetensors")
    b = load_file(tmp_path / "ref" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and len(a) == 56
    assert all(torch.equal(a[k], b[k]) for k in a)
    import json

    def config(d):
        c = json.loads((tmp_path / d / "adapter_config.json").read_text())
        c["target_modules"] = sorted(c["target_modules"])  # peft writes a set: its order varies
        return c

    assert config("patched") == config("ref")
    assert not any("kernels" in k for k in model.state_dict())


def test_unpatch_restores_the_original_forwards():
    model = patch(tiny_lora_model("llama"))
    assert any(monkey_patch._QKV in m.__dict__ for m in model.modules())
    unpatch(model)
    assert not any(binding.ORIGINAL in m.__dict__ or "forward" in m.__dict__ for m in model.modules())
    assert not any(monkey_patch._QKV in m.__dict__ for m in model.modules())
    import transformers.models.llama.modeling_llama as ml

    assert not hasattr(ml.apply_rotary_pos_emb, "_kernels_original")


def test_partitioned_lm_head_is_gathered_for_the_fused_loss(monkeypatch):
    # ZeRO-3 leaves lm_head.weight partitioned and hooks lm_head; the fused loss gathers it itself with
    # deepspeed.zero.GatheredParameters (stubbed here: deepspeed is not a test dependency)
    import contextlib
    import sys
    import types

    gathered = []

    @contextlib.contextmanager
    def gathered_parameters(params, modifier_rank=None):
        gathered.append([tuple(p.shape) for p in params])
        yield

    fake = types.ModuleType("deepspeed")
    fake.zero = types.SimpleNamespace(GatheredParameters=gathered_parameters)
    monkeypatch.setitem(sys.modules, "deepspeed", fake)

    ref_model = tiny_lora_model("llama")
    model = patch(copy.deepcopy(ref_model))
    lm_head = model.base_model.model.lm_head
    lm_head.weight.ds_id = 7
    lm_head.register_forward_pre_hook(lambda m, a: None)  # ZeRO-3 hooks every module
    out, grads = loss_and_grads(model)
    assert gathered == [[(512, 64)]] and out.logits is None
    _assert_same((out, grads), loss_and_grads(ref_model), torch.float32)


def _down_gemms(model, ids, labels):
    """(forward-pass, backward-pass) counts of the down projection's own GEMM."""
    assert sum(n.endswith("down_proj.base_layer") for n, _ in model.named_modules()) == model.config.num_hidden_layers
    return projection_gemms(model, ids, labels, ("down_proj.base_layer",), model.config.intermediate_size)


def test_trimmed_recompute_takes_h_a_d_from_the_first_forward(monkeypatch):
    """A trimmed recompute needs h only for h A_d^T, which the first forward kept (mlp_stash.SmallStash): no
    SwiGLU forward runs in the backward, and the gradients are those of the recompute that runs it."""
    from contract_review.kernels.ops import lora

    calls = {"fwd": 0, "bwd": 0}
    orig = lora.swiglu_forward

    def counting(e, g):
        calls["bwd" if torch._C._current_graph_task_id() != -1 else "fwd"] += 1
        return orig(e, g)

    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), trim_recompute=False)
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"))
    monkeypatch.setattr(lora, "swiglu_forward", counting)
    (out_a, g_a) = loss_and_grads(model)
    assert calls == {"fwd": model.config.num_hidden_layers, "bwd": 0}
    (out_b, g_b) = loss_and_grads(ref)
    assert torch.equal(out_a.loss, out_b.loss)
    for n in g_b:
        assert torch.equal(g_a[n], g_b[n]), n


def test_trim_recompute_only_where_the_mlp_output_goes_to_the_residual(monkeypatch):
    layers = tiny_lora_model("llama").config.num_hidden_layers
    # without checkpointing there is no recompute: the first forward never skips anything
    plain = patch(tiny_lora_model("llama"))
    assert plain._kernels_patch_counts["trim_recompute"] == layers
    assert _down_gemms(plain, *batch(0)) == (layers, 0)
    unpatch(plain)
    assert not any(monkey_patch._RECOMPUTE_LAYER in m.__dict__ for m in plain.modules())
    # a layer class not known to end with residual + mlp(x) (a norm after the MLP would save a tensor made
    # from its output) recomputes in full
    monkeypatch.setattr(monkey_patch, "_RESIDUAL_MLP_LAYERS", frozenset())
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"))
    assert model._kernels_patch_counts["trim_recompute"] == 0
    assert _down_gemms(model, *batch(0)) == (layers, layers)


def _embedding_output_grad(model, ids, labels, **kw):
    """The loss's gradients and whether the embedding output got one (a hook keeps the output)."""
    seen = {}
    emb = model.get_input_embeddings()
    # first in line: the embedding's own output tensor (peft's hook then makes it require grad in place)
    h = emb.register_forward_hook(lambda m, a, out: seen.setdefault("out", out), prepend=True)
    model.zero_grad(set_to_none=True)
    model(input_ids=ids, labels=labels, **kw).loss.backward()
    h.remove()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}, seen["out"]


@pytest.mark.parametrize("checkpointing", [False, "non_reentrant", "reentrant"])
def test_embedding_output_gradient_is_skipped_only_where_nothing_needs_it(checkpointing):
    ref = tiny_lora_model("llama", gradient_checkpointing=checkpointing)
    model = patch(copy.deepcopy(ref))
    kept = patch(copy.deepcopy(ref), skip_embedding_grad=False)
    assert model._kernels_patch_counts["embedding_grad"] == 1 and kept._kernels_patch_counts["embedding_grad"] == 0
    ids, labels = batch(0)
    g_skip, out_skip = _embedding_output_grad(model, ids, labels)
    g_kept, out_kept = _embedding_output_grad(kept, ids, labels)
    # the adapters' gradients do not depend on it: bit for bit the same
    for n in g_kept:
        assert torch.equal(g_skip[n], g_kept[n]), n
    if not checkpointing:  # peft adds its hook only for checkpointed models: nothing to skip
        assert not out_skip.requires_grad and not out_kept.requires_grad
        return
    # peft's hook made the output a leaf that requires grad
    assert out_skip.requires_grad and out_skip.grad_fn is None and out_kept.grad is not None
    # skipped unless a reentrant checkpoint needs an input that requires grad
    assert (out_skip.grad is None) == (checkpointing != "reentrant")


def test_a_users_own_inputs_embeds_keeps_its_gradient():
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"))
    ids, labels = batch(0)
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    model(inputs_embeds=embeds, labels=labels).loss.backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    unpatch(model)
    assert "forward" not in model.base_model.model.model.__dict__


def test_a_deep_copy_of_a_patched_model_refers_to_its_own_layers():
    model = copy.deepcopy(patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant")))
    stack = model.base_model.model.model
    for layer in stack.layers:
        assert layer.mlp.__dict__[monkey_patch._RECOMPUTE_LAYER] is layer
        att = layer.self_attn
        assert att.q_proj.__dict__[monkey_patch._QKV] == (att.k_proj, att.v_proj)
    assert stack.forward.__self__ is stack
    assert patch(model)._kernels_patch_counts["embedding_grad"] == 0  # already there: not bound twice


def _node_names(loss) -> list[str]:
    seen, todo, names = set(), [loss.grad_fn], []
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_q_k_and_v_are_one_node_with_the_gradients_of_three(family):
    """fuse_qkv: each attention's q, k and v come from one LoRASharedInputFunction node (Mistral's k and v
    narrower: grouped-query attention), with the gradients of three separate projections."""
    ref = patch(tiny_lora_model(family), fuse_qkv=False)
    model = patch(tiny_lora_model(family))
    layers = model.config.num_hidden_layers
    assert model._kernels_patch_counts["fused_qkv"] == layers and ref._kernels_patch_counts["fused_qkv"] == 0
    ids, labels = batch(0)
    names = _node_names(model(input_ids=ids, labels=labels).loss)
    assert names.count("LoRASharedInputFunctionBackward") == layers
    assert names.count("LoRALinearFunctionBackward") == layers  # o_proj
    assert _node_names(ref(input_ids=ids, labels=labels).loss).count("LoRALinearFunctionBackward") == 4 * layers
    # every output the node made was handed over: nothing is left waiting on k_proj or v_proj
    assert not any(monkey_patch._PENDING in m.__dict__ for m in model.modules())
    _assert_same(loss_and_grads(model), loss_and_grads(ref), torch.float32)


def test_q_k_and_v_fused_under_checkpointing_offload_and_stash_match():
    kw = dict(offload_activations=True, offload_mlp=0.5)
    ref = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), fuse_qkv=False, **kw)
    model = patch(tiny_lora_model("llama", gradient_checkpointing="non_reentrant"), **kw)
    for seed in (0, 1):
        _assert_same(loss_and_grads(model, seed), loss_and_grads(ref, seed), torch.float32)


def test_a_watched_projection_is_not_fused_and_its_hook_sees_its_output():
    ref = patch(tiny_lora_model("llama"), fuse_qkv=False)
    model = patch(tiny_lora_model("llama"))
    seen = []
    model.base_model.model.model.layers[0].self_attn.k_proj.register_forward_hook(lambda m, a, out: seen.append(out))
    ids, labels = batch(0)
    names = _node_names(model(input_ids=ids, labels=labels).loss)
    layers = model.config.num_hidden_layers
    # layer 0: q, k (peft's own forward, hooked), v apart; the other layers fused
    assert names.count("LoRASharedInputFunctionBackward") == layers - 1
    assert len(seen) == 1 and seen[0].shape[-1] == model.config.hidden_size
    _assert_same(loss_and_grads(model), loss_and_grads(ref), torch.float32)
