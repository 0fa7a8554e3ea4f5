"""bench/kernels/lora_step.py on the CPU: the command line (defaults, the legal configuration, validation),
FLOPs a token for the GQA and targets variants, error rows, the summary's ratios, the QLoRA layer swap
(when bitsandbytes is importable) and gpu_run.sh's syntax and phase names. Nothing here needs a GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "kernels" / "lora_step.py"
GPU_RUN = ROOT / "bench" / "kernels" / "gpu_run.sh"


def _load():
    spec = importlib.util.spec_from_file_location("bench_lora_step", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ls = _load()
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# --------------------------------------------------------------------------------------------------
# command line


def test_defaults_are_the_anchor_workload():
    a = ls.parse_args([])
    assert (a.backend, a.model, a.bs, a.seq, a.r, a.alpha) == ("native", "7b", [4], 2048, 16, 32)
    assert a.targets == SEVEN and not a.qlora and a.mem_cap_gib is None and not a.offload_activations
    assert (a.warmup, a.steps) == (3, 7)


def test_existing_command_lines_still_parse():
    a = ls.parse_args(["--backend", "hf", "--model", "7b", "--bs", "2,4", "--gemm-flops", "7.5e14",
                       "--out", "/tmp/x.jsonl"])
    assert a.backend == "hf" and a.bs == [2, 4] and a.gemm_flops == 7.5e14
    assert ls.parse_args(["--gemm"]).gemm


def test_legal_configuration_and_alpha_default():
    a = ls.parse_args(["--r", "32", "--targets", "q_proj,o_proj"])
    assert a.alpha == 64 and a.targets == ["q_proj", "o_proj"]
    assert ls.parse_args(["--r", "32", "--alpha", "16"]).alpha == 16
    # any order and spaces: stored in the canonical order, so equal sets compare equal in rows
    assert ls.parse_args(["--targets", "o_proj, q_proj"]).targets == ["q_proj", "o_proj"]


@pytest.mark.parametrize("argv", [
    ["--targets", "q_proj,lm_head"],
    ["--targets", "q_proj,q_proj"],
    ["--targets", ""],
    ["--bs", "0"],
    ["--bs", "4,x"],
    ["--alpha", "0"],
    ["--mem-cap-gib", "0"],
    ["--mem-cap-gib", "-3"],
    ["--backend", "hf", "--offload-activations"],
    ["--backend", "unsloth", "--offload-activations"],
    ["--backend", "liger", "--qlora"],
    ["--model", "70b"],
    ["--r", "0"],
])
def test_invalid_command_lines_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as e:
        ls.parse_args(argv)
    assert e.value.code == 2


def test_memory_qlora_and_offload_options():
    a = ls.parse_args(["--model", "mistral7b", "--bs", "2,4", "--mem-cap-gib", "24"])
    assert a.mem_cap_gib == 24.0 and a.bs == [2, 4]
    a = ls.parse_args(["--backend", "unsloth", "--model", "13b", "--qlora", "--mem-cap-gib", "24"])
    assert a.qlora and ls.model_dir(a) == ls.MODEL_ROOT / "13b"
    assert ls.parse_args(["--offload-activations"]).offload_activations


# --------------------------------------------------------------------------------------------------
# FLOPs


def test_flops_per_token_matches_the_notes():
    # kernels/NOTES.md: 41.53 GFLOP a token for 7B, 80.14 for 13B, at T = 2048
    assert ls.flops_per_token("7b", 2048) == 6 * 32 * (4 * 4096**2 + 3 * 4096 * 11008) + 4 * 4096 * 32000 \
        + 8 * 2048 * 4096 * 32
    assert round(ls.flops_per_token("7b", 2048) / 1e9, 2) == 41.53
    assert round(ls.flops_per_token("13b", 2048) / 1e9, 2) == 80.14


def test_flops_per_token_counts_gqa_k_and_v_at_their_width():
    d, kv, f, L = 4096, 1024, 14336, 32  # Mistral-7B: 32 query heads, 8 key/value heads
    n_lin = L * (2 * d * d + 2 * d * kv + 3 * d * f)
    assert ls.flops_per_token("mistral7b", 2048) == 6 * n_lin + 4 * d * 32000 + 8 * 2048 * d * L
    # 6.98e9 decoder parameters (Mistral-7B's 7.24e9 less its embedding and head)
    assert round(n_lin / 1e9, 2) == 6.98


def test_targets_and_rank_change_only_the_adapter_flops():
    """All base linears run (forward, recompute, input gradient) whichever projections carry LoRA: the
    workload's FLOPs stay; only the adapters' own, reported apart, change."""
    seven = ls.base_row(ls.parse_args([]), "cpu", "t")
    legal = ls.base_row(ls.parse_args(["--r", "32", "--targets", "q_proj,o_proj"]), "cpu", "t")
    qlora = ls.base_row(ls.parse_args(["--qlora"]), "cpu", "t")
    assert seven["flops_per_token"] == legal["flops_per_token"] == qlora["flops_per_token"]
    d, f = 4096, 11008
    assert seven["lora_flops_per_token"] == 8 * 16 * 32 * (4 * 2 * d + 3 * (d + f))
    assert legal["lora_flops_per_token"] == 8 * 32 * 32 * (2 * 2 * d)
    assert legal["lora_flops_per_token"] < 0.01 * legal["flops_per_token"]
    gqa = ls.lora_flops_per_token("mistral7b", 16, ["k_proj"])
    assert gqa == 8 * 16 * 32 * (4096 + 1024)


def test_rows_carry_the_configuration_fields():
    a = ls.parse_args(["--backend", "hf", "--r", "32", "--targets", "q_proj,o_proj", "--mem-cap-gib", "24", "--qlora"])
    row = ls.base_row(a, "NVIDIA H200", "RUN1")
    for key in ("backend", "model", "seq_len", "lora_r", "lora_alpha", "targets", "qlora", "mem_cap_gib",
                "offload_activations", "card", "gpus", "run_id", "versions", "command", "flops_per_token"):
        assert key in row, key
    assert (row["lora_alpha"], row["targets"], row["qlora"], row["mem_cap_gib"]) == (64, ["q_proj", "o_proj"], True, 24)
    json.dumps(row)


# --------------------------------------------------------------------------------------------------
# error rows


def test_a_backend_that_cannot_start_writes_an_error_row(tmp_path, monkeypatch):
    out = tmp_path / "rows.jsonl"
    monkeypatch.setitem(sys.modules, "unsloth", None)  # import unsloth fails as where it is not installed
    ls.main(["--backend", "unsloth", "--model", "13b", "--bs", "1", "--out", str(out), "--run-id", "R"])
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["backend"] == "unsloth" and row["run_id"] == "R" and row["micro_batch"] is None
    assert row["error"].startswith("setup ") and "unsloth" in row["error"]


def test_setup_failure_under_a_cap_says_it_does_not_fit(tmp_path, monkeypatch):
    out = tmp_path / "rows.jsonl"

    def boom(args):
        raise RuntimeError("no GPU here")

    monkeypatch.setattr(ls, "setup_backend", boom)
    ls.main(["--backend", "native", "--model", "mistral7b", "--bs", "2,4", "--mem-cap-gib", "24",
             "--out", str(out), "--run-id", "R"])
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["error"] == "setup RuntimeError: no GPU here" and row["fits_cap"] is False
    assert row["mem_cap_gib"] == 24 and row["model"] == "mistral7b"


def test_full_recompute_is_the_native_ablation_and_is_labelled(capsys):
    a = ls.parse_args(["--full-recompute"])
    assert a.full_recompute and not ls.parse_args([]).full_recompute
    with pytest.raises(SystemExit) as e:
        ls.parse_args(["--backend", "unsloth", "--full-recompute"])
    assert e.value.code == 2 and "--full-recompute is for --backend native" in capsys.readouterr().err
    assert ls._label(dict(backend="native", trim_recompute=False)) == "native+fullrecompute"
    assert ls._label(dict(backend="native", trim_recompute=True, cuda_graph=True)) == "native+graph"


def test_offload_mlp_is_a_native_fraction_and_is_labelled(capsys):
    assert ls.parse_args(["--offload-mlp", "0.5"]).offload_mlp == 0.5 and ls.parse_args([]).offload_mlp == 0.0
    for argv, msg in ((["--backend", "unsloth", "--offload-mlp", "0.5"], "--offload-mlp is for --backend native"),
                      (["--offload-mlp", "1.5"], "a fraction of the decoder layers")):
        with pytest.raises(SystemExit):
            ls.parse_args(argv)
        assert msg in capsys.readouterr().err
    row = dict(backend="native", offload_activations=True, offload_mlp=0.5, cuda_graph=True)
    assert ls._label(row) == "native+offload+mlp0.5+graph"
    rows = [_row("native", 13600.0, cuda_graph=True, offload_activations=True),
            _row("native", 14700.0, cuda_graph=True, offload_activations=True, offload_mlp=0.5),
            _row("unsloth", 12100.0)]
    text = ls.summarize(rows)
    assert "native+offload+mlp0.5+graph/unsloth 1.21x" in text
    assert "native+offload+mlp0.5+graph/native+offload+graph 1.08x" in text


def test_sigterm_handler_writes_the_running_row(tmp_path, monkeypatch):
    out = tmp_path / "rows.jsonl"
    exits = []
    monkeypatch.setattr(ls.os, "_exit", lambda code: exits.append(code))
    monkeypatch.setitem(ls._LIVE, "out", str(out))
    monkeypatch.setitem(ls._LIVE, "row", {"backend": "unsloth", "micro_batch": 4})
    monkeypatch.setitem(ls._LIVE, "stage", "micro_batch 4 step 2/10")
    ls._on_sigterm(15, None)
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["error"] == "timeout: SIGTERM during micro_batch 4 step 2/10" and exits == [124]


# --------------------------------------------------------------------------------------------------
# summary


def _row(backend, tok, peak=10.0, **kw):
    base = dict(backend=backend, model="7b", micro_batch=4, seq_len=2048, lora_r=16, lora_alpha=32, targets=SEVEN,
                qlora=False, mem_cap_gib=None, offload_activations=False, phase=backend + "7", step_s=8192 / tok,
                tokens_per_s=tok, peak_mem_gib=peak, peak_reserved_gib=peak + 1, mfu=0.5, loss_first=11.0,
                loss_last=9.8)
    base.update(kw)
    return base


def test_summary_prints_ratios_for_matched_configurations_only():
    rows = [_row("hf", 6000.0, 18.0), _row("native", 12000.0, 16.0), _row("unsloth", 10000.0, 15.0),
            _row("native", 11000.0, 9.0, offload_activations=True, phase="native7off"),
            _row("native", 13000.0, lora_r=32, lora_alpha=64, targets=["q_proj", "o_proj"], phase="legal_native"),
            dict(_row("hf", 1.0, lora_r=32, lora_alpha=64, targets=["q_proj", "o_proj"], phase="legal_hf"),
                 error="OOM: x")]
    text = ls.summarize(rows)
    assert "native/hf 2.00x" in text and "native/unsloth 1.20x" in text
    assert "native+offload/native 0.92x" in text and "native+offload/unsloth 1.10x" in text
    assert "legal_hf" in text and "ERROR OOM" in text
    ratio_lines = [x for x in text.splitlines() if "x tok/s" in x]
    assert len(ratio_lines) == 1  # the legal native row has no partner without error


def test_summary_keeps_graphed_rows_apart_and_compares_them():
    rows = [_row("native", 12000.0), _row("unsloth", 10000.0),
            _row("native", 13200.0, cuda_graph=True, phase="native7g")]
    text = ls.summarize(rows)
    assert "native+graph/native 1.10x" in text and "native+graph/unsloth 1.32x" in text
    assert "native/unsloth 1.20x" in text  # the eager row is not overwritten by the graphed one


@pytest.mark.parametrize("argv, msg", [
    (["--backend", "hf", "--cuda-graph"], "--cuda-graph is for --backend native"),
    (["--cuda-graph", "--warmup", "2"], "--cuda-graph needs --warmup 3"),
])
def test_cuda_graph_flag_is_checked(argv, msg, capsys):
    with pytest.raises(SystemExit):
        ls.parse_args(argv)
    assert msg in capsys.readouterr().err


def test_summary_mode_filters_by_run_id(tmp_path, capsys):
    p = tmp_path / "rows.jsonl"
    p.write_text("\n".join(json.dumps(dict(_row(b, t), run_id=rid)) for b, t, rid in
                           [("hf", 6000.0, "A"), ("native", 12000.0, "A"), ("native", 1.0, "B")]) + "\n")
    ls.main(["--summary", str(p), "--run-id", "A"])
    assert "native/hf 2.00x" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# QLoRA layer swap (CPU bitsandbytes), and how kernels.patch treats 4-bit LoRA layers


def test_qlora_swap_keeps_lm_head_and_falls_back_to_peft_for_4bit_layers():
    bnb = pytest.importorskip("bitsandbytes")
    import torch

    tiny = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=512)
    model = ls.build_model("7b", device="cpu", config_overrides=tiny)
    assert ls.quantize_decoder_linears(model) == 2 * 7
    assert type(model.lm_head) is torch.nn.Linear and model.is_loaded_in_4bit
    q = model.model.layers[0].self_attn.q_proj
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.bnb_quantized and q.weight.quant_type == "nf4"
    model = ls.peft_wrap(model, 8, 16, ["q_proj", "o_proj"])
    counts = ls.lora_path_counts(model)
    assert counts == {"fast": 0, "fallback": 4}  # peft's bnb LoRA layers: peft's own forward


# --------------------------------------------------------------------------------------------------
# gpu_run.sh


def test_gpu_run_sh_parses_and_defines_both_calls_phases():
    subprocess.run(["bash", "-n", str(GPU_RUN)], check=True)
    text = GPU_RUN.read_text()
    call_a = "native7 hf7 unsloth7 legal_native legal_hf legal_unsloth native7off"
    call_b = "native13 hf13 unsloth13 mistral24 qlora13 micro"
    for name in (call_a + " " + call_b + " qlora13_unsloth qlora13_hf tests hf native liger").split():
        assert f"\n    {name})" in text, name
    # every lora_step command line in the script is valid for the parser
    for line in text.splitlines():
        if "$STEP --backend" in line:
            argv = line.split("$STEP", 1)[1].split(";;")[0].replace("$LEGAL", "--model 7b --bs 4 --r 32 --alpha 64 "
                                                                     "--targets q_proj,o_proj")
            argv = argv.replace("${BS:-4}", "4").replace("$MEMCAP", "24").split()
            ls.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# --profile


@pytest.mark.parametrize("name,cat", [
    ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT", "gemm"),
    ("void cublasLt::splitKreduce_kernel<32, 16, int, float>", "gemm"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26", "attention"),
    ("_rope_kernel", "triton"),
    ("triton_poi_fused_add_view_5", "triton"),
    ("triton_poi_fused__to_copy_t_0", "copy/cast"),  # Inductor's casts count as casts
    ("void at::native::vectorized_elementwise_kernel<8, at::native::CUDAFunctor_add<c10::BFloat16>>", "elementwise"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda>", "copy/cast"),
    ("Memcpy DtoH (Device -> Pinned)", "copy/cast"),
])
def test_kernel_names_fall_in_their_category(name, cat):
    assert ls.kernel_category(name) == cat


def test_profile_step_writes_the_ranked_table_and_the_host_ops(tmp_path):
    import torch

    class Tiny(torch.nn.Module):  # the (input_ids, labels) -> .loss interface of a causal LM
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, input_ids, labels):
            return type("Out", (), {"loss": self.lin(input_ids).pow(2).mean()})()

    model = Tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.lin.weight.detach().clone()
    step, graphed = ls.make_step(model, opt, list(model.parameters()), torch.randn(4, 8), None, cuda_graph=False)
    assert graphed is None
    out = ls.profile_step(step, tmp_path / "p" / "profile_x_mb4.txt")
    text = (tmp_path / "p" / "profile_x_mb4.txt").read_text()
    assert out["file"] == "profile_x_mb4.txt" and out["launches"] == 0  # no CUDA kernels on a CPU
    assert text.startswith("one step under the profiler") and "host:" in text and "aten::addmm" in text
    assert not torch.equal(before, model.lin.weight)  # the profiled step is a real training step
