"""One process on one device (`distributed.strategy: none`): the step/state wrapper the recipe drives.

The recipe never asks how many processes there are or whether DeepSpeed runs; it calls the strategy:

    strategy.init()                          device (and process group), before the model is built
    with strategy.building(): ...            the model is built (ZeRO-3 partitions it while it is built)
    strategy.wrap(model, optimizer, sched)   after the optimizer exists (DDP wrapper, DeepSpeed engine)
    strategy.net                             what a forward calls
    with strategy.accumulating(last): ...    one micro-batch's forward and backward (DDP syncs on the last)
    strategy.backward(loss, accum)           backward of one micro-batch
    strategy.optimizer_step() -> grad norm   clip, step, schedule, zero the gradients
    strategy.sum([...]) / any_rank(flag) / per_rank(x)          reductions over the processes
    strategy.trainable_state() / load_trainable(state)          adapter (and heads) weights, gathered
    strategy.save_checkpoint(root, step, state) / load_checkpoint(path, state)

DDP (`ddp.py`) and DeepSpeed ZeRO-0..3 (`zero.py`) override what differs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..config import Config
from ..errors import TrainingError


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher (torchrun, deepspeed) set them; 0, 1, 0 alone."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


class SingleDevice:
    name = "none"
    choice = None  # strategy auto: what it chose and why (distributed/auto.py)
    # the base weights are partitioned while the model is built (ZeRO-3): nothing is placed on a device then
    partitions_parameters = False

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.rank, self.world, self.local_rank = dist_env()
        self.device = torch.device("cpu")
        self.model = self.optimizer = self.scheduler = None
        self.scaler = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- setup -------------------------------------------------------------------------------------
    def init(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        self.init_processes()
        return self.device

    def init_processes(self) -> None:
        if self.world > 1:
            raise TrainingError(f"started with {self.world} processes but distributed.strategy is none; "
                                "set distributed.strategy=ddp or deepspeed")

    def building(self):
        """The context the model is built in."""
        return contextlib.nullcontext()

    def place(self, model: torch.nn.Module, on_device: bool) -> None:
        """Moves the built model to the device, unless it was loaded there (quantized, or by Unsloth)."""
        if not on_device:
            model.to(self.device)

    def wrap(self, model, optimizer, scheduler) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        if self.cfg.train.precision == "fp16" and self.device.type == "cuda":
            self.scaler = torch.amp.GradScaler("cuda")

    @property
    def net(self) -> torch.nn.Module:
        return self.model

    def notes(self) -> dict:
        """What the run's start event records about the distribution (how ZeRO-3 gathers, why auto chose)."""
        return {"strategy_choice": self.choice.as_dict()} if self.choice else {}

    # -- one step -----------------------------------------------------------------------------------
    def accumulating(self, last: bool):
        """Around one micro-batch's forward and backward; ``last``: the optimizer steps after it."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, accum: int) -> None:
        scaled = loss / accum
        (self.scaler.scale(scaled) if self.scaler else scaled).backward()

    def optimizer_step(self) -> float | None:
        """Clips, steps the optimizer and the schedule, and frees the gradients; the norm before clipping."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if self.cfg.optim.max_grad_norm:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.max_grad_norm))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        # zero_grad after the step, set_to_none: the gradients' memory is freed before the next forward
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    # -- reductions over the processes (identities here) ---------------------------------------------
    def sum(self, values: list[float]) -> list[float]:
        return list(values)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when it is true on any: a stop that one rank's clock decides alone would
        leave the others waiting in the next step's collectives."""
        return flag

    def per_rank(self, value: float) -> list[float]:
        return [value]

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass

    # -- weights and checkpoints ----------------------------------------------------------------------
    def gathered(self, params: list, modifier_rank: int | None = None):
        """Parameters readable (and, on ``modifier_rank``, writable) in full inside the block."""
        return contextlib.nullcontext()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        with self.gathered(params):
            return ckpt.trainable_state(self.model)

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with self.gathered([params[k] for k in state], modifier_rank=0):
            for k, v in state.items():
                params[k].data.copy_(v.to(params[k].device))

    def save_checkpoint(self, root: Path, step: int, state: dict, keep: int) -> None:
        """``state``: the recipe's part (step, schedule, data order, RNG, counters); the weights and the
        optimizer are added here."""
        state = {**state, "trainable": self.trainable_state(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler else None}
        if self.is_main:
            ckpt.save(root, step, state, keep)
        self.barrier()

    def load_checkpoint(self, path: Path, state: dict) -> None:
        params = dict(self.model.named_parameters())
        for k, v in state["trainable"].items():
            params[k].data.copy_(v.to(params[k].device))
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    @property
    def can_merge(self) -> bool:
        """Whether the base weights are whole in this process (a merged model can be written)."""
        return True
