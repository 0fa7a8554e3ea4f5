"""LoRA training-step throughput on one GPU: transformers + peft (`hf`), ours (`native`, via kernels.patch),
and, when their wheels import, Liger Kernel (`liger`) and Unsloth (`unsloth`).

The anchor workload (/work/shared/anchors/README.md): random-initialised Llama-2-shaped model in bf16,
LoRA r=16 alpha=32 dropout 0 on q,k,v,o,gate,up,down, seq 2048, gradient checkpointing (non-reentrant),
AdamW on the adapters, random token ids, median of 7 steps after 3 warm-ups.

FLOPs per token = 6*N_linear + 4*N_lm_head + 8*T*d*L (forward + recompute + input-gradient backward for
the frozen decoder linears; forward + input gradient for the head; causal attention's QK^T and PV, 2*T*d
per token per layer forward, four times): 41.5 G for 7B at T=2048. ``mfu`` is against the datasheet dense
bf16 peak (989.4 TFLOP/s for H100/H200 SXM), ``mfu_measured`` against the 8192^3 bf16 matmul this
script measures on the card at start (``--gemm``), both written to every row.

One backend per process (patches and peak-memory statistics must not mix):
    python bench/kernels/lora_step.py --backend hf --model 7b --bs 4
    python bench/kernels/lora_step.py --backend native --model 7b --bs 2,4
    python bench/kernels/lora_step.py --gemm                      # the matmul ceiling only
Each row is one JSON line appended to --out (default bench/results/lora_step.jsonl) and printed as
``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                num_attention_heads=40, num_key_value_heads=40),
    # Mistral-7B shape (GQA 32/8): the same kernels, another family
    "mistral7b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8),
}
VOCAB = 32000
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DATASHEET_PEAK_BF16 = 989.4e12  # dense bf16, H100/H200 SXM datasheet


def flops_per_token(model_key: str, seq: int) -> float:
    s = SHAPES[model_key]
    d, f, L = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    kv = d * s["num_key_value_heads"] // s["num_attention_heads"]
    n_lin = L * (2 * d * d + 2 * d * kv + 3 * d * f)
    n_head = d * VOCAB
    return 6 * n_lin + 4 * n_head + 8 * seq * d * L


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "triton", "liger_kernel", "unsloth", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def measure_gemm() -> float:
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)  # random data: zeros run faster
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(20):
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    return 2 * n**3 / statistics.median(ts)


def build_model(model_key: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    cls_cfg, cls = (MistralConfig, MistralForCausalLM) if model_key.startswith("mistral") else (LlamaConfig, LlamaForCausalLM)
    cfg = cls_cfg(vocab_size=VOCAB, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  use_cache=False, **SHAPES[model_key])
    torch.manual_seed(0)
    with torch.device("cuda"):
        try:
            model = cls._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        except TypeError:
            model = cls._from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def peft_wrap(model, r: int):
    from peft import LoraConfig, get_peft_model

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, bias="none", target_modules=TARGETS,
                     task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    model.train()
    return model


def setup_backend(args):
    """Returns (model, params, notes)."""
    notes = {}
    if args.backend == "unsloth":
        os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", "/tmp/unsloth_compiled_cache")
        import unsloth  # noqa: F401  (must precede transformers)
        import torch
        from unsloth import FastLanguageModel

        path = Path(args.model_dir)
        if not (path / "config.json").exists():
            build_model(args.model).save_pretrained(path)
            _toy_tokenizer(path)
            torch.cuda.empty_cache()
        model, _ = FastLanguageModel.from_pretrained(
            model_name=str(path), max_seq_length=args.seq, dtype=torch.bfloat16, load_in_4bit=False,
            load_in_8bit=False, full_finetuning=False, use_exact_model_name=True)
        model = FastLanguageModel.get_peft_model(
            model, r=args.r, lora_alpha=2 * args.r, lora_dropout=0, bias="none", target_modules=TARGETS,
            use_gradient_checkpointing="unsloth", random_state=3407, max_seq_length=args.seq)
        model.train()
        notes["gc"] = "unsloth"
    else:
        if args.backend == "liger":
            from liger_kernel.transformers import apply_liger_kernel_to_llama, apply_liger_kernel_to_mistral

            fn = apply_liger_kernel_to_mistral if args.model.startswith("mistral") else apply_liger_kernel_to_llama
            fn(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=True)
            notes["liger"] = "rope,rms_norm,swiglu,fused_linear_cross_entropy"
        model = peft_wrap(build_model(args.model), args.r)
        if args.backend == "native":
            from kernels import patch

            patch(model)
            notes["patched"] = model._kernels_patch_counts
        notes["gc"] = "non-reentrant"
    notes["attn"] = getattr(model.config, "_attn_implementation", None)
    params = [p for p in model.parameters() if p.requires_grad]
    notes["lora_dtype"] = ",".join(sorted({str(p.dtype) for p in params}))
    return model, params, notes


def _toy_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<unk>", model_max_length=4096).save_pretrained(path)


def run(args):
    import torch

    run_id = args.run_id or time.strftime("%Y%m%dT%H%M%S")
    card = torch.cuda.get_device_name()
    base = dict(backend=args.backend, model=args.model, seq_len=args.seq, lora_r=args.r, card=card, gpus=1,
                run_id=run_id, versions=versions(), command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                flops_per_token=flops_per_token(args.model, args.seq), peak_flops_datasheet=DATASHEET_PEAK_BF16,
                peak_flops_measured=args.gemm_flops)
    t0 = time.time()
    try:
        model, params, notes = setup_backend(args)
    except Exception as e:  # noqa: BLE001 - a backend that cannot start is a row, not a crash
        traceback.print_exc()
        emit(args, dict(base, micro_batch=None, error=f"setup {type(e).__name__}: {str(e)[:300]}"))
        return
    base.update(notes, build_s=round(time.time() - t0, 1))
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    gen = torch.Generator(device="cuda").manual_seed(1234)
    for bs in args.bs:
        row = dict(base, micro_batch=bs)
        try:
            ids = torch.randint(3, VOCAB, (bs, args.seq), device="cuda", generator=gen)
            labels = ids.clone()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            times, losses = [], []
            for i in range(args.warmup + args.steps):
                torch.cuda.synchronize()
                t = time.perf_counter()
                loss = model(input_ids=ids, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                dt = time.perf_counter() - t
                losses.append(float(loss.detach()))
                if i >= args.warmup:
                    times.append(dt)
                del loss
            med = statistics.median(times)
            tok_s = bs * args.seq / med
            achieved = base["flops_per_token"] * tok_s
            row.update(step_s=med, step_min=min(times), step_max=max(times), steps_s=[round(x, 4) for x in times],
                       tokens_per_s=tok_s, peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30,
                       peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30, tflops=achieved / 1e12,
                       mfu=achieved / DATASHEET_PEAK_BF16,
                       mfu_measured=achieved / args.gemm_flops if args.gemm_flops else None,
                       loss_first=losses[0], loss_last=losses[-1], n_warmup=args.warmup, n_timed=len(times))
            if any(x != x for x in losses):
                row["warning"] = "NaN loss"
        except torch.cuda.OutOfMemoryError as e:
            row.update(error="OOM: " + str(e).splitlines()[0][:200])
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            row.update(error=f"{type(e).__name__}: {str(e)[:300]}")
        emit(args, row)
        ids = labels = None
        torch.cuda.empty_cache()


def emit(args, row):
    line = json.dumps(row)
    print("RESULT " + line, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(line + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["hf", "native", "liger", "unsloth"], default="native")
    ap.add_argument("--model", choices=list(SHAPES), default="7b")
    ap.add_argument("--bs", default="4", help="micro-batch sizes, comma-separated")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--gemm", action="store_true", help="only measure the bf16 matmul ceiling and print it")
    ap.add_argument("--gemm-flops", type=float, default=None, help="measured ceiling (FLOP/s) for mfu_measured")
    ap.add_argument("--model-dir", default="/tmp/lora_step_model", help="unsloth loads the random model from here")
    ap.add_argument("--run-id", default=os.environ.get("RUN_ID"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lora_step.jsonl"))
    args = ap.parse_args(argv)
    args.bs = [int(x) for x in args.bs.split(",")]
    if args.gemm:
        import torch

        print(f"GEMM {measure_gemm():.6e} {torch.cuda.get_device_name()}", flush=True)
        return
    run(args)


if __name__ == "__main__":
    main()
