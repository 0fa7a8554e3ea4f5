"""The errors a training run stops with: each names the step (when there is one), the cause and the fix."""

from __future__ import annotations

import math

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
