"""Evaluation items read straight from the CLAUDETTE layout, for figures comparable with LexGLUE.

The shipped dataset drops sentences that near-duplicate a sentence of a later split, and
it keeps one risk per clause; LexGLUE's UNFAIR-ToS keeps every sentence with its
per-category labels. Reading the layout (`Sentences/`, `Labels_<CAT>/`,
`OriginalTaggedDocuments/`) with `annotation.claudette` gives LexGLUE's sentences and
labels exactly (`unfair` is the set of categories whose label file says 1), and the
dataset builder's own conversion (`annotation.build.claudette_records`) gives each
sentence the project's clause types, risk and party, so the other metrics still apply.

Companies are split as LexGLUE splits them (`annotation.claudette.lexglue_split`): those in
neither its train nor its validation list are `test`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from contract_review.annotation import claudette
from contract_review.annotation.build import BuildReport, claudette_records
from contract_review.annotation.cuad import CorpusError
from contract_review.records import ClauseRecord
from contract_review.taxonomy import load_taxonomy

from .items import EvalItem, from_record

SPLITS = ("train", "validation", "test")


def load_claudette_items(root: str | Path, split: str) -> list[EvalItem]:
    if split not in SPLITS:
        raise ValueError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    root = Path(root)
    tax = load_taxonomy()
    wanted = [c for c in claudette.companies(root) if claudette.lexglue_split(c) == split]
    if not wanted:
        raise CorpusError(
            f"{root}: no company of LexGLUE's {split} split here (test = companies outside LexGLUE's "
            "train and validation lists; the shipped corpus has none)")
    docs = [claudette.read_company(root, c) for c in wanted]
    # the builder's conversion, on exactly these companies (same order: one record per sentence)
    tmp_root = _only(root, wanted)
    records = claudette_records(tmp_root, tax, BuildReport(), progress=False)
    sentences = [(d.company, s) for d in docs for s in d.sentences]
    if len(records) != len(sentences):
        raise CorpusError(f"{root}: {len(records)} records for {len(sentences)} sentences; cannot align")
    items = []
    for raw, (company, s) in zip(records, sentences):
        item = from_record(ClauseRecord.model_validate(raw), tax)
        items.append(EvalItem(
            id=f"claudette/{company}/{s.index}", doc_id=item.doc_id, source="claudette", text=item.text,
            clause_types=item.clause_types, party=item.party, risk=item.risk, risk_category=item.risk_category,
            party_names=item.party_names, verified=False, unfair=frozenset(s.labels), risk_to=item.risk_to,
            risk_labeller=item.risk_labeller, party_aliases=item.party_aliases,
        ))
    return items


def _only(root: Path, companies: list[str]) -> Path:
    """A view of the layout holding only `companies` (symlinks in a temporary folder), so the
    builder reads just the split asked for."""
    view = Path(tempfile.mkdtemp(prefix="claudette-view-"))
    atexit.register(shutil.rmtree, view, ignore_errors=True)
    for sub in root.iterdir():
        if not sub.is_dir():
            continue
        (view / sub.name).mkdir()
        for c in companies:
            for f in sub.glob(f"{c}.*"):
                if f.stem == c:
                    (view / sub.name / f.name).symlink_to(f.resolve())
    return view
