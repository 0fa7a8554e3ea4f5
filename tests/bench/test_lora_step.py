"""bench/lora_step.py on the CPU: the command line (a training config and overrides, validated as `train`
validates them, and the step's own options), the FLOPs it counts, a real step of the model the training
package builds (the rows it writes), the rows of a backend that cannot start, the profile of one step, and
the lists' commands."""

import json
import subprocess
from pathlib import Path

import lora_step
import pytest
import torch
import step_profile

from contract_review.training.logging import flops_per_token
from contract_review.training.models import architecture_config

ROOT = Path(__file__).resolve().parents[2]
C7 = "configs/llama2-7b_lora_1gpu.yaml"
TINY = ["model.config=tiny-llama", "model.dtype=float32", "train.precision=fp32", "lora.dropout=0",
        "data.max_length=32", "model.attn_implementation=sdpa"]
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_the_step_is_the_configs_workload():
    args, cfg = lora_step.parse_args(["--config", C7, "lora.r=16", "lora.target_modules=all-linear"])
    assert args.bs == [cfg.optim.batch_size] == [4] and cfg.lora.r == 16 and cfg.lora.modules() == SEVEN
    assert (args.warmup, args.steps, args.cuda_graph, args.sdpa) == (3, 7, False, "auto")
    assert lora_step.parse_args(["--config", C7, "--bs", "2,4"])[0].bs == [2, 4]


