"""DeepSpeed ZeRO-0..3 (`distributed.strategy: deepspeed`), with optimizer and parameter offload to the CPU.

The engine owns the step: it counts micro-batches, clips at the accumulation boundary and steps the
optimizer and schedule there (`backward` calls `engine.step()` every micro-batch). Under ZeRO-3 the
base weights are partitioned while the model is built (transformers' `HfDeepSpeedConfig` makes
`from_pretrained`/`from_config` run under `deepspeed.zero.Init`), so a 13B model never sits whole
on one device; reading a weight outside its module's forward needs `gathered`. A checkpoint holds
the engine's own sharded files (every rank writes its shard) beside the recipe's state. The
DeepSpeed config comes from ours (`deepspeed_config.py`). On CPU: gloo and `DS_ACCELERATOR=cpu`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import torch
from transformers.integrations import HfDeepSpeedConfig

from .. import checkpoint as ckpt
from ..errors import TrainingError
from .ddp import DDP
from .deepspeed_config import build_ds_config, size_buckets
from .layer_gather import LayerGather, find_units, has_decoder_layers


class DeepSpeedZeRO(DDP):
    name = "deepspeed"
    layers: LayerGather | None = None  # distributed.gather layer, once the engine exists

    @property
    def partitions_parameters(self) -> bool:
        return self.cfg.distributed.zero_stage == 3

    def init_processes(self) -> None:
        if self.device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # must be set before deepspeed is imported
        try:
            # an optional extra (contract-review[deepspeed]), imported only when this strategy runs
            import deepspeed
        except ImportError:
            raise TrainingError("distributed.strategy deepspeed needs DeepSpeed: "
                                "pip install 'contract-review[deepspeed]' (deepspeed==0.19.8)") from None
        self.ds = deepspeed
        if "RANK" not in os.environ:
            # one process started without a launcher: its own rendezvous (DeepSpeed would otherwise look for MPI)
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=os.environ.get("MASTER_PORT", str(port)))
        deepspeed.init_distributed(dist_backend=self.comm_backend())
        self.rank, self.world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.ds_config = build_ds_config(self.cfg, self.world, self.device.type == "cuda")
        self.engine = None
        self.layers: LayerGather | None = None
        self.gather_note: str | None = None  # why gather fell to DeepSpeed's per-module path, when it did

    def building(self):
        if self.partitions_parameters:
            # partition parameters while the model is built; the object must stay alive while building
            self._hf_ds = HfDeepSpeedConfig(self.ds_config)
        return super().building()

    def place(self, model, on_device: bool) -> None:
        pass  # the engine places the model

    def wrap(self, model, optimizer, scheduler) -> None:
        self.model = model
        trainable = [p for p in model.parameters() if p.requires_grad]
        size_buckets(self.ds_config, sum(p.numel() for p in trainable))
        self.engine, self.optimizer, _, self.scheduler = self.ds.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self.ds_config,
            model_parameters=trainable)
        if self.device.type == "cuda":
            self.device = self.engine.device
        if self.partitions_parameters and self.cfg.distributed.gather == "layer":
            if has_decoder_layers(model) and not any(u.layer for u in find_units(model)):
                # a small model: every layer's weights are under param_persistence_threshold and stay whole
                self.gather_note = ("distributed.gather layer: every decoder layer's parameters stay resident "
                                    "(under distributed.param_persistence_threshold), so no layer needs gathering; "
                                    "DeepSpeed's per-module gathering handles the rest")
                if self.is_main:
                    print(self.gather_note, flush=True)
            else:
                self.layers = LayerGather(model, self.engine.optimizer.parameter_offload, self.device)

    def notes(self) -> dict:
        if not self.partitions_parameters:
            return super().notes()
        if self.layers:
            return {**super().notes(), "zero3": self.layers.describe()}
        note = getattr(self, "gather_note", None)  # set once the engine exists
        gather = {"gather": "module", "why": note} if note else {"gather": self.cfg.distributed.gather}
        return {**super().notes(), "zero3": gather}

    @property
    def net(self) -> torch.nn.Module:
        return self.engine

    def accumulating(self, last: bool):
        return contextlib.nullcontext()  # the engine reduces at the boundary itself

    def backward(self, loss: torch.Tensor, accum: int) -> None:
        self.engine.backward(loss)
        if self.layers:
            self.layers.finish()  # before the step, which expects every partitioned weight released
        self.engine.step()  # DeepSpeed counts micro-steps and steps at the boundary

    def optimizer_step(self) -> float | None:
        gn = self.engine.get_global_grad_norm()
        return float(gn) if gn is not None else None

    def gathered(self, params: list, modifier_rank: int | None = None):
        if not self.partitions_parameters:
            return super().gathered(params, modifier_rank)
        return self.ds.zero.GatheredParameters(params, modifier_rank=modifier_rank)

    def save_checkpoint(self, root: Path, step: int, state: dict, keep: int) -> None:
        # every rank writes its shard of the optimizer into a shared temporary folder
        tmp_ds = Path(root) / f".ds-{step:06d}"
        self.engine.save_checkpoint(str(tmp_ds), tag="ds", client_state={})
        self.barrier()
        if self.is_main:
            state = {**state, "trainable": None, "optimizer": None, "scaler": None}
            ckpt.save(root, step, state, keep, extra_writer=lambda d: os.replace(tmp_ds, d / "deepspeed"))
        self.barrier()

    def load_checkpoint(self, path: Path, state: dict) -> None:
        self.engine.load_checkpoint(str(Path(path) / "deepspeed"), tag="ds", load_module_strict=False)

    @property
    def can_merge(self) -> bool:
        return not self.partitions_parameters
