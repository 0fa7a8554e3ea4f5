"""Tiny random-weight Llama- and Mistral-shaped models with peft LoRA, for the patch and convergence tests.

A few hundred thousand parameters: four decoder layers of hidden 64, MLP 176, vocabulary 512; the
Mistral one has grouped-query attention (8 query heads, 2 key/value heads). Same seed, same weights.
"""

from __future__ import annotations

import torch
from kernel_testing import DEVICE, ON_GPU

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_config(family: str, layers: int = 4):
    common = dict(vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=layers,
                  max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False, use_cache=False)
    if family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(num_attention_heads=4, num_key_value_heads=4, **common)
    if family == "mistral":
        from transformers import MistralConfig

        return MistralConfig(num_attention_heads=8, num_key_value_heads=2, sliding_window=None, **common)
    raise ValueError(family)


def tiny_model(family: str, dtype=torch.float32, seed: int = 0, layers: int = 4):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_config(family, layers)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    return model.to(device=DEVICE, dtype=dtype)


def tiny_lora_model(family: str, dtype=torch.float32, seed: int = 0, dropout: float = 0.0,
                    use_dora: bool = False, gradient_checkpointing: bool | str = False, r: int = 8,
                    preserve_rng_state: bool = True, layers: int = 4):
    from peft import LoraConfig, get_peft_model

    model = tiny_model(family, dtype, seed, layers)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": gradient_checkpointing == "reentrant",
                                           "preserve_rng_state": preserve_rng_state})
        model.enable_input_require_grads()
    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=dropout, target_modules=TARGETS, use_dora=use_dora,
                     task_type="CAUSAL_LM")
    torch.manual_seed(seed + 1)
    model = get_peft_model(model, cfg)
    # peft starts B at zero; a non-zero B exercises every adapter gradient from the first step
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.train()
    return model


def batch(seed: int, bsz: int = 2, seq: int = 32, vocab: int = 512, prompt: int = 8):
    """Random tokens; labels mask the first ``prompt`` tokens (-100) and one sequence's tail (padding)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (bsz, seq), generator=g)
    labels = ids.clone()
    labels[:, :prompt] = -100
    labels[-1, seq - 5:] = -100
    return ids.to(DEVICE), labels.to(DEVICE)


def train_steps(model, steps: int, batches: int, lr: float = 3e-3) -> list[torch.Tensor]:
    """AdamW on the trainable parameters over `batches` fixed batches seen in turn (so the loss has to
    fall); the detached loss of every step."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        ids, labels = batch(step % batches)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    return losses


def loss_and_grads(model, seed: int = 0):
    """One forward and backward from zeroed gradients on ``batch(seed)``: (the model's output, the
    trainable parameters' gradients by name, cloned)."""
    ids, labels = batch(seed)
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    return out, {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def projection_gemms(model, ids, labels, suffixes: tuple[str, ...], in_features: int) -> tuple[int, int]:
    """(forward-pass, backward-pass) counts of the GEMMs of one training step that multiply an
    (tokens, ``in_features``) input by the base weight of a projection whose name ends with one of
    ``suffixes``: the projection itself (its input gradient multiplies by the weight the other way round, from
    the output's width, and is not counted). A dispatch mode sees every mm/addmm, whoever calls it."""
    from torch.utils._python_dispatch import TorchDispatchMode

    weights = {m.weight.data_ptr() for n, m in model.named_modules() if n.endswith(suffixes)}
    assert weights, f"no module ends with {suffixes}"
    counts = {"fwd": 0, "bwd": 0}

    class Count(TorchDispatchMode):
        phase = "fwd"

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.addmm_):
                a, b = (args[0], args[1]) if func.overloadpacket is torch.ops.aten.mm else (args[1], args[2])
                if a.shape[-1] == in_features and b.data_ptr() in weights:
                    counts[self.phase] += 1
            return func(*args, **(kwargs or {}))

    with Count() as mode:
        loss = model(input_ids=ids, labels=labels).loss
        mode.phase = "bwd"
        loss.backward()
    return counts["fwd"], counts["bwd"]


# -- CUDA-graphed training (kernels/schedule/cuda_graph.py), shared by its fast, slow and GPU tests --------------

def graph_model(gc: bool = True, **patch_kw):
    """The tiny Llama, patched; checkpointing without RNG state, which a capture cannot stash."""
    from contract_review.kernels.patching.monkey_patch import patch

    model = tiny_lora_model("llama", gradient_checkpointing=gc, preserve_rng_state=False)
    patch(model, **patch_kw)
    return model


def trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def graphed_train(model, steps: int, batches: int, lr: float = 3e-3, **kw):
    """(losses, the GraphedBackward) of ``steps`` AdamW steps over ``batches`` fixed batches, forward and
    backward through ``GraphedBackward(**kw)``."""
    from contract_review.kernels.schedule.cuda_graph import GraphedBackward

    params = trainable(model)
    opt = torch.optim.AdamW(params, lr=lr)
    step = GraphedBackward(lambda b: model(**b).loss, params, **kw)
    losses = []
    for i in range(steps):
        ids, labels = batch(i % batches)
        losses.append(step({"input_ids": ids, "labels": labels}))
        opt.step()
        opt.zero_grad(set_to_none=True)
    return losses, step


# -- comparisons shared by the schedule tests (offload, MLP stash) and their slow tier ----------------------

def assert_identical_step(model, ref, seed: int = 0) -> None:
    """The same loss and the same adapter gradients, bit for bit, from one step of each."""
    (out_a, g_a), (out_b, g_b) = loss_and_grads(model, seed), loss_and_grads(ref, seed)
    assert torch.equal(out_a.loss, out_b.loss)
    for n in g_b:
        assert torch.equal(g_a[n], g_b[n]), n


def gate_up_gemms(model, ids, labels) -> tuple[int, int]:
    """(forward, backward) counts of the gate and up projections' own GEMMs."""
    return projection_gemms(model, ids, labels, ("gate_proj.base_layer", "up_proj.base_layer"),
                            model.config.hidden_size)


def assert_same_moved(a, b, what: str = "") -> None:
    """Tensors that moving bytes (offload) must leave unchanged: bit-identical on CPU; on a GPU up to fp32
    rounding (1e-6 relative: attention backward kernels need not be run-to-run deterministic)."""
    if ON_GPU:
        err = ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()
        assert err < 1e-6, f"{what}: relative error {err:.2e}"
    else:
        assert torch.equal(a, b), f"{what}: not bit-identical (max diff {(a - b).abs().max().item():.3e})"

