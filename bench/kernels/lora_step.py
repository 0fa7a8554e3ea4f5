"""LoRA training-step throughput on one GPU: transformers + peft (`hf`), ours (`native`, via kernels.patch),
and, when their wheels import, Liger Kernel (`liger`) and Unsloth (`unsloth`).

The anchor workload (the one issue #4's reference figures were measured at): random-initialised Llama-2-shaped model in bf16,
LoRA r=16 alpha=32 dropout 0 on q,k,v,o,gate,up,down, seq 2048, gradient checkpointing (non-reentrant),
AdamW on the adapters, random token ids, median of 7 steps after 3 warm-ups. Variants:
``--r/--alpha/--targets`` (the legal configuration: r=32, alpha=64, q_proj,o_proj), ``--model mistral7b``
(GQA), ``--qlora`` (decoder linears in bitsandbytes 4-bit NF4, double quant, bf16 compute; lm_head and
embeddings stay bf16), ``--mem-cap-gib G`` (the caching allocator is capped at G GiB after the model is
built and before the timed steps; rows say ``fits_cap``), ``--offload-activations`` (native only:
``kernels.patch(model, offload_activations=True)``), ``--full-recompute`` (native only: ``trim_recompute=False``,
the checkpoint recompute runs the MLP's down projection as everyone else's does), ``--offload-mlp F`` (native
only: ``offload_mlp=F``, the gate and up outputs of a fraction F of the layers kept in host memory, so their
recompute skips two GEMMs), ``--cuda-graph``.

FLOPs per token = 6*N_linear + 4*N_lm_head + 8*T*d*L (forward + recompute + input-gradient backward for
the frozen decoder linears; forward + input gradient for the head; causal attention's QK^T and PV, 2*T*d
per token per layer forward, four times): 41.5 G for 7B at T=2048. It counts the work that runs whatever
carries the adapters: every base linear is frozen and still computed in the forward, the recompute and
the input-gradient backward (the gradient must reach the adapted projections of every earlier layer), so
``--targets q_proj,o_proj`` or ``--r 32`` leave it unchanged; so does ``--qlora`` (the same GEMMs on
dequantised weights; the dequantisation is not counted). The adapters' own FLOPs are not in it (< 1%);
rows give them apart as ``lora_flops_per_token``. ``mfu`` is against the datasheet dense bf16 peak
(989.4 TFLOP/s for H100/H200 SXM), ``mfu_measured`` against the 8192^3 bf16 matmul this script measures
on the card at start (``--gemm``), both written to every row.

One backend per process (patches and peak-memory statistics must not mix):
    python bench/kernels/lora_step.py --backend hf --model 7b --bs 4
    python bench/kernels/lora_step.py --backend native --model 7b --bs 2,4
    python bench/kernels/lora_step.py --backend native --r 32 --targets q_proj,o_proj   # alpha 2*r
    python bench/kernels/lora_step.py --backend native --model mistral7b --bs 2,4 --mem-cap-gib 24
    python bench/kernels/lora_step.py --backend native --model 13b --qlora --bs 1,2 --mem-cap-gib 24
    python bench/kernels/lora_step.py --backend unsloth --model 13b --bs 1   # saves the model first
    python bench/kernels/lora_step.py --save-model --model 13b              # only save it (for unsloth)
    python bench/kernels/lora_step.py --gemm                                # the matmul ceiling only
Each row is one JSON line appended to --out (default bench/results/lora_step.jsonl) and printed as
``RESULT {json}``. A backend that cannot start, a micro-batch that fails (OOM included) and a process
stopped by SIGTERM (``timeout``) each write an error row, so a run always says what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # timeline.py beside it

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
BACKENDS = ["hf", "native", "liger", "unsloth"]
MODEL_ROOT = Path("/tmp/lora_step_models")  # unsloth loads the random model from MODEL_ROOT/<model>
_DONE = ".lora_step_complete"  # written last by --save-model: a directory without it is partial


def projection_dims(model_key: str) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each decoder projection."""
    s = SHAPES[model_key]
    d, f = s["hidden_size"], s["intermediate_size"]
    kv = d * s["num_key_value_heads"] // s["num_attention_heads"]
    return {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
            "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}


def flops_per_token(model_key: str, seq: int) -> float:
    """Training FLOPs a token of the frozen base (module docstring): 6*N_linear + 4*N_lm_head + 8*T*d*L.

    N_linear counts every decoder projection with its real shape (k and v are d x kv under GQA). It does
    not depend on which projections carry adapters, on r, or on 4-bit storage: all base linears are
    computed (forward, recompute, input gradient) whatever the targets, since the gradient must flow
    through every layer to reach the adapted projections below it.
    """
    from types import SimpleNamespace

    from contract_review.training.logging import flops_per_token as training_flops  # the one formula, also the train log's

    return training_flops(SimpleNamespace(**SHAPES[model_key], vocab_size=VOCAB), seq)


def lora_flops_per_token(model_key: str, r: int, targets: list[str]) -> float:
    """The adapters' own FLOPs a token (not in ``flops_per_token`` nor in MFU): per adapted projection,
    x A^T and (xA^T) B^T are 2r(in+out) forward; forward + recompute + input gradient + weight gradients
    make 8r(in+out)."""
    L = SHAPES[model_key]["num_hidden_layers"]
    dims = projection_dims(model_key)
    return 8 * r * L * sum(sum(dims[t]) for t in targets)


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "triton", "accelerate", "liger_kernel", "unsloth", "unsloth_zoo",
                 "bitsandbytes"):
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


