"""``patch(model, offload_activations=True)`` over training steps: the loss curve of a short AdamW run with
the layer inputs in host memory is the one without (bit for bit on CPU, 1e-6 relative on a GPU), and under
DeepSpeed ZeRO-3 (one CPU rank, gloo, in its own process) the partitioned layers keep their inputs and say so."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import assert_same_moved, tiny_lora_model, train_steps

from contract_review.kernels.patching.monkey_patch import patch
from contract_review.kernels.schedule import offload



def test_training_follows_the_same_loss_curve_and_reuses_buffers():
    ref = patch(tiny_lora_model("mistral", gradient_checkpointing="non_reentrant"))
    model = patch(copy.deepcopy(ref), offload_activations=True)
    offload.POOL.clear()
    ours = train_steps(model, 4, batches=2)
    stats = offload.POOL.stats()
    # three layer inputs a step (the last stays on the device), the same three buffers every step
    assert stats["buffers"] == stats["free"] == 3 and stats["in_use"] == 0, f"buffers reused across steps: {stats}"
    theirs = train_steps(ref, 4, batches=2)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_same_moved(a, b, f"loss at step {i}")
    assert theirs[-1] < theirs[0], "the reference did not learn"


ZERO3_SCRIPT = r"""
import json, os, sys
sys.path[:0] = [os.environ["KERNELS_TESTS"], os.getcwd()]
import kernel_testing, torch, warnings
torch.set_num_threads(1)
import deepspeed
from tiny_models import batch, tiny_lora_model
from contract_review.kernels.schedule import offload
from contract_review.kernels.patching.monkey_patch import patch

def run(off):
    model = tiny_lora_model("llama", gradient_checkpointing="non_reentrant")
    patch(model, offload_activations=off)
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "steps_per_print": 10**9,
           "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=params, config=cfg,
                                           optimizer=torch.optim.AdamW(params, lr=3e-3))
    losses, held = [], []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for step in range(3):
            ids, labels = batch(step)
            before = offload.POOL.stats()["in_use"]
            loss = engine(input_ids=ids, labels=labels).loss
            held.append(offload.POOL.stats()["in_use"] - before)
            engine.backward(loss)
            engine.step()
            losses.append(loss.item())
    return losses, held, [str(x.message) for x in w if x.category is offload.OffloadWarning]

deepspeed.init_distributed(dist_backend="gloo")
ref, ours = run(False), run(True)
print("ZERO3 " + json.dumps({"ref": ref, "ours": ours}), flush=True)
"""


# ~10 s once DeepSpeed's CPU comm op is built (the first run on a machine builds it)
def test_zero3_offload_trains_like_zero3_without_it():
    pytest.importorskip("deepspeed")
    here = Path(__file__).resolve().parents[2]  # tests/kernels: the helpers the script imports
    env = dict(os.environ, DS_ACCELERATOR="cpu", KERNELS_TEST_DEVICE="cpu", MASTER_ADDR="127.0.0.1",
               MASTER_PORT="29533", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", KERNELS_TESTS=str(here))
    proc = subprocess.run([sys.executable, "-c", ZERO3_SCRIPT], capture_output=True, text=True, timeout=600,
                          env=env, cwd=here.parent.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ZERO3 ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads(lines[-1][len("ZERO3 "):])
    (ref, _, _), (ours, held, warned) = res["ref"], res["ours"]
    assert held == [3, 3, 3], "ZeRO-3 partitioned layers still offload their inputs (all but the last layer's)"
    assert any("ZeRO-3" in m for m in warned), "and say that this combination is verified on CPU only"
    for a, b in zip(ours, ref):
        assert abs(a - b) <= 1e-6 * abs(b), res
