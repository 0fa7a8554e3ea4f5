"""From dataset records to training batches, for both objectives.

- `sft`: the record rendered with the model's chat template (`prompt.chat_messages`) or, for
  a model without one, `prompt.render_plain`; labels are -100 everywhere but the answer, so
  the loss is on the response tokens only. Short examples are packed into rows of
  `max_length` tokens: `position_ids` restart at 0 for every example and the attention mask
  is block-diagonal (each token sees only earlier tokens of its own example), so packing
  changes the speed, never the result.
- `classify`: `prompt.build_input(text, party_names)` (no long instruction) plus the EOS
  token, with the label vectors of the reviewer model's heads (`reviewer_model.Labels`).

`BatchPlan` fixes the order of batches from (seed, epoch) alone and records where it is,
so a resumed run sees exactly the batches the killed run would have seen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from contract_review.prompt import chat_messages, render_plain
from contract_review.records import ClauseRecord, find_split_file, read_records

from .config import DataConfig

IGNORE = -100


def load_split(cfg: DataConfig, split: str, seed: int = 0, subset: bool = True,
               records: list[ClauseRecord] | None = None) -> list[ClauseRecord]:
    """Records of one split (read from `cfg.dir`, or the `records` already read and checked), with the
    config's subset rules applied to the training split."""
    if records is None:
        records = read_records(find_split_file(Path(cfg.dir), split))
    if not subset:
        return records
    sub = cfg.subset
    rng = random.Random(seed)
    if sub.sources:
        records = [r for r in records if r.source in sub.sources]
    if sub.other_fraction < 1:
        # only CUAD's `other` clauses are thinned: CLAUDETTE's fair clauses are what teaches the
        # model that most terms of service are fine, and there are few of them
        records = [r for r in records
                   if not (r.source == "cuad" and r.clause_types == ["other"]) or rng.random() < sub.other_fraction]
    if sub.limit and len(records) > sub.limit:
        records = rng.sample(records, sub.limit)
    return records


def eval_sample(records: list[ClauseRecord], limit: int | None, seed: int = 0) -> list[ClauseRecord]:
    """A fixed sample of the evaluation split (the same in every run of a config)."""
    if limit is None or len(records) <= limit:
        return records
    return random.Random(seed).sample(records, limit)


# -- sft ------------------------------------------------------------------------------------

