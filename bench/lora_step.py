"""One LoRA training step, timed, of the model `contract-review train` builds from a config.

    python bench/lora_step.py --config CONFIG [key=value ...] [--bs 4,8] [step options]

The model, its adapters and its backend (hf, native, unsloth, liger) come from the training package
(`training.backends.registry.build_model`, the path a training run takes), for the config and
overrides as `contract-review train` reads and validates them; so do the optimizer (`training.optim`),
the optimizer step (clipping, schedule: `training.distributed.single`) and the precision
(`training.precision`). What this script adds is the measurement: fixed batches of random token ids
(micro-batch x `data.max_length`, one unpadded sequence a row, labels = inputs), the median of
`--steps` steps after `--warmup`, peak memory, MFU. The anchor workload of kernels/NOTES.md
(Llama-2-7B shape, bf16, LoRA r=16 alpha=32 dropout 0 on all seven projections, seq 2048,
non-reentrant gradient checkpointing, sdpa, micro-batch 4):

    python bench/lora_step.py --config configs/llama2-7b_lora_1gpu.yaml --bs 4 backend=native lora.r=16 \\
        lora.alpha=32 lora.dropout=0 lora.target_modules=all-linear data.max_length=2048 \\
        model.attn_implementation=sdpa

bench/lists/*.sh hold the workloads the GPU machines run. Options of the step itself: `--cuda-graph`
(forward and backward replayed as one CUDA graph, `kernels.schedule.cuda_graph.GraphedBackward`, the
optimizer step eager), `--sdpa` (torch's SDPA held to one backend), `--mem-cap-gib G` (the allocator
capped after the build; rows say `fits_cap`), `--profile DIR` and `--memory-peak` (one more step,
profiled or measured stretch by stretch: step_profile.py), and two ablations of kernel constants
(`--keep-last-input`: kernels.schedule.offload.KEEP_LAST_INPUT; `--stash-keep K`:
kernels.schedule.mlp_stash.KEEP_LAST).

FLOPs per token = 6*N_linear + 4*N_lm_head + 8*T*d*L (`training.logging.flops_per_token`: forward,
recompute and input-gradient backward of the frozen decoder linears; forward + input gradient of the
head; causal attention) counts the work that runs whatever carries the adapters; the adapters' own
FLOPs (< 1%) are apart in `lora_flops_per_token`. `mfu` is against the datasheet dense bf16 peak
(989.4 TFLOP/s, H100/H200 SXM), `mfu_measured` against an 8192^3 bf16 matmul measured at start.

Each micro-batch size is one row in the results table (harness.py), source `lora_step`; a backend
that cannot start, a micro-batch that runs out of memory, a process stopped at its time cap each
leave an error row.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

import harness
from contract_review.training.backends.base import BuildSpec
from contract_review.training.backends.preload import preload
from contract_review.training.config import Config, ConfigError, load_config
from contract_review.training.distributed.single import SingleDevice
from contract_review.training.logging import flops_per_token
from contract_review.training.optim import build_optimizer, build_scheduler
from contract_review.training.precision import autocast
from step_profile import MemorySegments, profile_step

GRAPH_WARMUP = 2  # GraphedBackward's eager calls before its capture; --warmup must cover them and the capture
SDPA_BACKENDS = {"cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                 "math": "MATH"}
# the step's options that only our kernels have: option -> why, when not obvious
NATIVE_ONLY = {"cuda_graph": " (GraphedBackward is ours)", "keep_last_input": "", "stash_keep": ""}


# -- command line -----------------------------------------------------------------------------------

def _sizes(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"micro-batch sizes must be positive integers: {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="a training config (configs/*.yaml)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, as for `train`")
    ap.add_argument("--bs", type=_sizes, default=None, help="micro-batch sizes, comma-separated (default: the "
                                                            "config's optim.batch_size)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--cuda-graph", action="store_true",
                    help="native only: forward and backward replayed as one CUDA graph (the optimizer step eager)")
    ap.add_argument("--sdpa", choices=["auto", *SDPA_BACKENDS], default="auto",
                    help="hold torch's SDPA to one backend for the whole step (auto: torch's choice)")
    ap.add_argument("--mem-cap-gib", type=float, default=None,
                    help="cap the caching allocator at this many GiB after the build, before the timed steps")
    ap.add_argument("--profile", metavar="DIR", default=None,
                    help="after the timed steps, profile one more step: DIR/profile_<name>_mb<bs>.txt (kernels "
                         "ranked, host ops, the compute stream's gaps) and its trace beside it")
    ap.add_argument("--memory-peak", action="store_true",
                    help="after the timed steps, one eager step measured stretch by stretch (each layer's forward "
                         "and backward, the loss): DIR/memory_<name>_mb<bs>.txt (DIR: --profile's, else the "
                         "results' folder)")
    ap.add_argument("--keep-last-input", action=argparse.BooleanOptionalAction, default=None,
                    help="native only: kernels.schedule.offload.KEEP_LAST_INPUT (the ablation; default: the kernels')")
    ap.add_argument("--stash-keep", type=int, default=None, metavar="K",
                    help="native only: kernels.schedule.mlp_stash.KEEP_LAST (the ablation; default: the kernels')")
    ap.add_argument("--out", default=None, help="results table (default: $BENCH_RESULTS or bench/results/runs.jsonl)")
    return ap


def parse_args(argv=None) -> tuple[argparse.Namespace, Config]:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        ap.error(str(exc))
    if args.warmup < 0 or args.steps <= 0:
        ap.error("--steps must be positive, --warmup non-negative")
    if args.mem_cap_gib is not None and args.mem_cap_gib <= 0:
        ap.error("--mem-cap-gib must be positive")
    if args.stash_keep is not None and args.stash_keep < 0:
        ap.error("--stash-keep is a number of layers, 0 or more")
    if cfg.objective != "sft":
        ap.error(f"objective {cfg.objective}: the step's loss is the causal LM's (objective sft)")
    if cfg.distributed.strategy != "none":
        ap.error("one GPU here: several processes run through bench/train.py (contract-review train)")
    if cfg.backend != "native":
        for dest, why in NATIVE_ONLY.items():
            if getattr(args, dest) not in (None, False):
                ap.error(f"--{dest.replace('_', '-')} is for backend native{why}")
    if args.sdpa != "auto" and cfg.backend in ("unsloth", "liger"):
        ap.error("--sdpa is for backend native or hf (Unsloth and Liger pick their own attention)")
    if args.cuda_graph and args.warmup < GRAPH_WARMUP + 1:
        ap.error(f"--cuda-graph needs --warmup {GRAPH_WARMUP + 1} or more ({GRAPH_WARMUP} eager warm-up calls, "
                 "then the capture's step)")
    if args.cuda_graph and cfg.train.precision == "fp16":
        ap.error("--cuda-graph with train.precision fp16: the grad scaler cannot run inside a captured graph")
    args.bs = args.bs or [cfg.optim.batch_size]
    return args, cfg


# -- the measured run ---------------------------------------------------------------------------------

def lora_flops_per_token(model_config, r: int, targets: list[str]) -> float:
    """The adapters' own FLOPs a token: per adapted projection, x A^T and (x A^T) B^T are 2r(in+out) forward;
    forward, recompute, input gradient and both weight gradients make 8r(in+out)."""
    d, f = model_config.hidden_size, model_config.intermediate_size
    heads = model_config.num_attention_heads
    kv = d * (getattr(model_config, "num_key_value_heads", None) or heads) // heads
    dims = {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
            "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}
    return 8 * r * model_config.num_hidden_layers * sum(sum(dims[t]) for t in targets)


def config_fields(args, cfg: Config) -> dict:
    """What the row says about the workload (flat names, as the summary reads them)."""
    m, lc, k = cfg.model, cfg.lora, cfg.kernels
    native = cfg.backend == "native"
    return dict(config=args.config, overrides=list(args.overrides), backend=cfg.backend,
                model=m.config if m.random_init else m.name, random_init=m.random_init, dtype=m.dtype,
                precision=cfg.train.precision, gradient_checkpointing=m.gradient_checkpointing,
                seq_len=cfg.data.max_length, lora_r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                targets=lc.modules(), dora=lc.dora, qlora=lc.quantize is not None, quantize=lc.quantize,
                offload_activations=k.offload_activations if native else None,
                offload_mlp=k.offload_mlp if native else None, trim_recompute=k.trim_recompute if native else None,
                fuse_qkv=k.fuse_qkv if native else None, cuda_graph=args.cuda_graph, sdpa_backend=args.sdpa,
                keep_last_input=args.keep_last_input, stash_keep=args.stash_keep, mem_cap_gib=args.mem_cap_gib,
                gpus=1, strategy="single", fast_path=None)


def lora_path(model) -> dict | None:
    """How many peft LoRA layers our kernels can take on the fast path, and how many fall back to peft's
    forward (a 4-bit base, DoRA, dropout > 0): None without our kernels."""
    try:
        from contract_review.kernels.patching.monkey_patch import lora_spec  # Triton: an optional extra
    except ImportError:
        return None
    layers = [m for m in model.modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A") and hasattr(m, "lora_B")]
    fast = sum(lora_spec(m) is not None for m in layers)
    return {"fast": fast, "fallback": len(layers) - fast}


def apply_mem_cap(gib: float) -> dict:
    """Caps this process's caching allocator at ``gib`` GiB (reserved memory) for everything after."""
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    frac = gib * 2**30 / total
    if frac > 1:
        raise ValueError(f"--mem-cap-gib {gib} is above the card's {total / 2**30:.1f} GiB")
    torch.cuda.set_per_process_memory_fraction(frac)
    return dict(mem_cap_fraction=frac, reserved_at_cap_gib=torch.cuda.memory_reserved() / 2**30)