# ---------------------------------------------------------------------------------------------------
# models


def build_model(model_key: str, device: str = "cuda", config_overrides: dict | None = None):
    """Random-initialised bf16 Llama/Mistral of the named shape, built directly on ``device``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    cls_cfg, cls = (MistralConfig, MistralForCausalLM) if model_key.startswith("mistral") else (LlamaConfig, LlamaForCausalLM)
    kw = dict(vocab_size=VOCAB, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
              use_cache=False, **SHAPES[model_key])
    if model_key.startswith("mistral"):
        kw["sliding_window"] = None  # full attention at 2048 either way; sdpa's causal path
    kw.update(config_overrides or {})
    cfg = cls_cfg(**kw)
    torch.manual_seed(0)
    with torch.device(device):
        try:
            model = cls._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        except TypeError:
            model = cls._from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def quantize_decoder_linears(model, compute_dtype=None) -> int:
    """QLoRA storage: replaces every ``nn.Linear`` of the decoder (``model.model``; not lm_head) by a
    ``bitsandbytes.nn.Linear4bit`` quantised from its weight (NF4, double quant, ``compute_dtype``
    compute, bf16 by default), on the weight's device; the bf16 weights are dropped as each layer is
    replaced. Marks the model ``is_loaded_in_4bit`` so that peft wraps the 4-bit layers with its bnb LoRA
    class, as for a model loaded with a BitsAndBytesConfig. Returns the number of layers replaced."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    compute_dtype = compute_dtype or torch.bfloat16
    decoder = model.model if hasattr(model, "model") and hasattr(model, "lm_head") else model
    n = 0
    for parent in list(decoder.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  quant_storage=torch.uint8, device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, compress_statistics=True,
                                         quant_type="nf4", quant_storage=torch.uint8, module=q)
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data, requires_grad=False)
            q.weight = q.weight.to(child.weight.device)  # Params4bit.to quantises (bf16 -> packed 4-bit)
            setattr(parent, name, q)
            child.weight = None  # drop the bf16 storage now, not at the end of the loop
            n += 1
    model.is_loaded_in_4bit = True
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return n


