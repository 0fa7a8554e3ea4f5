"""`objective` -> what the model learns (one objective per file beside this one)."""

from __future__ import annotations

from ..config import Config
from .base import Objective
from .classify import Classify
from .clm import CLM
from .sft import SFT

OBJECTIVES: dict[str, type[Objective]] = {o.name: o for o in (SFT, Classify, CLM)}


def make_objective(cfg: Config, tokenizer) -> Objective:
    return OBJECTIVES[cfg.objective](cfg, tokenizer)
