"""The errors a training run stops with: each names the step (when there is one), the cause and the fix."""

from __future__ import annotations

import errno
import math
import shutil
from pathlib import Path

import torch


class TrainingError(ValueError):
    """A run that had to stop; the message says at which step, why, and what to change."""


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()


def loss_error(step: int, loss: float, cfg, last_checkpoint) -> TrainingError:
    """A NaN loss, or one above ``train.max_loss``: what to change, and where to resume from."""
    what = "not a number" if not math.isfinite(loss) else f"{loss:.3g}, above train.max_loss"
    return TrainingError(
        f"step {step}: the loss is {what}. Lower optim.lr (now {cfg.optim.lr:g}), keep optim.max_grad_norm set "
        f"(now {cfg.optim.max_grad_norm}), raise optim.warmup_steps (now {cfg.optim.warmup_steps}); with fp16 "
        "switch to bf16. " + (f"Resume from {last_checkpoint} with --resume after changing the config."
                              if last_checkpoint else ""))


def oom_error(step: int, peak_gib: float, device, cfg) -> TrainingError:
    return TrainingError(
        f"step {step}: out of memory (peak seen {peak_gib:.2f} GiB on {device}). Halve optim.batch_size (now "
        f"{cfg.optim.batch_size}) and double optim.grad_accum (now {cfg.optim.grad_accum}) for the same effective "
        f"batch; set model.gradient_checkpointing=true; lower data.max_length (now {cfg.data.max_length}); or use "
        "lora.quantize=4bit (QLoRA) / distributed ZeRO-3 with offload.")


def nccl_error(step: int, exc: BaseException) -> TrainingError:
    return TrainingError(f"step {step}: NCCL error: {str(exc)[:300]}. Run `contract-review doctor`; retry with "
                         "NCCL_DEBUG=INFO, and NCCL_IB_DISABLE=1 if it mentions InfiniBand (IB)")


# a full disk, a quota, or a file-size limit (ulimit -f): each leaves no room for the write
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    """A write that found no room: an OSError with one of `NO_ROOM`, or torch.save's RuntimeError (its
    C++ writer loses the errno: "unexpected pos 704 vs 598" on a full disk, or "file write failed")."""
    if isinstance(exc, OSError):
        return exc.errno in NO_ROOM
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "No space left" in text or ("inline_container" in text and ("unexpected pos" in text
                                                                    or "file write failed" in text)))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def disk_full_error(step: int, run_dir: Path, cfg, last_checkpoint: Path | None) -> TrainingError:
    """No room to write in the run folder after ``step`` (the last step done): how much there is, what a
    checkpoint takes, what to change."""
    try:
        free = f"{shutil.disk_usage(run_dir).free / 2**30:.2f} GiB free there"
    except OSError:
        free = "free space unknown"
    each = f"; each checkpoint takes {_size(last_checkpoint) / 2**20:.1f} MiB" if last_checkpoint else ""
    kept = (f"the last complete checkpoint, {last_checkpoint}, is intact (checkpoints are written aside and "
            "renamed into place)" if last_checkpoint else "no checkpoint was completed")
    return TrainingError(
        f"after step {step}: no room to write in {run_dir} (disk full, quota or file-size limit; {free}{each}). "
        f"Free space on that disk, lower train.keep_checkpoints (now {cfg.train.keep_checkpoints}), or set "
        f"output.dir to a disk with room; {kept}.")
