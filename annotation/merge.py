"""Merge annotated records into the dataset by document, keeping the split rules.

- A record whose id is already in the dataset replaces it in place, in the same split.
- A record of a document already in a split goes to that split (documents never straddle
  splits: that is what keeps evaluation honest).
- A record of a new document gets the split `annotation.build._hash_split(doc_id)` gives,
  the same document-hash rule the dataset was built with.
- Augmented records made from a record whose labels changed are dropped: they carry the old
  labels (re-run `annotate augment` on the new train split).

Files are rewritten atomically, in the format they had (`.jsonl` or `.jsonl.gz`), and only
when something changed, so merging the same annotations twice leaves the bytes untouched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from contract_review.records import SPLITS, ClauseRecord, RecordError, find_split_file, read_records, write_records

from .build import _hash_split


@dataclass
class MergeReport:
    replaced: Counter = field(default_factory=Counter)
    added: Counter = field(default_factory=Counter)
    unchanged: int = 0
    dropped_augmented: int = 0
    written: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        return (f"replaced {dict(self.replaced)}, added {dict(self.added)}, unchanged {self.unchanged}, "
                f"stale augmented records dropped {self.dropped_augmented}")


def _split_files(dataset_dir: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for split in SPLITS:
        try:
            paths[split] = find_split_file(dataset_dir, split)
        except RecordError:
            pass
    if not paths:
        raise RecordError(f"{dataset_dir}: no dataset here; build it with `contract-review data build --out {dataset_dir}`")
    suffix = ".jsonl.gz" if any(p.name.endswith(".gz") for p in paths.values()) else ".jsonl"
    for split in SPLITS:  # a missing split is created in the others' format
        paths.setdefault(split, dataset_dir / f"{split}{suffix}")
    return paths


def merge_records(dataset_dir: str | Path, records: list[ClauseRecord]) -> MergeReport:
    dataset_dir = Path(dataset_dir)
    paths = _split_files(dataset_dir)
    splits = {s: (read_records(p, allow_empty=True) if p.exists() else []) for s, p in paths.items()}
    where: dict[str, tuple[str, int]] = {}
    doc_split: dict[str, str] = {}
    for s, recs in splits.items():
        for i, r in enumerate(recs):
            where[r.id] = (s, i)
            doc_split.setdefault(r.doc_id, s)
    report = MergeReport()
    changed: set[str] = set()
    relabelled: set[str] = set()
    for rec in records:
        if rec.id in where:
            s, i = where[rec.id]
            new = rec.model_copy(update={"split": s})
            if splits[s][i] == new:
                report.unchanged += 1
                continue
            if splits[s][i].answer() != new.answer():
                relabelled.add(rec.id)
            splits[s][i] = new
            report.replaced[s] += 1
        else:
            s = doc_split.get(rec.doc_id) or _hash_split(rec.doc_id)
            doc_split[rec.doc_id] = s
            splits[s].append(rec.model_copy(update={"split": s}))
            where[rec.id] = (s, len(splits[s]) - 1)
            report.added[s] += 1
        changed.add(s)
    if relabelled:
        for s, recs in splits.items():
            kept = [r for r in recs if not (r.source == "augmented" and r.source_id in relabelled)]
            if len(kept) != len(recs):
                report.dropped_augmented += len(recs) - len(kept)
                splits[s] = kept
                changed.add(s)
    for s in SPLITS:
        if s in changed:
            write_records(paths[s], splits[s])
            report.written.append(paths[s])
    return report
