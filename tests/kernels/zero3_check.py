"""Run by patching/slow/test_patch_zero3.py in its own process (DeepSpeed initialises torch.distributed): trains the tiny
Llama with peft LoRA under DeepSpeed ZeRO-3 (parameters partitioned, one CPU rank, gloo) with and without
kernels.patch, and prints both loss curves as one JSON line."""

import json
import os
import sys

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29517")
os.environ.setdefault("RANK", "0")
os.environ.setdefault("LOCAL_RANK", "0")
os.environ.setdefault("WORLD_SIZE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]  # the test helpers, the repository

import kernel_testing  # noqa: E402,F401  (TRITON_INTERPRET before triton)
import torch  # noqa: E402

torch.set_num_threads(1)
import deepspeed  # noqa: E402
from tiny_models import batch, tiny_lora_model  # noqa: E402

from contract_review.kernels.patching.monkey_patch import patch  # noqa: E402

STEPS = 4


def run(patched: bool):
    model = tiny_lora_model("llama")
    if patched:
        patch(model)
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1,
           "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
           "steps_per_print": 10**9}
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=params, config=cfg,
                                           optimizer=torch.optim.AdamW(params, lr=3e-3))
    w = engine.module.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    assert hasattr(w, "ds_id") and w.numel() == 0, "ZeRO-3 did not partition the base weights"
    losses = []
    for step in range(STEPS):
        ids, labels = batch(step % 4)
        loss = engine(input_ids=ids, labels=labels).loss
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    deepspeed.init_distributed(dist_backend="gloo")
    ref = run(False)
    ours = run(True)
    print("ZERO3 " + json.dumps({"ref": ref, "ours": ours}), flush=True)
