"""Draw the graded set: a seeded sample of clauses, stratified by clause type, across the splits.

    contract-review annotate sample --dataset data/dataset --out runs/graded --size 1500 --seed 0

How the sample is drawn (and `sample.json` says it again, with the numbers):

1. **Strata are clause types**: a clause belongs to the stratum of its first type (the one of
   highest default severity, as records order them); every type of the taxonomy is a stratum,
   the checklist types and `other` included. Augmented and already-graded records are left out.
2. **Allocation**: each stratum gets a floor (`min_per_type`, or all its clauses if it has
   fewer), and the rest of the budget in proportion to the square root of its size, so rare
   types are over-represented without letting `other` (most clauses) crowd them out. A stratum
   never gets more than it holds; what it cannot take goes to the others. A type that is seldom a
   clause's first type is then topped up to its floor with clauses that carry it anywhere, so
   the sample can exceed `size` by those.
3. **Splits by document**: within a stratum the draw is shared between train, validation and
   test (`split_shares`, by default half for train and a quarter each for the evaluation splits,
   which need graded labels most), and at most `per_document` clauses of one stratum come from
   one contract, so no contract dominates a type.
4. **Seeded**: the same dataset, size and seed give the same sample and the same batches.

Batches (`batches/batch-NNN.jsonl`) keep the clauses of one contract together, so an annotator
reads a contract's parties once. A line holds what an annotator needs and nothing that would
anchor them (no pre-label): the clause id, its text, its context (the heading or lead-in when the
record has one, else the clause before it in the contract), the contract's party list with
aliases and blanks, and the document and split.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract_review.records import SPLITS, ClauseRecord, find_split_file, iter_jsonl, read_records, write_jsonl
from contract_review.taxonomy import load_taxonomy

from .build import PARTIES_FILE

CONTEXT_CHARS = 400


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(1500, ge=1, description="clauses to draw (at least)")
    seed: int = 0
    min_per_type: int = Field(20, ge=0, description="floor per clause type (all of a type if it has fewer)")
    per_document: int = Field(2, ge=1, description="at most this many clauses of one type from one contract")
    batch_size: int = Field(100, ge=1, description="clauses per batch file (a contract is never split)")
    split_shares: dict[str, float] = Field(default_factory=lambda: {"train": 0.5, "validation": 0.25, "test": 0.25})

    @model_validator(mode="after")
    def _shares(self) -> "SampleConfig":
        if set(self.split_shares) != set(SPLITS) or any(v < 0 for v in self.split_shares.values()) \
                or not math.isclose(sum(self.split_shares.values()), 1.0):
            raise ValueError(f"split_shares must give each of {', '.join(SPLITS)} a share, summing to 1")
        return self


@dataclass
class Sample:
    records: list[ClauseRecord]
    population: dict[str, dict[str, int]]  # stratum (first type) -> split -> clauses available
    drawn: dict[str, dict[str, int]]  # type -> split -> drawn clauses that carry it (first or not)
    allocation: dict[str, int] = field(default_factory=dict)


def stratum(record: ClauseRecord) -> str:
    return record.clause_types[0]


def _allocate(sizes: dict[str, int], total: int, floor: int) -> dict[str, int]:
    """Floor per stratum, then the rest by the square root of stratum size, capped by what each holds."""
    alloc = {s: min(n, floor) for s, n in sizes.items()}
    left = total - sum(alloc.values())
    while left > 0:
        open_ = {s: n for s, n in sizes.items() if alloc[s] < n}
        if not open_:
            break
        weight = sum(math.sqrt(n) for n in open_.values())
        shares = {s: left * math.sqrt(n) / weight for s, n in open_.items()}
        given = 0
        for s in sorted(open_):  # floors first, then the largest remainders, in a fixed order
            add = min(int(shares[s]), sizes[s] - alloc[s])
            alloc[s] += add
            given += add
        if given == 0:
            for s in sorted(open_, key=lambda s: (-(shares[s] % 1), s))[:left]:
                alloc[s] += 1
                given += 1
        left -= given
    return alloc


def _draw_stratum(records: list[ClauseRecord], want: int, cfg: SampleConfig, rng: random.Random) -> list[ClauseRecord]:
    """`want` clauses of one stratum: split shares first, at most `per_document` per contract."""
    by_split: dict[str, list[ClauseRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.id):
        by_split[r.split].append(r)
    for recs in by_split.values():
        rng.shuffle(recs)

    def capped(recs: list[ClauseRecord], taken: Counter) -> list[ClauseRecord]:
        return [r for r in recs if taken[r.doc_id] < cfg.per_document]

    taken: Counter = Counter()
    chosen: list[ClauseRecord] = []
    targets = {s: round(want * cfg.split_shares[s]) for s in SPLITS}
    for s in SPLITS:
        for r in capped(by_split.get(s, []), taken)[: targets[s]]:
            if taken[r.doc_id] < cfg.per_document:
                chosen.append(r)
                taken[r.doc_id] += 1
    # a split that held too few gives its share to the others; the document cap is lifted only last
    ids = {r.id for r in chosen}
    rest = [r for s in SPLITS for r in by_split.get(s, []) if r.id not in ids]
    for lift in (False, True):
        for r in rest:
            if len(chosen) >= want:
                break
            if r.id not in ids and (lift or taken[r.doc_id] < cfg.per_document):
                chosen.append(r)
                ids.add(r.id)
                taken[r.doc_id] += 1
    return chosen[:want]


def draw_sample(records: list[ClauseRecord], cfg: SampleConfig) -> Sample:
    tax = load_taxonomy()
    pool = [r for r in records if r.source != "augmented" and not r.risk_graded]
    by_stratum: dict[str, list[ClauseRecord]] = defaultdict(list)
    for r in pool:
        by_stratum[stratum(r)].append(r)
    sizes = {t: len(by_stratum.get(t, [])) for t in tax.clause_type_ids}
    alloc = _allocate({t: n for t, n in sizes.items() if n}, cfg.size, cfg.min_per_type)
    rng = random.Random(cfg.seed)
    chosen: list[ClauseRecord] = []
    for t in tax.clause_type_ids:
        if alloc.get(t):
            chosen += _draw_stratum(by_stratum[t], alloc[t], cfg, rng)
    # a type that is rarely a clause's first type (a notice period beside its renewal term) is topped up with
    # clauses that carry it anywhere, so every type has its floor of clauses in the sample
    taken = {r.id for r in chosen}
    for t in tax.clause_type_ids:
        have = sum(t in r.clause_types for r in chosen)
        carrying = [r for r in pool if t in r.clause_types and r.id not in taken]
        want = min(cfg.min_per_type - have, len(carrying))
        if want > 0:
            extra = _draw_stratum(carrying, want, cfg, rng)
            chosen += extra
            taken |= {r.id for r in extra}
    population = {t: {s: sum(r.split == s for r in by_stratum.get(t, [])) for s in SPLITS} for t in tax.clause_type_ids}
    drawn = {t: {s: sum(t in r.clause_types and r.split == s for r in chosen) for s in SPLITS} for t in tax.clause_type_ids}
    return Sample(chosen, population, drawn, alloc)


def _party_lists(dataset_dir: Path) -> dict[str, dict]:
    path = Path(dataset_dir) / PARTIES_FILE
    if not path.exists():
        return {}
    return {f"{row['source']}/{row['doc_id']}": row for _, row in iter_jsonl(path)}


def _record_parties(r: ClauseRecord) -> list[dict]:
    """The party list from the record alone (a dataset built before parties.jsonl existed)."""
    return [{"role": role, "name": r.party_names.get(role, ""), "aliases": list(r.party_aliases.get(role, [])),
             "blank": False} for role in ("first_party", "second_party")]


def batch_lines(sample: Sample, all_records: list[ClauseRecord], party_lists: dict[str, dict]) -> list[dict]:
    """One line per drawn clause, in contract order: what an annotator reads, no pre-label."""
    by_doc: dict[tuple, list[ClauseRecord]] = defaultdict(list)
    for r in all_records:
        if r.source != "augmented":
            by_doc[(r.source, r.doc_id)].append(r)
    previous: dict[str, ClauseRecord | None] = {}
    for recs in by_doc.values():
        recs.sort(key=lambda r: (r.start, r.end))
        for before, r in zip([None, *recs], recs):
            previous[r.id] = before
    lines = []
    for r in sorted(sample.records, key=lambda r: (r.split, r.source, r.doc_id, r.start)):
        dumped = r.model_dump()
        own = dumped.get("context")  # the segmenter's heading / lead-in, when the dataset has it
        before = previous.get(r.id)
        context, where = (own, "context") if own else (
            (before.text[-CONTEXT_CHARS:], "previous clause") if before else ("", "none"))
        plist = party_lists.get(f"{r.source}/{r.doc_id}")
        lines.append({
            "id": r.id, "doc_id": r.doc_id, "source": r.source, "split": r.split, "text": r.text,
            "context": context, "context_from": where,
            "parties": [{k: p[k] for k in ("role", "name", "aliases", "blank")} for p in plist["parties"]]
            if plist else _record_parties(r),
            "party_names": dict(r.party_names), "party_aliases": {k: list(v) for k, v in r.party_aliases.items()},
        })
    return lines


def _batches(lines: list[dict], size: int) -> list[list[dict]]:
    """Batches of about `size` clauses that never split a contract."""
    out: list[list[dict]] = [[]]
    for (_, doc), group in _grouped(lines):
        if out[-1] and len(out[-1]) + len(group) > size:
            out.append([])
        out[-1].extend(group)
    return [b for b in out if b]


def _grouped(lines: list[dict]):
    groups: dict[tuple, list[dict]] = {}
    for line in lines:
        groups.setdefault((line["source"], line["doc_id"]), []).append(line)
    return groups.items()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sample(dataset_dir: Path, out_dir: Path, cfg: SampleConfig) -> dict:
    """Draw from the dataset's three splits and write the batches and `sample.json`; returns the manifest."""
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    files = {s: find_split_file(dataset_dir, s) for s in SPLITS}
    records = [r for s in SPLITS for r in read_records(files[s])]
    sample = draw_sample(records, cfg)
    lines = batch_lines(sample, records, _party_lists(dataset_dir))
    batch_files = []
    for i, batch in enumerate(_batches(lines, cfg.batch_size), 1):
        path = out_dir / "batches" / f"batch-{i:03d}.jsonl"
        write_jsonl(path, batch)
        batch_files.append({"file": str(path.relative_to(out_dir)), "clauses": len(batch),
                            "contracts": len({(x["source"], x["doc_id"]) for x in batch})})
    manifest = {
        "what": "the graded set: clauses for two independent risk annotations each (data/guidelines.md section 5)",
        "how": ("strata are clause types (a clause's first type); each stratum gets min(min_per_type, its size), the "
                "rest of the budget goes by the square root of stratum size, capped by what a stratum holds; within a "
                "stratum the draw follows split_shares across train/validation/test, at most per_document clauses of "
                "one stratum from one contract; a type seldom first is topped up to min_per_type with clauses that "
                "carry it anywhere; records shuffled by a seeded generator in id order; augmented and already graded "
                "records are left out"),
        "config": cfg.model_dump(),
        "dataset": {s: {"file": str(p), "sha256": _sha256(p)} for s, p in files.items()},
        "clauses": len(sample.records),
        "contracts": len({(r.source, r.doc_id) for r in sample.records}),
        "by_split": dict(Counter(r.split for r in sample.records)),
        "strata": {t: {"population": sample.population[t], "drawn": sample.drawn[t]}
                   for t in sample.population if sum(sample.population[t].values())},
        "context_from": dict(Counter(x["context_from"] for x in lines)),
        "batches": batch_files,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sample.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
