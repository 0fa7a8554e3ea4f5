"""`objective: sft`: generative fine-tuning, the loss on the answer tokens only.

Records are rendered with the model's chat template (or the plain instruction format) by
`data.encode_sft`; with `data.packing` short examples share a row (`data.pack`: position ids restart
per example and attention stays within it). The adapter is saved in PEFT format, with the merged
model on request (`output.merge`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from contract_review.records import ClauseRecord

from ..adapters import full, lora, method
from ..data import collate_packed, encode_sft, pack, packing_needs_mask
from .base import Objective


class SFT(Objective):
    name = "sft"

    def encode(self, records: list[ClauseRecord]) -> list[list[dict]]:
        d = self.cfg.data
        examples = [e for e in (encode_sft(r, self.tokenizer, d.max_length) for r in records) if e]
        # rows are packed once, from a seeded order: the same rows in every (resumed) run
        return pack(examples, d.max_length) if d.packing else [[e] for e in examples]

    def length(self, row: list[dict]) -> int:
        return sum(len(e["input_ids"]) for e in row)

    def fit(self, model: nn.Module, records: list[ClauseRecord], device: torch.device) -> None:
        # transformers finds packed examples from position_ids and builds their mask on the GPU (sparse
        # for flex, varlen for flash); only an old transformers needs our dense 4-D mask. Decided once the
        # model is built: the backend may have moved flex_attention to sdpa on a CPU.
        self.dense_mask = packing_needs_mask() and self.cfg.model.attn_implementation not in (
            "flash_attention_2", "flex_attention")

    def collate(self, rows: list[list[dict]]) -> dict[str, torch.Tensor]:
        return collate_packed(rows, self.pad_id, block_mask=self.dense_mask)

    def tokens(self, rows: list[list[dict]], batch: dict[str, torch.Tensor]) -> int:
        return sum(len(e["input_ids"]) for row in rows for e in row)

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = net(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                  position_ids=batch["position_ids"], labels=batch["labels"])
        return out.loss, {}

    def finish(self, model: nn.Module, adapter_dir: Path, strategy, *, run_dir: Path, step: int,
               quiet: bool) -> dict:
        saved = method.save(model, adapter_dir, strategy, self.cfg.lora, self.cfg.output.adapter_dtype)
        if not (self.cfg.output.merge and strategy.is_main):
            return saved
        if full.is_full(model):  # the trained model is the merged one
            model.save_pretrained(run_dir / "merged", safe_serialization=True)
            self.tokenizer.save_pretrained(run_dir / "merged")
            return {**saved, "merged": str(run_dir / "merged")}
        if not strategy.can_merge:
            print("output.merge: skipped under ZeRO-3 (the base weights are partitioned); merge the adapter "
                  "afterwards on one machine with peft's merge_and_unload", file=sys.stderr)
            return {}
        merged = lora.merge(model)
        merged.save_pretrained(run_dir / "merged", safe_serialization=True)
        self.tokenizer.save_pretrained(run_dir / "merged")
        return {"merged": str(run_dir / "merged")}