@pytest.mark.parametrize("argv, message", [
    (["lora.r=0"], "lora.r"),                                   # the config's own validation
    (["--bs", "0"], "micro-batch sizes must be positive"),
    (["--bs", "4,x"], "not a comma list of integers"),
    (["--mem-cap-gib", "0"], "--mem-cap-gib must be positive"),
    (["backend=hf", "--cuda-graph"], "--cuda-graph is for backend native"),
    (["backend=hf", "--stash-keep", "1"], "--stash-keep is for backend native"),
    (["--cuda-graph", "--warmup", "2"], "--cuda-graph needs --warmup 3"),
    (["--cuda-graph", "train.precision=fp16"], "grad scaler cannot run inside a captured graph"),
    (["backend=unsloth", "--sdpa", "flash"], "--sdpa is for backend native or hf"),
    (["objective=classify", "backend=hf"], "objective sft"),
    (["distributed.strategy=ddp"], "bench/train.py"),
])
def test_invalid_command_lines_are_refused_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        lora_step.parse_args(["--config", C7, *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_flops_per_token_are_the_notes_and_the_adapters_are_apart():
    # kernels/NOTES.md: 41.53 GFLOP a token for 7B, 80.14 for 13B, at T = 2048 and Llama-2's vocabulary
    seven, thirteen = architecture_config("llama2-7b"), architecture_config("llama2-13b")
    assert round(flops_per_token(seven, 2048) / 1e9, 2) == 41.53
    assert round(flops_per_token(thirteen, 2048) / 1e9, 2) == 80.14
    d, f = 4096, 11008
    assert lora_step.lora_flops_per_token(seven, 16, SEVEN) == 8 * 16 * 32 * (4 * 2 * d + 3 * (d + f))
    legal = lora_step.lora_flops_per_token(seven, 32, ["q_proj", "o_proj"])
    assert legal == 8 * 32 * 32 * (2 * 2 * d) and legal < 0.01 * flops_per_token(seven, 2048)
    # Mistral's k and v are d x d/4 under GQA (8 of 32 heads)
    assert lora_step.lora_flops_per_token(architecture_config("mistral-7b"), 16, ["k_proj"]) == 8 * 16 * 32 * (d + d // 4)


def test_a_step_of_the_model_training_builds_writes_one_row_per_micro_batch(results):
    assert lora_step.main(["--config", C7, "--bs", "1,2", "--warmup", "1", "--steps", "2", *TINY, "backend=hf"]) == 0
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["micro_batch"] for r in rows] == [1, 2] and not any(r.get("error") for r in rows)
    r = rows[1]
    for key in ("source", "run_id", "commit", "card", "versions", "command", "config", "overrides", "backend",
                "tokens_per_s", "step_s", "mfu", "flops_per_token", "fast_path", "trainable_params"):
        assert key in r, key
    assert (r["source"], r["config"], r["backend"], r["model"], r["seq_len"]) == ("lora_step", C7, "hf", "tiny-llama", 32)
    assert r["overrides"] == [*TINY, "backend=hf"] and r["n_timed"] == 2 and len(r["steps_s"]) == 2
    assert r["tokens_per_s"] == pytest.approx(2 * 32 / r["step_s"])
    # the model `train` builds for this config: the default tokenizer's vocabulary, LoRA r=32 on q and o
    assert r["vocab_size"] == 49152 and r["lora_r"] == 32 and r["targets"] == ["q_proj", "o_proj"]
    assert r["trainable_params"] == 2 * 2 * 32 * (64 + 64)  # 2 layers x (q, o) x r x (in + out)
    assert r["loss_first"] == pytest.approx(11, abs=0.5)  # ln(49152) = 10.8: random weights, random tokens


def test_our_kernels_step_says_how_many_lora_layers_took_the_fast_path(results):
    assert lora_step.main(["--config", C7, "--bs", "1", "--warmup", "0", "--steps", "1", *TINY, "backend=native",
                           "lora.target_modules=all-linear"]) == 0
    (r,) = [json.loads(x) for x in results.read_text().splitlines()]
    assert not r.get("error") and r["lora_path"] == {"fast": 14, "fallback": 0}
    assert r["kernels_patched"]["lora"] == 14 and r["fuse_qkv"] is True and r["fast_path"] is None


def test_a_backend_that_cannot_start_here_is_an_error_row(results):
    assert lora_step.main(["--config", C7, *TINY, "backend=liger"]) == 0
    (r,) = [json.loads(x) for x in results.read_text().splitlines()]
    assert r["micro_batch"] is None and r["backend"] == "liger"
    assert r["error"].startswith("setup TrainingError: backend liger:") and "CUDA device" in r["error"]


@pytest.mark.parametrize("name, category", [
    ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT", "gemm"),
    ("void cublasLt::splitKreduce_kernel<32, 16, int, float>", "gemm"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26", "attention"),
    ("_rope_kernel", "triton"),
    ("triton_poi_fused_add_view_5", "triton"),
    ("triton_poi_fused__to_copy_t_0", "copy/cast"),  # Inductor's casts count as casts
    ("void at::native::vectorized_elementwise_kernel<8, at::native::CUDAFunctor_add<c10::BFloat16>>", "elementwise"),
    ("Memcpy DtoH (Device -> Pinned)", "copy/cast"),
])
def test_kernel_names_fall_in_their_category(name, category):
    assert step_profile.kernel_category(name) == category


def test_a_profiled_step_is_a_real_step_and_its_table_is_written(tmp_path):
    lin = torch.nn.Linear(8, 8)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    before = lin.weight.detach().clone()

    def step():
        loss = lin(torch.randn(4, 8)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    out = step_profile.profile_step(step, tmp_path / "p" / "profile_x_mb4.txt")
    text = (tmp_path / "p" / "profile_x_mb4.txt").read_text()
    assert out["file"] == "profile_x_mb4.txt" and out["launches"] == 0  # no CUDA kernels on a CPU
    assert text.startswith("one step under the profiler") and "host:" in text and "aten::addmm" in text
    assert not torch.equal(before, lin.weight)


def _list_commands(name: str) -> list[list[str]]:
    """Every entry of a list as gpu_run.sh would run it (variables expanded)."""
    script = ('bench() { shift 2; printf "%s\\0" "$@"; printf "\\n\\0"; }; OUT=/tmp/out PROF=/tmp/prof TOK=tok; '
              f'source bench/lists/{name}.sh')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    commands, cur = [], []
    for part in out.split("\0"):
        if part == "\n":
            commands.append(cur)
            cur = []
        elif part:
            cur.append(part)
    return commands


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "bench" / "lists").glob("*.sh")))
def test_every_listed_step_and_run_is_a_valid_command(name):
    from contract_review.training.config import load_config

    commands = _list_commands(name)
    assert commands
    for cmd in commands:
        if "bench/lora_step.py" in cmd:
            lora_step.parse_args(cmd[cmd.index("bench/lora_step.py") + 1:])
        elif "bench/train.py" in cmd and "run" in cmd:
            args = cmd[cmd.index("run") + 1:]
            config = args[args.index("--config") + 1]
            load_config(ROOT / config, [a for a in args if "=" in a and not a.startswith("-")])
