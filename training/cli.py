"""Command line of the training package: `train` and `doctor`.

Building the parser imports neither torch nor transformers (`contract-review --help` and the other
packages' commands stay fast): the recipe and the run diagnosis, which import torch, are imported by
the command that runs them (the recipe after the backend's `preload`).
"""

from __future__ import annotations

import argparse
import sys

from .backends.preload import preload
from .config import dump_config, load_config
from .doctor import check_environment, print_checks

TRAIN_HELP = """\
Fine-tune with LoRA from a YAML config (shipped ones: configs/<model>_<method>_<hardware>.yaml).

  contract-review train --config configs/smollm2-135m_reviewer_cpu.yaml
  contract-review train --config configs/smollm2-135m_lora_cpu.yaml train.max_steps=50 optim.lr=1e-4
  contract-review train --config CONFIG --resume          continue the run from its last checkpoint
  contract-review train --config configs/llama2-13b_lora_1gpu.yaml kernels.offload_activations=true kernels.offload_mlp=0.5
                                                          backend native: options of kernels.patch (README, Training)
  torchrun --nproc_per_node 4 -m contract_review.cli train --config configs/llama2-13b_lora_zero3.yaml
  deepspeed --num_gpus 4 --module contract_review.cli train --config configs/llama2-13b_lora_zero3.yaml
  deepspeed --hostfile hostfile --module contract_review.cli train --config ...   several machines (ssh)

Overrides are dotted keys with YAML values. A run writes into output.dir (runs/<name>):
metrics.jsonl, tensorboard/, loss_curve.png, checkpoints/, adapter/ (PEFT), README.md (card).
"""

DOCTOR_HELP = """\
Check the environment a training run needs (GPU, CUDA, bf16, versions, NCCL, memory, disk);
with --run, read a run's metrics.jsonl and say what went wrong (oscillating or exploding loss,
low GPU utilisation, out of memory, NCCL errors) and what to change; with --profile CONFIG,
run a few steps of that config under the PyTorch profiler and write a trace; with --fast-path CONFIG,
say which LoRA projections, MLPs, norms and RoPE calls backend native would run on its kernels' fast
path and why not the others, and what the kernels' auto options come to (from the model's skeleton:
seconds, no GPU).
"""


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="LoRA fine-tuning from a YAML config (CPU, one GPU, DDP, ZeRO-3)",
                           description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", type=str, required=True, help="YAML config file")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=1e-4")
    train.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    train.add_argument("--profile", type=int, default=0, metavar="STEPS",
                       help="profile STEPS steps with the PyTorch profiler (trace in RUN/profile), then stop")
    train.add_argument("--check", action="store_true", help="validate the config, print it and exit")
    train.set_defaults(func=_train)

    doctor = sub.add_parser("doctor", help="check the environment; diagnose a run (--run DIR); profile (--profile)",
                            description=DOCTOR_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    doctor.add_argument("--run", type=str, metavar="RUN_DIR", help="a run folder (or its metrics.jsonl) to diagnose")
    doctor.add_argument("--log", type=str, metavar="FILE", help="a launcher's stdout/stderr log to scan for errors")
    doctor.add_argument("--profile", type=str, metavar="CONFIG", help="profile a few steps of this config")
    doctor.add_argument("--steps", type=int, default=3, help="steps to profile (default 3)")
    doctor.add_argument("--fast-path", type=str, metavar="CONFIG", help="the kernels' fast path for this config")
    doctor.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for --profile's or "
                                                                          "--fast-path's config")
    doctor.set_defaults(func=_doctor)


def _train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if args.check:
        print(dump_config(cfg), end="")
        return 0
    return run_training(cfg, resume=args.resume, profile_steps=args.profile)


def run_training(cfg, resume: bool = False, profile_steps: int = 0, quiet: bool = False) -> int:
    preload(cfg.backend)  # before the recipe imports transformers: Unsloth must patch it first
    from .recipe.finetune import FineTuneRecipe  # torch and transformers: only for a command that trains

    recipe = FineTuneRecipe(cfg, resume=resume, profile_steps=profile_steps, quiet=quiet)
    try:
        recipe.setup()
        summary = recipe.train()
        if summary["reason"] == "profiled":
            if recipe.is_main:
                print(f"profile trace written to {recipe.run_dir / 'profile'} "
                      "(open in TensorBoard's profiler or chrome://tracing / ui.perfetto.dev)")
            return 0
        results = recipe.finish()
        if recipe.is_main and not quiet:
            print(f"done: {summary['step']} steps ({summary['reason']}); best eval loss "
                  f"{summary['best_eval_loss']}; adapter in {results['adapter']}", file=sys.stderr)
    finally:
        recipe.close()
    return 0


def _doctor(args: argparse.Namespace) -> int:
    if args.fast_path:
        from .backends.native import fast_path_preview  # torch and transformers: only for this

        for line in fast_path_preview(load_config(args.fast_path, args.overrides)):
            print(line)
        return 0
    if args.profile:
        cfg = load_config(args.profile, args.overrides)
        cfg.output.name = f"{cfg.output.name}-profile"
        return run_training(cfg, profile_steps=args.steps)
    status = 0
    if not (args.run or args.log):
        checks = check_environment()
        print_checks(checks)
        status = 1 if any(c.status == "fail" for c in checks) else 0
    if args.run or args.log:
        from .diagnose import diagnose_run, print_findings  # torch, through the log reader

        findings = diagnose_run(args.run, args.log)
        print_findings(findings)
        status = 1 if any(f.severity == "problem" for f in findings) else status
    return status
