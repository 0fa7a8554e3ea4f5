"""What an objective is: what the model learns from the records, as the recipe asks for it.

    rows = objective.encode(records)          token rows, one batch element each (packed or not)
    objective.length(row)                     its tokens (the batch plan groups rows of like length)
    model = objective.model(lm)               the trained module around the causal LM (heads, or the LM)
    objective.fit(model, records, device)     what depends on the training data (class priors, ...)
    batch = objective.collate(rows)           tensors of one micro-batch
    loss, parts = objective.loss(net, batch)  parts: per-head losses for the log ({} when none)
    objective.after_eval(...)                 what to keep at an evaluation (classify: probability snapshots)
    results = objective.finish(...)           the artifacts of a finished run (adapter folder, ...)

One objective per file beside this one (`sft.py`, `classify.py`, `clm.py`); `registry.py` maps
`objective:` to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from contract_review.records import ClauseRecord

from ..config import Config


class Objective:
    name: ClassVar[str]
    # peft's task type for the adapters: CAUSAL_LM when the LM head is trained through, None when the
    # objective reads the decoder itself
    task_type: ClassVar[str | None] = "CAUSAL_LM"
    # the LM head runs in every step (it counts in the FLOPs per token)
    lm_head: ClassVar[bool] = True
    # evaluation batches are this many times the training micro-batch (no backward: room for more)
    eval_batch_factor: ClassVar[int] = 1

    def __init__(self, cfg: Config, tokenizer):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, records: list[ClauseRecord]) -> list:
        raise NotImplementedError

    def length(self, row) -> int:
        raise NotImplementedError

    def model(self, lm: nn.Module) -> nn.Module:
        return lm

    def fit(self, model: nn.Module, records: list[ClauseRecord], device: torch.device) -> None:
        """Called once the model and the training rows exist, before the optimizer."""

    def collate(self, rows: list) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def tokens(self, rows: list, batch: dict[str, torch.Tensor]) -> int:
        """The real (non-padding) tokens of a micro-batch: tokens/s counts these."""
        raise NotImplementedError

    def eval_order(self, rows: list) -> list[int]:
        """The order evaluation batches are cut in."""
        return list(range(len(rows)))

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_eval(self, model: nn.Module, strategy, *, run_dir: Path, step: int, quiet: bool) -> None:
        """Called after every evaluation (every rank); what the objective keeps of the model at that step."""

    def finish(self, model: nn.Module, adapter_dir: Path, strategy, *, run_dir: Path, step: int,
               quiet: bool) -> dict:
        """Writes the final artifacts (every rank calls it; collectives inside); returns the results' fields."""
        raise NotImplementedError
