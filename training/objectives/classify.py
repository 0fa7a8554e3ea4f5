"""`objective: classify`: the reviewer model, the causal LM's decoder with LoRA (or all weights, `lora.enabled:
false`) and four heads on its pooled final state (clause types: multi-label BCE with a positive weight per type;
party, risk_to and severity: softmax).

Input: `prompt.build_input(text, party_names)` + EOS (`data.encode_classify`), rows not packed. After
training, per-type thresholds are tuned on the evaluation split (`classify.tune_thresholds`) and the
adapter folder gets the heads and reviewer.json beside the PEFT adapter (full fine-tuning: its update
extracted at rank `lora.r`, `adapters/full.py`).

`classify.snapshot_splits`: at every evaluation from `classify.snapshot_from_step` on, the heads'
probabilities on those whole splits and the adapter are kept under `snapshots/step<N>/` (`probs.pt` in
the format of `contract-review eval --save-probs`, `adapter/`), so that the training length is chosen
afterwards by a cross-fit on validation instead of by the evaluation loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from contract_review.records import ClauseRecord

from ..adapters import full
from ..card import data_version
from ..data import collate_classify, encode_classify, load_split
from ..precision import resolve_precision
from ..reviewer_model import (Labels, ReviewerModel, classify_loss, predict_probs, save_reviewer, tune_thresholds,
                              type_pos_weight)
from .base import Objective


class Classify(Objective):
    name = "classify"
    task_type = None  # the heads read the decoder's hidden states; the LM head never runs
    lm_head = False
    eval_batch_factor = 2

    def __init__(self, cfg, tokenizer):
        super().__init__(cfg, tokenizer)
        self.labels = Labels.from_taxonomy()
        self.pos_weight = None

    def encode(self, records: list[ClauseRecord]) -> list[dict]:
        n = self.cfg.data.max_length
        return [{"input_ids": encode_classify(r.input, self.tokenizer, n), **self.labels.targets(r)} for r in records]

    def length(self, row: dict) -> int:
        return len(row["input_ids"])

    def model(self, lm: nn.Module) -> nn.Module:
        model = ReviewerModel(lm, lm.config.hidden_size, self.labels, pooling=self.cfg.classify.pooling)
        model.heads.to(next(lm.parameters()).device)  # beside a backbone that was loaded onto its device
        return model

    def fit(self, model: nn.Module, records: list[ClauseRecord], device: torch.device) -> None:
        pw, prior = type_pos_weight(records, self.labels, self.cfg.classify.pos_weight_cap)
        self.pos_weight = pw.to(device)
        model.init_type_bias(prior)

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate_classify(rows, self.pad_id)

    def tokens(self, rows: list[dict], batch: dict[str, torch.Tensor]) -> int:
        # the attention mask, not the ids: the pad id is often the EOS that ends every row
        return int(batch["attention_mask"].sum())

    def eval_order(self, rows: list[dict]) -> list[int]:
        return sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = net(batch["input_ids"], batch["attention_mask"])
        return classify_loss(logits, batch, self.pos_weight, self.cfg.classify.loss_weights)

    def _probs(self, model: nn.Module, split: str, quiet: bool) -> tuple[list[ClauseRecord], dict]:
        records = load_split(self.cfg.data, split, subset=False)
        # the precision `auto` resolves to on this device (bf16 only where the hardware has it)
        bf16 = resolve_precision(self.cfg.train.precision, next(model.parameters()).device)[0] == "bf16"
        probs = predict_probs(model, self.tokenizer, [r.input for r in records], self.cfg.data.max_length,
                              autocast=bf16, progress=not quiet)
        return records, probs

    def _save(self, model: nn.Module, adapter_dir: Path, step: int, thresholds: list[float]) -> dict:
        cfg = self.cfg
        method = ({"lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "target_modules": cfg.lora.modules()}}
                  if cfg.lora.enabled else {"full": {"layers": cfg.lora.layers, "shipped_rank": cfg.lora.r}})
        meta = {"base_model": cfg.model.name, "max_length": cfg.data.max_length, "thresholds": thresholds,
                "model_version": f"reviewer-{cfg.output.name}-step{step}", "data_version": data_version(cfg.data.dir),
                "objective": "classify", "seed": cfg.train.seed, **method}
        extracted: dict = {}

        def save_backbone(out: Path) -> None:
            extracted.update(full.extract(model.backbone, out, cfg.lora.r))

        save_reviewer(model, adapter_dir, meta, adapter_dtype=cfg.output.adapter_dtype,
                      save_backbone=save_backbone if full.is_full(model.backbone) else None)
        return {"extraction": extracted} if extracted else {}

    def after_eval(self, model: nn.Module, strategy, *, run_dir: Path, step: int, quiet: bool) -> None:
        cfg = self.cfg.classify
        if not cfg.snapshot_splits or step < cfg.snapshot_from_step or not strategy.is_main:
            return
        model.eval()
        out = run_dir / "snapshots" / f"step{step}"
        saved, thresholds = {}, [0.5] * len(self.labels.clause_type)
        for split in cfg.snapshot_splits:
            records, probs = self._probs(model, split, quiet=True)
            saved[split] = {"ids": [r.id for r in records], **{k: v.half() for k, v in probs.items()}}
            if split == self.cfg.data.eval_split:
                targets = torch.stack([self.labels.targets(r)["clause_type"] for r in records])
                thresholds = tune_thresholds(probs["clause_type"], targets)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(saved, out / "probs.pt")
        self._save(model, out / "adapter", step, thresholds)
        model.train()

    def finish(self, model: nn.Module, adapter_dir: Path, strategy, *, run_dir: Path, step: int,
               quiet: bool) -> dict:
        cfg = self.cfg
        out: dict = {}
        thresholds = [0.5] * len(self.labels.clause_type)
        if not strategy.is_main:
            return out
        if cfg.classify.tune_thresholds and cfg.data.eval_split:
            model.eval()
            records, probs = self._probs(model, cfg.data.eval_split, quiet)
            targets = torch.stack([self.labels.targets(r)["clause_type"] for r in records])
            thresholds = tune_thresholds(probs["clause_type"], targets)
            torch.save({"probs": probs, "ids": [r.id for r in records]}, run_dir / "eval_probs.pt")
            out["thresholds_tuned_on"] = f"{cfg.data.eval_split} ({len(records)} records)"
        out.update(self._save(model, adapter_dir, step, thresholds))
        return out