def encode_sft(record: ClauseRecord, tokenizer, max_length: int) -> dict | None:
    """input_ids and labels (-100 on the prompt) of one record, or None if the answer does not fit."""
    if getattr(tokenizer, "chat_template", None):
        prompt_ids = tokenizer.apply_chat_template(
            chat_messages(record.system, record.instruction, record.input), add_generation_prompt=True, tokenize=True)
        full_ids = tokenizer.apply_chat_template(
            chat_messages(record.system, record.instruction, record.input, record.output), tokenize=True)
        if hasattr(prompt_ids, "keys"):  # some tokenizers return a BatchEncoding
            prompt_ids, full_ids = prompt_ids["input_ids"], full_ids["input_ids"]
        prompt_ids, full_ids = list(prompt_ids), list(full_ids)
    else:
        prompt = render_plain(record.system, record.instruction, record.input)
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        full_ids = tokenizer(prompt + record.output, add_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
    if full_ids[: len(prompt_ids)] != prompt_ids:  # a template that re-tokenizes across the boundary
        prompt_len = len(prompt_ids) - 1
    else:
        prompt_len = len(prompt_ids)
    answer = full_ids[prompt_len:]
    if len(answer) >= max_length:
        return None
    # the answer is what we train on: cut the prompt (the clause text), never the answer
    keep_prompt = max_length - len(answer)
    prompt_part = full_ids[:prompt_len]
    if len(prompt_part) > keep_prompt:
        prompt_part = prompt_part[: keep_prompt // 2] + prompt_part[len(prompt_part) - (keep_prompt - keep_prompt // 2):]
    ids = prompt_part + answer
    labels = [IGNORE] * len(prompt_part) + answer
    return {"input_ids": ids, "labels": labels}


def pack(examples: list[dict], max_length: int) -> list[list[dict]]:
    """Greedy first-fit packing (longest first) of examples into rows of <= max_length tokens."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(examples[i]["input_ids"])
        for r, free in enumerate(room):
            if free >= n:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max_length - n)
    return [[examples[i] for i in row] for row in rows]


def packing_needs_mask() -> bool:
    """Whether this transformers must be handed the 4-D block mask: versions without packed-sequence
    detection (`masking_utils.find_packed_sequence_indices`) would let packed examples see each other."""
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401  (feature detection)
    except ImportError:
        return True
    return False


def collate_packed(rows: list[list[dict]], pad_id: int, block_mask: bool = True) -> dict:
    """Pad packed rows; position_ids restart per example; a 4-D block-diagonal causal mask.

    The mask is boolean (True = may attend), shape (batch, 1, L, L): transformers uses a 4-D
    mask as given, so SDPA and eager attention never mix two examples of one row.
    `block_mask=False` leaves the mask out: transformers then finds the examples from the
    restarting position_ids (padding sits at position 0, each pad token an example of its own)
    and builds the document mask itself, on the GPU: varlen for flash-attention, a sparse
    BlockMask for flex_attention (fully masked tiles skipped), a dense one for SDPA and eager.
    The detection needs `use_cache=False` (training) and a transformers that has it
    (`packing_needs_mask`); a 2-D padding mask would switch it off and let examples of one row
    see each other. (transformers 5.x's eager attention also misreads the boolean 4-D mask.)"""
    width = max(sum(len(e["input_ids"]) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for s, ex in enumerate(row):
            n = len(ex["input_ids"])
            ids[b, at : at + n] = torch.tensor(ex["input_ids"])
            labels[b, at : at + n] = torch.tensor(ex["labels"])
            pos[b, at : at + n] = torch.arange(n)
            seg[b, at : at + n] = s
            at += n
    batch = {"input_ids": ids, "labels": labels, "position_ids": pos}
    if block_mask:
        causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
        same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)
        mask = same & causal
        # padding rows attend to themselves so softmax never sees an all-masked row
        mask |= torch.eye(width, dtype=torch.bool)
        batch["attention_mask"] = mask[:, None]
    return batch


# -- classify ------------------------------------------------------------------------------

def encode_classify(text_input: str, tokenizer, max_length: int) -> list[int]:
    """Token ids of the reviewer model's input: the `input` field, cut to fit, then EOS.

    Ending every input with the same token gives the last-token pooling a fixed place to read."""
    ids = tokenizer(text_input, add_special_tokens=False)["input_ids"][: max_length - 1]
    return ids + [tokenizer.eos_token_id]


def collate_classify(items: list[dict], pad_id: int) -> dict:
    width = max(len(x["input_ids"]) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, x in enumerate(items):
        n = len(x["input_ids"])
        ids[i, :n] = torch.tensor(x["input_ids"])
        mask[i, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    for key in ("clause_type", "party", "risk_to", "severity"):
        if key in items[0]:
            batch[key] = torch.stack([torch.as_tensor(x[key]) for x in items])
    return batch


# -- order of batches -------------------------------------------------------------------------

@dataclass
class BatchPlan:
    """Deterministic batches over `lengths`: shuffled per epoch from (seed, epoch), grouped by
    length within pools so padding stays small, then shuffled again as whole batches.

    `state()`/`load_state()` carry (epoch, position) across a resume; `rank`/`world` give each
    data-parallel process its own share of every batch."""

    lengths: list[int]
    batch_size: int
    seed: int = 0
    rank: int = 0
    world: int = 1
    pool: int = 64
    epoch: int = 0
    position: int = 0

    def batches(self, epoch: int) -> list[list[int]]:
        g = random.Random(self.seed * 1_000_003 + epoch)
        idx = list(range(len(self.lengths)))
        g.shuffle(idx)
        size = self.batch_size * self.world
        pool = size * self.pool
        out = []
        for start in range(0, len(idx), pool):
            chunk = sorted(idx[start : start + pool], key=lambda i: self.lengths[i])
            out.extend(chunk[j : j + size] for j in range(0, len(chunk), size))
        out = [b for b in out if len(b) == size] or out[:1]  # equal batches on every rank
        g.shuffle(out)
        return [b[self.rank :: self.world] for b in out]

    def __post_init__(self):
        self._cache: tuple[int, list[list[int]]] | None = None

    def next(self) -> list[int]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self.batches(self.epoch))
        plan = self._cache[1]
        if self.position >= len(plan):
            self.epoch += 1
            self.position = 0
            return self.next()
        batch = plan[self.position]
        self.position += 1
        return batch

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def steps_per_epoch(self) -> int:
        return len(self.batches(0))