def peft_wrap(model, r: int, alpha: int | None = None, targets: list[str] | None = None,
              preserve_rng_state: bool = True):
    """``preserve_rng_state=False`` for CUDA-graph capture: checkpoint then stashes no RNG state (dropout is 0
    here, so there is none to replay)."""
    from peft import LoraConfig, get_peft_model

    model.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False, "preserve_rng_state": preserve_rng_state})
    model.enable_input_require_grads()
    cfg = LoraConfig(r=r, lora_alpha=2 * r if alpha is None else alpha, lora_dropout=0.0, bias="none",
                     target_modules=list(targets or TARGETS), task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    model.train()
    return model


def patch_native(model, offload_activations: bool = False, trim_recompute: bool = True, offload_mlp: float = 0.0,
                 keep_last_input: bool | None = None, stash_keep: int | None = None,
                 fuse_qkv: bool = True):
    """``kernels.patch`` with the bench's switches; ``keep_last_input`` and ``stash_keep`` set the module
    constants ``kernels.schedule.offload.KEEP_LAST_INPUT`` and ``kernels.schedule.mlp_stash.KEEP_LAST`` (None: their default)."""
    from contract_review.kernels.schedule import mlp_stash, offload
    from contract_review.kernels.patching.monkey_patch import patch

    if keep_last_input is not None:
        offload.KEEP_LAST_INPUT = keep_last_input
    if stash_keep is not None:
        mlp_stash.KEEP_LAST = stash_keep
    return patch(model, offload_activations=offload_activations, trim_recompute=trim_recompute,
                 offload_mlp=offload_mlp, fuse_qkv=fuse_qkv)


def lora_path_counts(model) -> dict:
    """How many peft LoRA layers take our fast path and how many fall back to peft's forward (those
    whose base is not a plain frozen nn.Linear: bitsandbytes Linear4bit under --qlora)."""
    from contract_review.kernels.patching.monkey_patch import lora_spec

    fast = fallback = 0
    for m in model.modules():
        if hasattr(m, "base_layer") and hasattr(m, "lora_A") and hasattr(m, "lora_B"):
            if lora_spec(m) is None:
                fallback += 1
            else:
                fast += 1
    return {"fast": fast, "fallback": fallback}


def model_dir(args) -> Path:
    return Path(args.model_dir) if args.model_dir else MODEL_ROOT / args.model


def saved_model_ok(path: Path, model_key: str) -> bool:
    try:
        return json.loads((path / _DONE).read_text()).get("model") == model_key
    except (OSError, ValueError):
        return False


def save_model(model_key: str, path: Path) -> float:
    """Builds the random model on the GPU and saves it (safetensors + a toy tokenizer) for Unsloth, which
    loads from a directory. Written to ``path.tmp`` and renamed when complete; removes the other shapes'
    directories under MODEL_ROOT first when the disk is short. Returns seconds taken."""
    import torch

    t0 = time.time()
    s = SHAPES[model_key]
    n_params = (sum(i * o for i, o in projection_dims(model_key).values()) * s["num_hidden_layers"]
                + 2 * VOCAB * s["hidden_size"])
    need = 2 * n_params * 1.05 + 2**30
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if shutil.disk_usage(path.parent).free < need and path.parent == MODEL_ROOT:
        for other in MODEL_ROOT.iterdir():
            if other != path:
                print(f"[save] removing {other} to make room", flush=True)
                shutil.rmtree(other, ignore_errors=True)
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise RuntimeError(f"not enough disk for the {model_key} model at {path.parent}: "
                           f"{free / 2**30:.1f} GiB free, {need / 2**30:.1f} GiB needed")
    model = build_model(model_key)
    model.save_pretrained(tmp, safe_serialization=True)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    _toy_tokenizer(tmp)
    (tmp / _DONE).write_text(json.dumps({"model": model_key, **SHAPES[model_key]}))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return time.time() - t0


def _toy_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<unk>", model_max_length=4096).save_pretrained(path)


def ensure_saved_model(args) -> tuple[Path, float | None]:
    """The saved random model for Unsloth: reused when complete, else saved by a child process (which
    imports transformers without Unsloth, and frees its GPU memory when it exits)."""
    path = model_dir(args)
    if saved_model_ok(path, args.model):
        return path, None
    _stage("saving the random model")
    t0 = time.time()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--save-model", "--model", args.model,
           "--model-dir", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not saved_model_ok(path, args.model):
        raise RuntimeError(f"saving the model failed (rc={res.returncode}): {(res.stderr or res.stdout)[-300:]}")
    return path, round(time.time() - t0, 1)


# ---------------------------------------------------------------------------------------------------
# backends


def setup_backend(args):
    """Returns (model, params, notes)."""
    notes = {}
    if args.backend == "unsloth":
        import unsloth  # noqa: F401  (imported first in run(); must precede transformers)
        import torch
        from unsloth import FastLanguageModel

        path, save_s = ensure_saved_model(args)
        notes["model_save_s"] = save_s
        _stage("unsloth load")
        model, _ = FastLanguageModel.from_pretrained(
            model_name=str(path), max_seq_length=args.seq, dtype=torch.bfloat16, load_in_4bit=args.qlora,
            load_in_8bit=False, full_finetuning=False, use_exact_model_name=True)
        model = FastLanguageModel.get_peft_model(
            model, r=args.r, lora_alpha=args.alpha, lora_dropout=0, bias="none", target_modules=args.targets,
            use_gradient_checkpointing="unsloth", random_state=3407, max_seq_length=args.seq)
        try:
            FastLanguageModel.for_training(model)
        except Exception as e:  # noqa: BLE001 - as the anchors: optional
            print("[unsloth] for_training failed:", e, flush=True)
        model.train()
        notes["gc"] = "unsloth (checkpointed activations offloaded to CPU)"
        if args.qlora:
            notes["quant"] = "unsloth load_in_4bit (bitsandbytes NF4, double quant, bf16 compute)"
    else:
        import torch

        if args.backend == "liger":
            from liger_kernel.transformers import apply_liger_kernel_to_llama, apply_liger_kernel_to_mistral

            fn = apply_liger_kernel_to_mistral if args.model.startswith("mistral") else apply_liger_kernel_to_llama
            fn(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=True)
            notes["liger"] = "rope,rms_norm,swiglu,fused_linear_cross_entropy"
        _stage("build")
        model = build_model(args.model)
        if args.qlora:
            _stage("quantize")
            notes["quantized_linears"] = quantize_decoder_linears(model, torch.bfloat16)
            notes["quant"] = "bitsandbytes Linear4bit NF4, double quant, bf16 compute; lm_head/embeddings bf16"
        model = peft_wrap(model, args.r, args.alpha, args.targets, preserve_rng_state=not args.cuda_graph)
        if args.backend == "native":
            _stage("patch")
            patch_native(model, args.offload_activations, trim_recompute=not args.full_recompute,
                         offload_mlp=args.offload_mlp, keep_last_input=args.keep_last_input,
                         stash_keep=args.stash_keep,
                         fuse_qkv=not args.no_fuse_qkv)
            notes["patched"] = getattr(model, "_kernels_patch_counts", None)
            notes["lora_path"] = lora_path_counts(model)
        notes["gc"] = "non-reentrant" + (", preserve_rng_state=False" if args.cuda_graph else "")
    notes["attn"] = getattr(model.config, "_attn_implementation", None)
    params = [p for p in model.parameters() if p.requires_grad]
    notes["lora_dtype"] = ",".join(sorted({str(p.dtype) for p in params}))
    notes["trainable_params"] = sum(p.numel() for p in params)
    return model, params, notes


# ---------------------------------------------------------------------------------------------------
# the run: rows, the memory cap, SIGTERM


_LIVE: dict = {"out": None, "row": None, "stage": "start"}


def _stage(s: str):
    _LIVE["stage"] = s
    print(f"[lora_step] {s}", flush=True)


def _on_sigterm(signum, frame):  # noqa: ARG001
    """`timeout` sends SIGTERM: write what was running as an error row, then leave at once."""
    if _LIVE["out"] and _LIVE["row"] is not None:  # before the first row exists, gpu_run.sh writes one
        emit(_LIVE["out"], dict(_LIVE["row"], error=f"timeout: SIGTERM during {_LIVE['stage']}"))
    os._exit(124)


def base_row(args, card: str, run_id: str) -> dict:
    return dict(backend=args.backend, model=args.model, seq_len=args.seq, lora_r=args.r, lora_alpha=args.alpha,
                targets=list(args.targets), qlora=args.qlora, mem_cap_gib=args.mem_cap_gib,
                offload_activations=args.offload_activations, cuda_graph=args.cuda_graph, sdpa_backend=args.sdpa,
                trim_recompute=(not args.full_recompute) if args.backend == "native" else None,
                offload_mlp=args.offload_mlp if args.backend == "native" else None,
                keep_last_input=args.keep_last_input, stash_keep=args.stash_keep,
                fuse_qkv=(not args.no_fuse_qkv) if args.backend == "native" else None,
                card=card, gpus=1, run_id=run_id,
                phase=os.environ.get("PHASE"), versions=versions(),
                command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                flops_per_token=flops_per_token(args.model, args.seq),
                lora_flops_per_token=lora_flops_per_token(args.model, args.r, args.targets),
                peak_flops_datasheet=DATASHEET_PEAK_BF16, peak_flops_measured=args.gemm_flops)


def apply_mem_cap(gib: float) -> dict:
    """Caps this process's caching allocator at ``gib`` GiB (reserved memory) for everything after."""
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    frac = gib * 2**30 / total
    if frac > 1:
        raise ValueError(f"--mem-cap-gib {gib} is above the card's {total / 2**30:.1f} GiB")
    torch.cuda.set_per_process_memory_fraction(frac)
    return dict(mem_cap_fraction=frac, reserved_at_cap_gib=torch.cuda.memory_reserved() / 2**30)


GRAPH_WARMUP = 2  # GraphedBackward's eager calls before its capture; --warmup must cover them and the capture

SDPA_BACKENDS = {"cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                 "math": "MATH"}


def _sdpa_context(name: str | None):
    """torch's SDPA restricted to one backend for the whole step: the forward, the checkpoint's recompute
    and the backward all run inside it (the recompute happens during backward)."""
    if not name or name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[name])])


