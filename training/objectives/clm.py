"""`objective: clm`: causal-LM training on raw text, every token a target (domain-adaptive pretraining).

The text is the split's documents, not its clauses: the records of one document (`source`, `doc_id`),
in the order they stand in it (`start`), joined by line breaks. Building the text from the records,
not from the corpus files, keeps out what the dataset keeps out: a clause that near-duplicates a clause
of a later split is not in the earlier split's records, so training on the train split never reads a
validation or test clause, and the CLAUDETTE companies follow LexGLUE's split. Headings, signature
blocks and page furniture are not records either.

Each document is tokenized, ended with EOS and cut into pieces of `data.max_length` tokens; with
`data.packing` pieces share rows (position ids restart per piece and attention stays within it, as
for sft: `data.pack`). The first token of a piece is never a target, so no piece is predicted from
another's last token.

Forgetting is measured, not assumed: before training and after it, the loss per token on the first
`clm.eval_tokens` tokens of the evaluation split's documents (held-out legal text) and of
`clm.general_text` (general English) is computed and kept in `heldout_loss.json` and the results.
The adapter is saved as sft saves it (LoRA, or the full update extracted: `adapters/method.py`), with
`adapted.json` naming the base it adapts, so the folder can be given as a model: it is merged into
its base once and cached (`training/models.py: ensure_adapted_model`).
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from contract_review.paths import REPO_ROOT
from contract_review.records import ClauseRecord

from ..adapters import method
from ..data import IGNORE, collate_packed, load_split, pack
from ..models import ADAPTED_META
from .sft import SFT


def documents(records: list[ClauseRecord]) -> list[tuple[str, str]]:
    """(document key, text) per document of `records`, sorted by key; each text its records in order."""
    by_doc: dict[str, list[ClauseRecord]] = defaultdict(list)
    for r in records:
        by_doc[f"{r.source}/{r.doc_id}"].append(r)
    return [(key, "\n".join(r.text for r in sorted(rs, key=lambda r: (r.start, r.end))))
            for key, rs in sorted(by_doc.items())]


def read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    if not path.exists():
        raise FileNotFoundError(f"clm.general_text {path}: no such file (set clm.general_text=null for none)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return fh.read()


class CLM(SFT):
    name = "clm"

    def pieces(self, texts: list[str], budget: int | None = None) -> list[dict]:
        """Token pieces of at most `data.max_length` of each text (+ EOS); the first `budget` tokens only."""
        n, out, used = self.cfg.data.max_length, [], 0
        eos = self.tokenizer.eos_token_id
        for ids in self._token_ids(texts, budget):
            ids = ids + [eos]
            for s in range(0, len(ids), n):
                piece = ids[s : s + n]
                if budget is not None:
                    piece = piece[: budget - used]
                if len(piece) < 2:
                    continue
                out.append({"input_ids": piece, "labels": [IGNORE] + piece[1:]})
                used += len(piece)
                if budget is not None and used >= budget:
                    return out
        return out

    def _token_ids(self, texts: list[str], budget: int | None):
        """Token ids per text, in batches (a fast tokenizer encodes a batch on every core when
        TOKENIZERS_PARALLELISM allows: the 4M tokens of the train split in seconds instead of a minute);
        with a `budget`, only as many characters as it can need (8 per token is more than English uses)."""
        if budget is not None:
            kept, room = [], 8 * budget
            for t in texts:
                if room <= 0:
                    break
                kept.append(t[:room])
                room -= len(kept[-1])
            texts = kept
        for s in range(0, len(texts), 64):
            yield from self.tokenizer(texts[s : s + 64], add_special_tokens=False)["input_ids"]

    def encode(self, records: list[ClauseRecord]) -> list[list[dict]]:
        examples = self.pieces([text for _, text in documents(records)])
        return pack(examples, self.cfg.data.max_length) if self.cfg.data.packing else [[e] for e in examples]

    def heldout(self) -> dict[str, list[dict]]:
        """The held-out texts whose loss is reported before and after training."""
        cfg, out = self.cfg, {}
        if cfg.data.eval_split:
            legal = load_split(cfg.data, cfg.data.eval_split, subset=False)
            out[f"legal ({cfg.data.eval_split} documents)"] = self.pieces([t for _, t in documents(legal)],
                                                                          cfg.clm.eval_tokens)
        if cfg.clm.general_text:
            out[f"general English ({Path(cfg.clm.general_text).name})"] = self.pieces(
                [read_text(cfg.clm.general_text)], cfg.clm.eval_tokens)
        return out

    @torch.no_grad()
    def heldout_loss(self, model: nn.Module, device: torch.device) -> dict[str, dict]:
        """Mean loss per predicted token (and perplexity) on each held-out text."""
        was_training = model.training
        model.eval()
        out = {}
        for name, examples in self._heldout.items():
            total, count = 0.0, 0
            for s in range(0, len(examples), 8):
                batch = collate_packed([[e] for e in examples[s : s + 8]], self.pad_id, block_mask=False)
                batch = {k: v.to(device) for k, v in batch.items()}
                logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits.float()
                targets = batch["labels"][:, 1:]
                losses = nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE,
                                                     reduction="sum")
                total += float(losses)
                count += int((targets != IGNORE).sum())
            mean = total / max(count, 1)
            out[name] = {"loss": round(mean, 4), "perplexity": round(math.exp(mean), 2), "tokens": count}
        if was_training:
            model.train()
        return out

    def fit(self, model: nn.Module, records: list[ClauseRecord], device: torch.device) -> None:
        super().fit(model, records, device)
        self._heldout = self.heldout()
        self.before = self.heldout_loss(model, device)

    def finish(self, model: nn.Module, adapter_dir: Path, strategy, *, run_dir: Path, step: int,
               quiet: bool) -> dict:
        saved = method.save(model, adapter_dir, strategy, self.cfg.lora, self.cfg.output.adapter_dtype)
        if not strategy.is_main:
            return saved
        device = next(model.parameters()).device
        after = self.heldout_loss(model, device)
        losses = {name: {"before": self.before[name], "after": after[name]} for name in after}
        (run_dir / "heldout_loss.json").write_text(json.dumps(losses, indent=2) + "\n", encoding="utf-8")
        meta = {"format": "contract-review-adapted/1", "base_model": self.cfg.model.name,
                "objective": "clm", "steps": step, "heldout_loss": losses,
                "method": "lora" if self.cfg.lora.enabled else "full (extracted)"}
        (adapter_dir / ADAPTED_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return {**saved, "heldout_loss": losses}
