"""`backend` -> the code that builds the trainable model (one backend per file beside this one).

    built = build_model(cfg, BuildSpec(device, tokenizer=tok))     the recipe and the benchmarks alike

A backend that cannot run here (no GPU, a library missing, a patch that fails) raises `TrainingError`
with the cause and the fix; none switches to another backend.
"""

from __future__ import annotations

from ..config import Config
from .base import Backend, BuildSpec, BuiltModel
from .hf import HFBackend
from .liger import LigerBackend
from .native import NativeBackend
from .unsloth import UnslothBackend

BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (HFBackend, NativeBackend, UnslothBackend, LigerBackend)}


def build_model(cfg: Config, spec: BuildSpec) -> BuiltModel:
    return BACKENDS[cfg.backend]().build(cfg, spec)
