"""Command line of the training package: `train` and `doctor`.

Building the parser imports neither torch nor transformers (`contract-review --help` and the other
packages' commands stay fast): the recipe and the run diagnosis, which import torch, are imported by
the command that runs them (the recipe after the backend's `preload`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
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
    train.add_argument("--overwrite", action="store_true",
                       help="start over in a run folder that holds an earlier run's checkpoints (they are deleted)")
    train.add_argument("--check", action="store_true",
                       help="validate the config and the files it names (data, model), print it and exit; "
                            "exit status 2 if the run could not start")
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
        preload(cfg.backend)
        from .preflight import preflight  # torch (checkpoints) and transformers (models): only to check a run

        checked = preflight(cfg, resume=args.resume, overwrite=args.overwrite,
                            resume_command=_command(["train", "--config", args.config, *args.overrides, "--resume"]))
        print(dump_config(cfg), end="")
        print("\n".join(f"# ok: {line}" for line in checked.summary))
        return 0
    return run_training(cfg, resume=args.resume, profile_steps=args.profile, overwrite=args.overwrite,
                        resume_args=["train", "--config", args.config, *args.overrides, "--resume"])


def run_training(cfg, resume: bool = False, profile_steps: int = 0, quiet: bool = False,
                 overwrite: bool = False, resume_args: list[str] | None = None) -> int:
    """Trains ``cfg`` to the end (0), or until SIGTERM / SIGINT stop it (128 + the signal's number,
    after saying what was saved and how to continue: ``resume_args``, the command's arguments)."""
    preload(cfg.backend)  # before anything imports transformers: Unsloth must patch it first
    from .preflight import preflight

    # before the model is built
    checked = preflight(cfg, resume=resume, overwrite=overwrite,
                        resume_command=_command(resume_args) if resume_args else None)
    from .errors import TrainingError, disk_full_error, is_disk_full
    from .recipe.finetune import FineTuneRecipe  # torch and transformers: only for a command that trains
    from .recipe.signals import SignalStop, StopNow

    with SignalStop(announce=not quiet and os.environ.get("RANK", "0") == "0") as stop:
        recipe = FineTuneRecipe(cfg, resume=resume, profile_steps=profile_steps, quiet=quiet, records=checked.records,
                                overwrite=overwrite, stop=stop)
        try:
            recipe.setup()
            summary = recipe.train()
            if summary["reason"] == "signal":
                return _stopped(recipe, stop.signum, resume_args, at_once=False)
            if summary["reason"] == "profiled":
                if recipe.is_main:
                    print(f"profile trace written to {recipe.run_dir / 'profile'} "
                          "(open in TensorBoard's profiler or chrome://tracing / ui.perfetto.dev)")
                return 0
            results = recipe.finish()
            if recipe.is_main and not quiet:
                print(f"done: {summary['step']} steps ({summary['reason']}); best eval loss "
                      f"{summary['best_eval_loss']}; adapter in {results['adapter']}", file=sys.stderr)
        except StopNow as exc:
            recipe.log_stopped_at_once(exc.signum)
            return _stopped(recipe, exc.signum, resume_args, at_once=True)
        except TrainingError as exc:
            raise TrainingError(_with_resume(str(exc), recipe, resume_args)) from exc.__cause__
        except (OSError, RuntimeError) as exc:
            if not is_disk_full(exc):
                raise
            from . import checkpoint as ckpt

            last = ckpt.latest(recipe.run_dir / "checkpoints")
            if hasattr(recipe, "logger"):
                recipe.logger.log("error", step=recipe.step, kind="disk_full", message=str(exc)[:300])
            err = disk_full_error(recipe.step, recipe.run_dir, cfg, last)
            raise TrainingError(_with_resume(str(err), recipe, resume_args)) from None
        finally:
            recipe.close()
    return 0


def _stopped(recipe, signum: int | None, resume_args: list[str] | None, at_once: bool) -> int:
    """Says what a signal left on disk and how to continue; the exit status (128 + the signal's number)."""
    from . import checkpoint as ckpt
    from .recipe.signals import exit_status, signal_name

    if recipe.is_main:
        name = signal_name(signum) if signum else "a signal to another rank"
        last = ckpt.latest(recipe.run_dir / "checkpoints")
        if not at_once:
            what = f"stopped by {name} after step {recipe.step} of {recipe.cfg.train.max_steps}; checkpoint: {last}"
        elif last is None:
            what = f"stopped at once by {name} at step {recipe.step}, before any checkpoint: start the run again"
        else:
            lost = recipe.step - ckpt.step_of(last)
            what = f"stopped at once by {name}; the last checkpoint is {last}" + (
                f" ({lost} steps after it are lost)" if lost > 0 else "")
        print(_with_resume(what, recipe, resume_args), file=sys.stderr)
    return exit_status(signum or signal.SIGTERM)


def _command(args: list[str]) -> str:
    return shlex.join(["contract-review", *args])


def _with_resume(message: str, recipe, resume_args: list[str] | None) -> str:
    """``message`` and, where the run has a checkpoint, the command that continues it."""
    from . import checkpoint as ckpt

    if not hasattr(recipe, "run_dir") or ckpt.latest(recipe.run_dir / "checkpoints") is None:
        return message
    if resume_args is None:
        return message + "\nresume: the same command with --resume"
    if recipe.world > 1:
        return message + (f"\nresume with the same launcher and {recipe.world} processes: LAUNCHER -m "
                          f"contract_review.cli {shlex.join(resume_args)}")
    return message + f"\nresume: {_command(resume_args)}"


def _doctor(args: argparse.Namespace) -> int:
    if args.fast_path:
        from .backends.native import fast_path_preview  # torch and transformers: only for this

        for line in fast_path_preview(load_config(args.fast_path, args.overrides)):
            print(line)
        return 0
    if args.profile:
        cfg = load_config(args.profile, args.overrides)
        cfg.output.name = f"{cfg.output.name}-profile"
        return run_training(cfg, profile_steps=args.steps, overwrite=True)
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
