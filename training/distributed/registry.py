"""`distributed.strategy` -> the step/state wrapper that runs it (one per file beside this one)."""

from __future__ import annotations

from ..config import Config
from .ddp import DDP
from .single import SingleDevice
from .zero import DeepSpeedZeRO

STRATEGIES = {"none": SingleDevice, "ddp": DDP, "deepspeed": DeepSpeedZeRO}


def make_strategy(cfg: Config) -> SingleDevice:
    return STRATEGIES[cfg.distributed.strategy](cfg)
