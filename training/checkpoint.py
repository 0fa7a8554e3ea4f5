"""Training checkpoints: everything a resumed run needs to continue as if never stopped.

A checkpoint is a folder `checkpoints/step-000100/` holding the trainable weights (LoRA and
heads), the optimizer and scheduler, the data order (`BatchPlan` state), every RNG state and
the trainer's counters (step, best eval loss, patience). It is written into a temporary
folder and renamed into place, and `checkpoints/latest` (a one-line file, itself replaced
atomically) names the newest complete one: a run killed mid-write leaves the previous
checkpoint intact and never a half-written one that looks complete.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

LATEST = "latest"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters() if v.requires_grad}


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:06d}"


def step_of(path: Path) -> int:
    """The step a checkpoint folder (`step_dir`) was written at."""
    return int(Path(path).name.removeprefix("step-"))


def _write_pointer(root: Path, name: str) -> None:
    tmp = root / f".{LATEST}.tmp"
    with open(tmp, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / LATEST)


def save(root: Path, step: int, state: dict, keep: int = 2, extra_writer=None) -> Path:
    """Write `state` (a dict of picklable things) as checkpoint `step`; keep the newest `keep`.

    `extra_writer(tmp_dir)` may add files (e.g. DeepSpeed's own sharded state) before the rename."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        torch.save(state, tmp / "state.pt")
        if extra_writer is not None:
            extra_writer(tmp)
        with open(tmp / "state.pt", "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint would only hold on to the space
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _write_pointer(root, final.name)
    old = sorted(p for p in root.glob("step-*") if p.is_dir())
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest(root: Path) -> Path | None:
    root = Path(root)
    pointer = root / LATEST
    if pointer.exists():
        path = root / pointer.read_text().strip()
        if (path / "state.pt").exists():
            return path
    done = sorted(p for p in root.glob("step-*") if (p / "state.pt").exists())
    return done[-1] if done else None


def load(path: Path) -> dict:
    return torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=False)