def sdpa_context(name: str):
    """torch's SDPA held to one backend for the whole step: the forward, the checkpoint's recompute and the
    backward all run inside it (the recompute happens during backward)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[name])])


def make_step(strategy, cfg: Config, batch: dict, cuda_graph: bool, sdpa: str):
    """One training step as a callable returning the loss: forward and backward eager, or replayed as a CUDA
    graph (eager for its warm-up calls, then captured once); the optimizer step as training's. Returns
    (step, the GraphedBackward or None)."""
    model, precision, device = strategy.model, cfg.train.precision, strategy.device
    graphed = None
    if cuda_graph:
        from contract_review.kernels.schedule.cuda_graph import GraphedBackward  # native only (Triton)

        params = [p for p in model.parameters() if p.requires_grad]
        # rows of random tokens, no position ids or mask: one sequence per row
        graphed = GraphedBackward(lambda b: model(**b).loss, params, warmup=GRAPH_WARMUP, enabled=True,
                                  unpacked_rows=True)

    def step():
        # a forward captured in a graph must not use autocast's cast cache (made once, at the capture)
        with sdpa_context(sdpa), autocast(precision, device, cache_enabled=graphed is None):
            loss = graphed(batch) if graphed is not None else strategy.net(**batch).loss
        if graphed is None:
            strategy.backward(loss.float(), 1)
        strategy.optimizer_step()
        return loss

    return step, graphed


def run(args, cfg: Config) -> None:
    # these import transformers: after `preload`, which must import Unsloth before it
    from contract_review.training.backends.registry import build_model
    from contract_review.training.models import load_tokenizer

    live = harness.Live(args.out)
    base = dict(harness.record("lora_step"), **config_fields(args, cfg))
    live.row = dict(base, micro_batch=None)
    t0 = time.time()
    try:
        if args.keep_last_input is not None or args.stash_keep is not None:
            from contract_review.kernels.schedule import mlp_stash, offload  # native only: Triton, an optional extra

            if args.keep_last_input is not None:
                offload.KEEP_LAST_INPUT = args.keep_last_input
            if args.stash_keep is not None:
                mlp_stash.KEEP_LAST = args.stash_keep
        strategy = SingleDevice(cfg)
        device = strategy.init()
        base["peak_flops_measured"] = harness.measure_gemm()
        live.at("build")
        torch.manual_seed(cfg.train.seed)
        tokenizer = load_tokenizer(cfg.model.name)
        built = build_model(cfg, BuildSpec(device, tokenizer=tokenizer))
        model = built.lm
        strategy.place(model, built.on_device)
        if args.cuda_graph:
            # a capture cannot stash RNG state; with dropout 0 the recompute has none to replay
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False, "preserve_rng_state": False})
        model.train()
        optimizer = build_optimizer(model, cfg)
        strategy.wrap(model, optimizer, build_scheduler(optimizer, cfg))
        mc = built.config
        params = [p for p in model.parameters() if p.requires_grad]
        base.update(build_s=round(time.time() - t0, 1), vocab_size=mc.vocab_size, attn=cfg.model.attn_implementation,
                    flops_per_token=flops_per_token(mc, cfg.data.max_length),
                    lora_flops_per_token=lora_flops_per_token(mc, cfg.lora.r, cfg.lora.modules()),
                    peak_flops_datasheet=harness.DATASHEET_PEAK_BF16, trainable_params=sum(p.numel() for p in params),
                    lora_dtype=",".join(sorted({str(p.dtype) for p in params})), build_notes=built.notes,
                    kernels_patched=built.notes.get("kernels_patched"),
                    lora_path=lora_path(model) if cfg.backend == "native" else None)
        if args.mem_cap_gib:
            live.at("memory cap")
            base.update(apply_mem_cap(args.mem_cap_gib))
    except Exception as exc:  # noqa: BLE001 - a backend that cannot start is a row, not a crash
        traceback.print_exc()
        harness.append(dict(base, micro_batch=None, build_s=round(time.time() - t0, 1),
                            error=f"setup {type(exc).__name__}: {str(exc)[:400]}",
                            **({"fits_cap": False} if args.mem_cap_gib else {})), args.out)
        return
    gen = torch.Generator(device=device).manual_seed(1234)
    on_gpu = device.type == "cuda"
    oom_at = None
    for bs in args.bs:
        row = dict(base, micro_batch=bs)
        live.row = row
        if oom_at is not None and bs >= oom_at:
            harness.append(dict(row, error=f"skipped: OOM at micro_batch {oom_at}",
                                **({"fits_cap": False} if args.mem_cap_gib else {})), args.out)
            continue
        try:
            ids = torch.randint(3, mc.vocab_size, (bs, cfg.data.max_length), device=device, generator=gen)
            batch = {"input_ids": ids, "labels": ids.clone()}
            if on_gpu:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            step, graphed = make_step(strategy, cfg, batch, args.cuda_graph, args.sdpa)
            times, losses, host = harness.timed_steps(step, args.warmup, args.steps, live, f"micro_batch {bs} step")
            med = statistics.median(times)
            tok_s = bs * cfg.data.max_length / med
            achieved = base["flops_per_token"] * tok_s
            measured = base.get("peak_flops_measured")
            row.update(step_s=med, step_min=min(times), step_max=max(times), steps_s=[round(x, 4) for x in times],
                       tokens_per_s=tok_s, tflops=achieved / 1e12, mfu=achieved / harness.DATASHEET_PEAK_BF16,
                       mfu_measured=achieved / measured if measured else None,
                       loss_first=losses[0], loss_last=losses[-1], n_warmup=args.warmup, n_timed=len(times),
                       host_issue_s=statistics.median(host))
            if on_gpu:
                free, total = torch.cuda.mem_get_info()
                # what the device holds beyond this allocator (CUDA context, libraries' workspaces): a card of
                # the cap's size needs that too
                row.update(peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30,
                           peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30,
                           device_used_gib=(total - free) / 2**30,
                           non_allocator_gib=(total - free - torch.cuda.memory_reserved()) / 2**30)
            else:
                row["peak_mem_gib"] = None  # the CPU's resident peak would count the whole process
            if graphed is not None:
                # every timed step must be a replay, else the row times the eager path under another name
                row["cuda_graph_stats"] = graphed.describe()
                if graphed.stats["replays"] < len(times):
                    row["warning"] = (f"cuda graph: {graphed.stats['replays']} replays for {len(times)} timed "
                                      f"steps ({graphed.disabled_reason or 'raise --warmup'})")
            if args.mem_cap_gib:
                row["fits_cap"] = row["peak_reserved_gib"] <= args.mem_cap_gib
            if any(x != x for x in losses):
                row["warning"] = "NaN loss"
            tag = f"{row.get('name') or cfg.backend}_mb{bs}"
            if args.memory_peak and on_gpu:
                live.at(f"memory by stretch, micro_batch {bs}")

                def forward_backward():
                    with autocast(cfg.train.precision, device):
                        loss = strategy.net(**batch).loss
                    loss.backward()

                row["memory_segments"] = MemorySegments(model).run(
                    forward_backward, Path(args.profile or harness.results_path(args.out).parent) / f"memory_{tag}.txt")
                optimizer.zero_grad(set_to_none=True)
            if args.profile:
                live.at(f"profile micro_batch {bs}")
                row["profile"] = profile_step(step, Path(args.profile) / f"profile_{tag}.txt")
        except torch.cuda.OutOfMemoryError as exc:
            oom_at = bs
            row.update(error="OOM: " + str(exc).splitlines()[0][:200])
            if args.mem_cap_gib:
                row["fits_cap"] = False
        except Exception as exc:  # noqa: BLE001 - a failed micro-batch is a row
            traceback.print_exc()
            row.update(error=f"{type(exc).__name__}: {str(exc)[:300]}")
            if args.mem_cap_gib:
                row["fits_cap"] = False
        harness.append(row, args.out)
        batch = step = graphed = None
        optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
    live.row = None  # done: a SIGTERM from here on has nothing to report


def main(argv=None) -> int:
    args, cfg = parse_args(argv)
    preload(cfg.backend)
    run(args, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