def make_step(model, opt, params, ids, labels, cuda_graph: bool, sdpa: str | None = None):
    """One training step as a callable returning the loss: eager, or forward + backward replayed as a CUDA
    graph (``kernels.schedule.cuda_graph.GraphedBackward``: eager for its warm-up calls, then captured once) with the
    optimizer step eager in both. Returns (step, the GraphedBackward or None)."""
    batch = {"input_ids": ids, "labels": labels}
    graphed = None
    if cuda_graph:
        from contract_review.kernels.schedule.cuda_graph import GraphedBackward

        # rows of random tokens, no position ids or mask: one sequence per row
        graphed = GraphedBackward(lambda b: model(**b).loss, params, warmup=GRAPH_WARMUP, enabled=True,
                                  unpacked_rows=True)

    def step():
        with _sdpa_context(sdpa):
            if graphed is not None:
                loss = graphed(batch)
            else:
                loss = model(**batch).loss
                loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step, graphed


def _timed_steps(step, warmup: int, steps: int, bs: int):
    import torch

    times, losses, host = [], [], []
    for i in range(warmup + steps):
        _LIVE["stage"] = f"micro_batch {bs} step {i + 1}/{warmup + steps}"
        torch.cuda.synchronize()
        t = time.perf_counter()
        loss = step()
        t_host = time.perf_counter()  # the host has issued the whole step (the GPU may still be running it)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        losses.append(float(loss.detach()))
        if i >= warmup:
            times.append(dt)
            host.append(t_host - t)
        del loss
    return times, losses, host


# kernel-name patterns -> category, first match wins (cuBLAS/CUTLASS GEMMs, attention, PyTorch's own
# elementwise/copy kernels, then Triton: ours are `_name_kernel`, Inductor's `triton_*`)
KERNEL_CATEGORIES = [
    ("attention", ("flash", "fmha", "attention", "sdpa", "flex")),
    ("gemm", ("gemm", "cutlass", "sm90_xmma", "nvjet", "cublas", "matmul", "splitk")),
    ("copy/cast", ("copy", "memcpy", "memset", "cast", "fill", "cat_", "catarray", "transpose", "contiguous")),
    ("elementwise", ("at::native", "elementwise", "vectorized", "reduce", "unrolled", "foreach", "multi_tensor")),
    ("triton", ("triton", "_kernel")),
]


def kernel_category(name: str) -> str:
    low = name.lower()
    for cat, keys in KERNEL_CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


