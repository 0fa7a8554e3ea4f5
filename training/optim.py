"""The optimizer and learning-rate schedule of every run (and of the benchmarks' steps).

AdamW over the trainable parameters in two groups: the adapters at `optim.lr`, the reviewer's heads
(parameters named `heads.*`) at `optim.head_lr`. The schedule: linear warm-up over
`optim.warmup_steps`, then cosine down to 10% of the peak, linear down to 0, or constant.
"""

from __future__ import annotations

import math

import torch

from .config import Config


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    heads = [p for n, p in trainable if n.startswith("heads.")]
    groups = [{"params": [p for n, p in trainable if not n.startswith("heads.")], "lr": cfg.optim.lr}]
    if heads:
        groups.append({"params": heads, "lr": cfg.optim.head_lr or cfg.optim.lr})
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=(0.9, 0.999))


def lr_factor(cfg: Config):
    """The multiplier of the peak learning rate at each step (for LambdaLR)."""
    total, warm, kind = cfg.train.max_steps, cfg.optim.warmup_steps, cfg.optim.scheduler

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))  # cosine to 10%

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
