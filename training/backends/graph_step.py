"""`kernels.cuda_graph` in a training run: each micro-batch's forward and backward replayed as one CUDA graph.

    steps = GraphedSteps(net, objective, cfg, device)      after the optimizer exists
    loss, parts = steps(batch)                              instead of forward, then strategy.backward

The step itself is kernels/schedule/cuda_graph.py's `GraphedBackward` (two eager warm-up micro-batches,
then one capture per batch shape, replays after that; the gradients accumulate into `.grad`, so gradient
accumulation, clipping and the optimizer step stay the recipe's, eager). What a training run adds:
- one batch shape: packed rows are as wide as the batch's longest row, so every batch is padded to
  `data.max_length` (pad tokens at position 0, each its own sequence to the attention mask, labels -100: no
  loss, no gradient, not counted as tokens). With flex_attention the block mask is built from the position
  ids inside the graph; with sdpa transformers builds a dense mask there (correct, slower: prefer flex);
  a batch with a dense 4-D `attention_mask` (a transformers without packed-sequence detection) keeps its own
  width and gets its own graph, up to `MAX_GRAPHS`, eager after that;
- nothing read on the host inside the step: the loss is divided by `optim.grad_accum` in the graph, and an
  objective that returns per-head losses (host floats) is refused (the config refuses classify already);
- a capture that fails is said once, with the reason, and the run goes on eagerly (`GraphCaptureError`); so
  is a batch shape that runs eagerly because `MAX_GRAPHS` shapes are already captured.
"""

from __future__ import annotations

import sys

import torch

from ..errors import TrainingError
from ..precision import autocast, resolve_precision

WARMUP = 2  # eager micro-batches before the capture (Triton compiles, cuBLAS and the allocator warm up)
MAX_GRAPHS = 2  # graphs kept (each holds its own activation memory); one is what padded rows need
PAD = {"labels": -100, "position_ids": 0}  # input_ids pad with the objective's pad id


class GraphedSteps:
    def __init__(self, net: torch.nn.Module, objective, cfg, device: torch.device, main: bool = True,
                 enabled: bool | None = True):
        """``enabled=None``: graphed on a CUDA device, eager elsewhere (the same steps, for CPU tests)."""
        # Triton (kernels): backend native only, which is the only backend that asks for this
        from contract_review.kernels.schedule.cuda_graph import GraphedBackward, GraphCaptureError

        self.net, self.objective, self.device, self.main = net, objective, device, main
        self.precision = resolve_precision(cfg.train.precision, device)[0]  # `auto` as the recipe resolved it
        self.accum, self.width = cfg.optim.grad_accum, cfg.data.max_length
        self.capture_error = GraphCaptureError
        params = [p for p in net.parameters() if p.requires_grad]
        self.graphed = GraphedBackward(self._loss, params, warmup=WARMUP, max_graphs=MAX_GRAPHS, enabled=enabled)
        self.said: set[str] = set()

    def _loss(self, batch: dict) -> torch.Tensor:
        # no autocast cache: a cast cached during the capture would not be made again at a replay
        with autocast(self.precision, self.device, cache_enabled=False):
            loss, parts = self.objective.loss(self.net, batch)
        if parts:
            raise TrainingError(f"kernels.cuda_graph: objective {self.objective.name} returns per-head losses "
                                f"({', '.join(parts)}), read on the host every step, which a CUDA graph cannot; "
                                "set kernels.cuda_graph: false")
        return loss.float() / self.accum

    def pad(self, batch: dict) -> dict:
        """The batch at `data.max_length` columns (see the module docstring); as it is when it cannot be."""
        width = batch["input_ids"].shape[1]
        if width >= self.width or not set(batch) <= {"input_ids", *PAD}:
            return batch
        fill = {"input_ids": self.objective.pad_id, **PAD}
        return {k: torch.nn.functional.pad(v, (0, self.width - width), value=fill[k]) for k, v in batch.items()}

    def say(self, key: str, message: str) -> None:
        if key not in self.said:
            self.said.add(key)
            if self.main:
                print(message, file=sys.stderr)

    def __call__(self, batch: dict) -> tuple[torch.Tensor, dict]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.pad(batch).items()}
        shape = "x".join(map(str, batch["input_ids"].shape))
        before = dict(self.graphed.stats)
        try:
            loss = self.graphed(batch)
        except self.capture_error as exc:
            self.say("capture", f"kernels.cuda_graph: the step of batch shape {shape} could not be captured "
                                f"({self.graphed.disabled_reason}); running every step eagerly from here")
            loss = self.graphed(batch)  # GraphedBackward turned itself off: this is the eager path
            del exc
        stats = self.graphed.stats
        if stats["captures"] > before.get("captures", 0):
            self.say(f"captured {shape}", f"kernels.cuda_graph: captured the step of batch shape {shape} after "
                                          f"{WARMUP} eager warm-up micro-batches; replaying it from here")
        elif (self.graphed.enabled and stats["eager"] > before.get("eager", 0)
              and len(self.graphed._graphs) >= MAX_GRAPHS):
            self.say(f"eager {shape}", f"kernels.cuda_graph: batch shape {shape} runs eagerly ({MAX_GRAPHS} other "
                                       "shapes are captured already)")
        return loss * self.accum, {}

    def describe(self) -> dict:
        return self.graphed.describe()