class _MemorySegments:
    """Peak allocated memory in each stretch of one eager training step: every decoder layer's forward, the
    final norm and loss, every layer's backward (recompute included; it ends when the gradient of the layer's
    input is made, which a hook on that tensor sees), to the step's end. It says where a step's memory peaks,
    hence which tensors can raise or lower it. (The allocator's recorded history would say what is alive too, but torch
    2.11 breaks non-reentrant checkpointing's early stop while it records: pytorch issue #179536.)"""

    def __init__(self, model):
        import torch

        self.rows: list[tuple[str, float]] = []
        self.cur = "step start"
        layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
        self.hooks = [layer.register_forward_pre_hook(functools.partial(self._layer, i))
                      for i, layer in enumerate(layers)]
        self.n = len(layers)
        norm = next((m for n, m in model.named_modules() if n.endswith("model.norm")), None)
        if norm is not None:
            self.hooks.append(norm.register_forward_pre_hook(self._norm))
        self._torch = torch

    def _layer(self, i, module, args):  # noqa: ARG002
        if self._torch._C._current_graph_task_id() != -1:
            return  # a checkpoint's recompute (transformers 5.17 reruns the module call): inside "backward i"
        self.mark(f"forward layer {i}")
        x = args[0] if args and isinstance(args[0], self._torch.Tensor) else None
        if x is not None and x.requires_grad:  # its gradient ends layer i's backward
            x.register_hook(lambda g: self.mark(f"backward layer {i - 1}" if i else "after the layers' backward"))

    def _norm(self, module, args):  # noqa: ARG002
        self.mark("final norm + loss (forward and backward)")
        x = args[0] if args and isinstance(args[0], self._torch.Tensor) else None
        if x is not None and x.requires_grad:
            x.register_hook(lambda g: self.mark(f"backward layer {self.n - 1}"))

    def mark(self, name: str) -> None:
        torch = self._torch
        self.rows.append((self.cur, torch.cuda.max_memory_allocated() / 2**30))
        torch.cuda.reset_peak_memory_stats()
        self.cur = name

    def run(self, model, batch, path: Path) -> dict:
        torch = self._torch
        try:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            model(**batch).loss.backward()
            self.mark("end")
        finally:
            for h in self.hooks:
                h.remove()
        ranked = sorted(self.rows, key=lambda r: -r[1])
        peak = ranked[0]
        lines = [f"memory by stretch of one eager step: peak {peak[1]:.3f} GiB in '{peak[0]}'",
                 *(f"  {gib:7.3f}  {name}" for name, gib in self.rows)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        print("\n".join(lines[:1] + [f"  {g:7.3f}  {n}" for n, g in ranked[:8]]), flush=True)
        return {"peak_gib": round(peak[1], 3), "where": peak[0], "file": path.name,
                "top": [(n, round(g, 3)) for n, g in ranked[:6]]}


def profile_step(step, path: Path) -> dict:
    """One training step under torch.profiler: every CUDA kernel's total time and count, written ranked to
    ``path`` with a per-category summary; returns the summary (ms per category, kernel count, step wall)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        sync()
    wall = time.perf_counter() - t
    kernels: dict[str, list] = {}
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            k = kernels.setdefault(ev.name, [0.0, 0])
            k[0] += ev.device_time_total / 1e3  # us -> ms
            k[1] += 1
    cats: dict[str, float] = {}
    for name, (ms, _) in kernels.items():
        cats[kernel_category(name)] = cats.get(kernel_category(name), 0.0) + ms
    busy = sum(cats.values()) or 1e-9  # no CUDA kernels seen (a CPU run): avoid dividing by zero
    lines = [f"one step under the profiler: wall {wall * 1e3:.1f} ms (profiler overhead included), "
             f"GPU busy {busy:.1f} ms, {sum(c for _, c in kernels.values())} kernel launches"]
    lines += [f"  {c:12s} {ms:9.2f} ms  {100 * ms / busy:5.1f}%" for c, ms in sorted(cats.items(), key=lambda x: -x[1])]
    lines.append(f"{'ms':>9s} {'count':>6s} {'%':>5s}  category     kernel")
    for name, (ms, n) in sorted(kernels.items(), key=lambda x: -x[1][0])[:60]:
        lines.append(f"{ms:9.2f} {n:6d} {100 * ms / busy:5.1f}  {kernel_category(name):12s} {name[:150]}")
    # the host side: where the CPU's time goes (a step whose GPU idles between kernels is host-bound)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:30]
    lines.append(f"host: {'self ms':>9s} {'count':>6s}  op (self CPU time; total CPU "
                 f"{sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3:.1f} ms)")
    lines += [f"      {e.self_cpu_time_total / 1e3:9.2f} {e.count:6d}  {e.key[:120]}" for e in ops]
    # which ops launch the kernels (eager steps; a replayed graph shows cudaGraphLaunch only): device time
    # by kernel category and the chain of ops above the launch, innermost first
    try:
        chains: dict[tuple, list] = {}
        for ev in prof.events():
            for k in getattr(ev, "kernels", None) or ():
                names, p = [], ev
                while p is not None and len(names) < 4:
                    if not p.name.startswith(("cuda", "cu", "Memcpy", "Memset")):
                        names.append(p.name[:48])
                    p = getattr(p, "cpu_parent", None)
                key = (kernel_category(k.name), " < ".join(names) or ev.name[:48])
                c = chains.setdefault(key, [0.0, 0])
                c[0] += k.duration / 1e3
                c[1] += 1
        if chains:
            lines.append(f"launched by: {'ms':>7s} {'count':>6s}  category     ops (innermost first)")
            for (cat, chain), (ms, n) in sorted(chains.items(), key=lambda x: -x[1][0])[:40]:
                lines.append(f"      {ms:9.2f} {n:6d}  {cat:12s} {chain}")
    except Exception as e:  # noqa: BLE001 - the attribution is a diagnostic; the row must not fail on it
        lines.append(f"launched by: not available ({type(e).__name__}: {e})")
    # the compute stream's idle time: where in the step, and whether it waited for a copy
    gaps = None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import tempfile

        import timeline

        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(trace))
            tl = timeline.analyse_file(trace)
            # kept beside the table (gzip: a graphed 7B step's trace is tens of MB as text) for chrome://tracing
            import gzip

            with open(trace, "rb") as src, gzip.open(path.with_suffix(".trace.json.gz"), "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst)
        lines[1:1] = timeline.report(tl)
        gaps = {k: tl[k] for k in ("span_ms", "compute_busy_ms", "gap_ms", "gap_ms_forward", "gap_ms_backward",
                                   "gap_ms_copy_wait") if k in tl}
    except Exception as e:  # noqa: BLE001 - a diagnostic; the row must not fail on it
        lines.insert(1, f"timeline: not available ({type(e).__name__}: {e})")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:30]), flush=True)
    return dict(wall_ms=round(wall * 1e3, 1), busy_ms=round(busy, 1), launches=sum(c for _, c in kernels.values()),
                by_category_ms={c: round(ms, 2) for c, ms in cats.items()}, timeline=gaps, file=path.name)


def run(args):
    run_id = args.run_id or time.strftime("%Y%m%dT%H%M%S")
    _LIVE["out"] = args.out
    signal.signal(signal.SIGTERM, _on_sigterm)
    pre_error = None
    if args.backend == "unsloth":
        # before anything touches CUDA: Unsloth sets the allocator's configuration at import
        os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", "/tmp/unsloth_compiled_cache")
        os.environ.setdefault("UNSLOTH_STUDIO_DISABLED", "1")
        try:
            import unsloth  # noqa: F401
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            pre_error = e
    import torch

    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    base = base_row(args, card, run_id)
    _LIVE["row"] = dict(base, micro_batch=None)
    if pre_error is not None:
        emit(args.out, dict(base, micro_batch=None, error=f"setup {type(pre_error).__name__}: {str(pre_error)[:300]}"))
        return
    t0 = time.time()
    try:
        model, params, notes = setup_backend(args)
        base.update(notes, build_s=round(time.time() - t0, 1))
        if args.mem_cap_gib:
            _stage("memory cap")
            base.update(apply_mem_cap(args.mem_cap_gib))
    except Exception as e:  # noqa: BLE001 - a backend that cannot start is a row, not a crash
        traceback.print_exc()
        emit(args.out, dict(base, micro_batch=None, build_s=round(time.time() - t0, 1),
                            error=f"setup {type(e).__name__}: {str(e)[:300]}",
                            **({"fits_cap": False} if args.mem_cap_gib else {})))
        return
    base["alloc_conf"] = os.environ.get("PYTORCH_ALLOC_CONF") or os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    gen = torch.Generator(device="cuda").manual_seed(1234)
    oom_at = None
    for bs in args.bs:
        row = dict(base, micro_batch=bs)
        _LIVE["row"] = row
        if oom_at is not None and bs >= oom_at:
            emit(args.out, dict(row, error=f"skipped: OOM at micro_batch {oom_at}",
                                **({"fits_cap": False} if args.mem_cap_gib else {})))
            continue
        try:
            ids = torch.randint(3, VOCAB, (bs, args.seq), device="cuda", generator=gen)
            labels = ids.clone()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            tag = os.environ.get("PHASE") or f"{_label(row).replace('+', '_')}_{args.model}"
            step, graphed = make_step(model, opt, params, ids, labels, args.cuda_graph, args.sdpa)
            times, losses, host = _timed_steps(step, args.warmup, args.steps, bs)
            med = statistics.median(times)
            tok_s = bs * args.seq / med
            achieved = base["flops_per_token"] * tok_s
            row.update(step_s=med, step_min=min(times), step_max=max(times), steps_s=[round(x, 4) for x in times],
                       tokens_per_s=tok_s, peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30,
                       peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30, tflops=achieved / 1e12,
                       mfu=achieved / DATASHEET_PEAK_BF16,
                       mfu_measured=achieved / args.gemm_flops if args.gemm_flops else None,
                       loss_first=losses[0], loss_last=losses[-1], n_warmup=args.warmup, n_timed=len(times),
                       # how long the host took to issue a step (graph launch, optimizer): an upper bound on
                       # the GPU's idle time at the start of each synchronised step
                       host_issue_s=statistics.median(host))
            if graphed is not None:
                # every timed step must be a replay, else the row times the eager path under another name
                row["cuda_graph_stats"] = graphed.describe()
                if graphed.stats["replays"] < len(times):
                    row["warning"] = (f"cuda graph: {graphed.stats['replays']} replays for {len(times)} timed "
                                      f"steps ({graphed.disabled_reason or 'raise --warmup'})")
            free, total = torch.cuda.mem_get_info()
            # what the device holds beyond this allocator (CUDA context, libraries' workspaces): a card
            # of the cap's size needs that too
            row.update(device_used_gib=(total - free) / 2**30,
                       non_allocator_gib=(total - free - torch.cuda.memory_reserved()) / 2**30)
            if args.mem_cap_gib:
                row["fits_cap"] = row["peak_reserved_gib"] <= args.mem_cap_gib
            if any(x != x for x in losses):
                row["warning"] = "NaN loss"
            if args.memory_peak:
                _stage(f"memory by stretch, micro_batch {bs}")
                opt.zero_grad(set_to_none=True)
                row["memory_segments"] = _MemorySegments(model).run(
                    model, {"input_ids": ids, "labels": labels},
                    Path(args.profile or Path(args.out).parent) / f"memory_{tag}_mb{bs}.txt")
                opt.zero_grad(set_to_none=True)
            if args.profile:
                _stage(f"profile micro_batch {bs}")
                # the phase names the configuration (two phases can share backend, model and micro-batch)
                path = Path(args.profile) / f"profile_{tag}_mb{bs}.txt"
                row["profile"] = profile_step(step, path)
        except torch.cuda.OutOfMemoryError as e:
            oom_at = bs
            row.update(error="OOM: " + str(e).splitlines()[0][:200])
            if args.mem_cap_gib:
                row["fits_cap"] = False
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            row.update(error=f"{type(e).__name__}: {str(e)[:300]}")
            if args.mem_cap_gib:
                row["fits_cap"] = False
        emit(args.out, row)
        ids = labels = step = graphed = None
        opt.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
    _LIVE["row"] = None  # done: a SIGTERM from here on has nothing to report


def _label(r: dict) -> str:
    native = r.get("backend") == "native"
    sdpa = r.get("sdpa_backend")
    return (r.get("backend", "?") + ("+offload" if r.get("offload_activations") and native else "")
            + (f"+mlp{r['offload_mlp']:g}" if native and r.get("offload_mlp") else "")
            + (f"+keep{r['stash_keep']}" if native and r.get("stash_keep") else "")
            + ("+keepin" if native and r.get("keep_last_input") else "")
            + ("+qkv3" if native and r.get("fuse_qkv") is False else "")
            + ("+graph" if r.get("cuda_graph") and native else "")
            + (f"+{sdpa}" if sdpa and sdpa != "auto" else "")
            + ("+fullrecompute" if native and r.get("trim_recompute") is False else ""))


def _config_key(r: dict) -> tuple:
    return (r.get("model"), r.get("micro_batch"), r.get("seq_len"), r.get("lora_r"), r.get("lora_alpha"),
            tuple(r.get("targets") or ()), bool(r.get("qlora")), r.get("mem_cap_gib"))


def _config_name(key: tuple) -> str:
    model, bs, seq, r, alpha, targets, qlora, cap = key
    t = "all7" if list(targets) == TARGETS else ",".join(x.replace("_proj", "") for x in targets)
    return (f"{model} mb{bs} T{seq} r{r}/a{alpha} {t}" + (" qlora" if qlora else "")
            + (f" cap{cap:g}GiB" if cap else ""))


# (numerator, denominator) of the tokens/s ratios the summary prints for each matched configuration
RATIOS = [("native", "hf"), ("native", "unsloth"), ("native+offload", "native"), ("native+offload", "unsloth"),
          ("native", "liger"), ("native+graph", "native"), ("native+graph", "unsloth"),
          ("native+offload+graph", "unsloth"), ("native+flash", "native"), ("native+graph+flash", "native"),
          ("native+graph+flash", "unsloth"), ("native+offload+graph+flash", "unsloth"),
          ("native+graph+efficient", "native"), ("native+offload+mlp0.5+graph", "unsloth"),
          ("native+offload+mlp0.5+graph", "native+offload+graph"), ("native+mlp0.5+graph", "native+graph")]


def summarize(rows: list[dict]) -> str:
    """A compact table of the rows, then tokens/s ratios (native/hf, native/unsloth, ...) for every
    configuration measured by both backends without error (rows of one run: pass them filtered)."""
    lines = [f"{'phase':17s} {'backend':26s} {'config':36s} {'step s':>7s} {'tok/s':>7s} {'peakGiB':>7s} "
             f"{'resGiB':>6s} {'MFU':>5s} {'fits':>4s} loss"]
    ok: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if "backend" not in r:
            continue
        key = _config_key(r)
        head = f"{str(r.get('phase') or '-'):17s} {_label(r):26s} {_config_name(key):36s}"
        if r.get("error"):
            lines.append(f"{head} ERROR {str(r['error'])[:160]}")
            continue
        fits = {True: "yes", False: "NO"}.get(r.get("fits_cap"), "-")
        lines.append(f"{head} {r['step_s']:7.3f} {r['tokens_per_s']:7.0f} {r['peak_mem_gib']:7.2f} "
                     f"{r.get('peak_reserved_gib') or 0:6.2f} {r['mfu']:5.3f} {fits:>4s} "
                     f"{r.get('loss_first', float('nan')):.3f}->{r.get('loss_last', float('nan')):.3f}")
        ok.setdefault(key, {})[_label(r)] = r
    ratio_lines = []
    for key, by in ok.items():
        parts = []
        for a, b in RATIOS:
            if a in by and b in by:
                ra, rb = by[a], by[b]
                parts.append(f"{a}/{b} {ra['tokens_per_s'] / rb['tokens_per_s']:.2f}x tok/s, "
                             f"peak {ra['peak_mem_gib']:.1f} vs {rb['peak_mem_gib']:.1f} GiB")
        if parts:
            ratio_lines.append(f"{_config_name(key)}: " + "; ".join(parts))
    if ratio_lines:
        lines += ["", "ratios (same configuration, same run):"] + ["  " + x for x in ratio_lines]
    return "\n".join(lines)


def emit(out, row):
    line = json.dumps(row)
    print("RESULT " + line, flush=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(line + "\n")


# ---------------------------------------------------------------------------------------------------
# command line


def _positive_int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"micro-batch sizes must be positive integers: {text!r}")
    return vals


def _targets(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in TARGETS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown target module(s) {bad or text!r}; choose from {','.join(TARGETS)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a target is named twice: {text!r}")
    return [t for t in TARGETS if t in names]  # canonical order: rows of the same set compare equal


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=BACKENDS, default="native")
    ap.add_argument("--model", choices=list(SHAPES), default="7b")
    ap.add_argument("--bs", type=_positive_int_list, default=[4], help="micro-batch sizes, comma-separated")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=None, help="lora_alpha (default 2*r)")
    ap.add_argument("--targets", type=_targets, default=list(TARGETS),
                    help="projections that carry LoRA, comma-separated (default all seven)")
    ap.add_argument("--qlora", action="store_true",
                    help="decoder linears in bitsandbytes 4-bit NF4 (double quant, bf16 compute)")
    ap.add_argument("--mem-cap-gib", type=float, default=None,
                    help="cap the caching allocator at this many GiB after building, before the timed steps")
    ap.add_argument("--offload-activations", action="store_true",
                    help="native only: kernels.patch(model, offload_activations=True)")
    ap.add_argument("--full-recompute", action="store_true",
                    help="native only: kernels.patch(model, trim_recompute=False): the checkpoint recompute runs "
                         "the MLP's down projection too (the ablation of the trimmed recompute)")
    ap.add_argument("--offload-mlp", type=float, default=0.0, metavar="F",
                    help="native only: kernels.patch(model, offload_mlp=F): the MLP gate and up outputs of a "
                         "fraction F of the layers go to host memory and their recompute skips two GEMMs")
    ap.add_argument("--keep-last-input", action=argparse.BooleanOptionalAction, default=None,
                    help="native only: kernels.schedule.offload.KEEP_LAST_INPUT: with --offload-activations, the last "
                         "layer's input stays on the GPU (its recompute comes first in backward)")
    ap.add_argument("--no-fuse-qkv", action="store_true",
                    help="native only: kernels.patch(model, fuse_qkv=False): q, k and v as three nodes (the "
                         "ablation of the fused q/k/v node)")
    ap.add_argument("--stash-keep", type=int, default=None, metavar="K",
                    help="native only: kernels.schedule.mlp_stash.KEEP_LAST: with --offload-mlp, the last K layers keep "
                         "their gate and up outputs on the GPU, the fraction F applies to the others")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="native only: forward and backward replayed as one CUDA graph "
                         "(kernels.schedule.cuda_graph.GraphedBackward; the optimizer step stays eager)")
    ap.add_argument("--sdpa", choices=["auto", *SDPA_BACKENDS], default="auto",
                    help="native/hf: restrict torch's SDPA to one backend for the whole step (auto: torch's "
                         "choice, cuDNN on Hopper)")
    ap.add_argument("--profile", metavar="DIR", default=None,
                    help="after the timed steps of each micro-batch, profile one more step and write its CUDA "
                         "kernels, grouped and ranked by time, and the host's busiest ops, to "
                         "DIR/profile_<phase or backend_model>_mb<bs>.txt")
    ap.add_argument("--memory-peak", action="store_true",
                    help="after the timed steps, one more step run eagerly with the peak allocated memory of each "
                         "stretch (every layer's forward, the loss, every layer's backward) written to "
                         "DIR/memory_<phase>_mb<bs>.txt (DIR: --profile's, else --out's folder)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--gemm", action="store_true", help="only measure the bf16 matmul ceiling and print it")
    ap.add_argument("--save-model", action="store_true", help="only build and save the random model to --model-dir")
    ap.add_argument("--gemm-flops", type=float, default=None, help="measured ceiling (FLOP/s) for mfu_measured")
    ap.add_argument("--model-dir", default=None,
                    help=f"where unsloth loads the random model from (default {MODEL_ROOT}/<model>)")
    ap.add_argument("--summary", metavar="JSONL", default=None,
                    help="only print the summary table and ratios of the rows in JSONL (those of --run-id if given)")
    ap.add_argument("--run-id", default=os.environ.get("RUN_ID"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lora_step.jsonl"))
    return ap


# options of kernels.patch and GraphedBackward, which only the native backend has: option -> why, if not obvious
NATIVE_ONLY = {"offload_activations": " (unsloth offloads on its own; hf and liger have no such option here)",
               "full_recompute": " (the others recompute as they do)", "offload_mlp": "", "cuda_graph": "",
               "keep_last_input": "", "stash_keep": "", "no_fuse_qkv": ""}


def parse_args(argv=None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.seq <= 0 or args.r <= 0 or args.warmup < 0 or args.steps <= 0:
        ap.error("--seq, --r and --steps must be positive, --warmup non-negative")
    if args.alpha is None:
        args.alpha = 2 * args.r
    elif args.alpha <= 0:
        ap.error("--alpha must be positive")
    if args.mem_cap_gib is not None and args.mem_cap_gib <= 0:
        ap.error("--mem-cap-gib must be positive")
    if args.backend != "native":
        for dest, why in NATIVE_ONLY.items():
            if getattr(args, dest):
                ap.error(f"--{dest.replace('_', '-')} is for --backend native{why}")
    if args.sdpa != "auto" and args.backend not in ("native", "hf"):
        ap.error("--sdpa is for --backend native or hf (Unsloth and Liger pick their own attention)")
    if args.stash_keep is not None and args.stash_keep < 0:
        ap.error("--stash-keep is a number of layers, 0 or more")
    if not 0.0 <= args.offload_mlp <= 1.0:
        ap.error("--offload-mlp is a fraction of the decoder layers, in [0, 1] (0.5: every other layer)")
    if args.cuda_graph and args.warmup < GRAPH_WARMUP + 1:
        ap.error(f"--cuda-graph needs --warmup {GRAPH_WARMUP + 1} or more ({GRAPH_WARMUP} eager warm-up calls, "
                 "then the capture's step)")
    if args.qlora and args.backend == "liger":
        ap.error("--qlora runs with --backend hf, native or unsloth")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.gemm:
        import torch

        print(f"GEMM {measure_gemm():.6e} {torch.cuda.get_device_name()}", flush=True)
        return
    if args.summary:
        path = Path(args.summary)
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
        print(summarize([r for r in rows if not args.run_id or r.get("run_id") == args.run_id]))
        return
    if args.save_model:
        path = model_dir(args)
        print(f"[save] {args.model} -> {path} in {save_model(args.model, path):.1f}s", flush=True)
        return
    run(args)


if __name__ == "__main__":
    main()
