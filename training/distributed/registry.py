"""`distributed.strategy` -> the step/state wrapper that runs it (one per file beside this one); `auto` is
resolved to ddp or deepspeed (ZeRO-3) by memory first (auto.py), said once at start and recorded."""

from __future__ import annotations

import os
import sys

import torch

from ..config import Config
from . import auto
from .ddp import DDP
from .single import SingleDevice, dist_env
from .zero import DeepSpeedZeRO

STRATEGIES = {"none": SingleDevice, "ddp": DDP, "deepspeed": DeepSpeedZeRO}


def make_strategy(cfg: Config) -> SingleDevice:
    if cfg.distributed.strategy != "auto":
        return STRATEGIES[cfg.distributed.strategy](cfg)
    rank, world, local_rank = dist_env()
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    choice = auto.choose(cfg, auto.device_memory(cfg, device, local_world), world)
    if rank == 0:
        print(f"distributed.strategy auto: {auto.LABELS[choice.strategy]}"
              f"{' with parameter offload' if choice.offload_params else ''}: {choice.reason}", file=sys.stderr)
    strategy = STRATEGIES[choice.strategy](auto.resolved(cfg, choice))
    strategy.choice = choice
    return strategy
