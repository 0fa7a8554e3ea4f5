"""Data parallel over processes (`distributed.strategy: ddp`): every rank holds the whole model and its
own share of each batch (`BatchPlan(rank, world)`); gradients are averaged by torch's DDP once per
optimizer step (`no_sync` on the other micro-batches). Started by torchrun; nccl on GPUs, gloo on CPUs."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .single import SingleDevice


class DDP(SingleDevice):
    name = "ddp"

    def init_processes(self) -> None:
        self.init_process_group()

    def init_process_group(self) -> None:
        dist.init_process_group(backend=self.comm_backend())
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def comm_backend(self) -> str:
        return self.cfg.distributed.backend or ("nccl" if self.device.type == "cuda" else "gloo")

    def wrap(self, model, optimizer, scheduler) -> None:
        super().wrap(model, optimizer, scheduler)
        self.ddp = DistributedDataParallel(model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    @property
    def net(self) -> torch.nn.Module:
        return self.ddp

    def accumulating(self, last: bool):
        return super().accumulating(last) if last else self.ddp.no_sync()

    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def any_rank(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def per_rank(self, value: float) -> list[float]:
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return [float(x) for x in out]

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
