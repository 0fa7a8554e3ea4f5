"""What a backend is: the code that turns a config into the trainable causal LM (base model, adapters,
kernels). One backend per file beside this one; `registry.py` has the table, `build_model` the entry
point the recipe and the benchmarks share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class BuildSpec:
    """Where and for what the model is built (what the config does not say)."""

    device: torch.device
    # the run's tokenizer: a random model's vocabulary is its length; None keeps the preset's vocabulary
    tokenizer: Any = None
    # peft's task type of the objective (CAUSAL_LM when the LM head is trained through; None for a decoder read
    # by heads of the caller's own)
    task_type: str | None = "CAUSAL_LM"
    # ZeRO-3 partitions the weights while they are built (deepspeed.zero.Init): nothing is placed on a device
    partitioned: bool = False
    # this process prints the messages (rank 0)
    main: bool = True


@dataclass
class BuiltModel:
    lm: nn.Module  # the causal LM with its adapters, trainable parameters marked
    config: Any  # its transformers config (shapes for FLOPs and the logs)
    on_device: bool = False  # loaded onto its device already (quantized, or by Unsloth): not to be moved
    # what the run's start event records about the build (kernels patched, attention used, ...)
    notes: dict = field(default_factory=dict)

    @property
    def cuda_graph(self) -> bool:
        """The backend asks for each micro-batch's forward and backward as one CUDA graph (native's
        kernels.cuda_graph): the recipe steps through graph_step.GraphedSteps."""
        return bool(self.notes.get("cuda_graph"))


class Backend:
    name: ClassVar[str]

    def build(self, cfg, spec: BuildSpec) -> BuiltModel:
        raise NotImplementedError
