"""Graded risk labels as data: what one clause of the graded set was labelled, and how a record takes it.

The graded set's labels live in `data/risk_graded.jsonl` (written by `annotate pull --graded`, one
line per clause: id, text_sha1, the adjudicated risk_to / severity / reason, risk_adjudicator and
every annotator's label in risk_annotations); `contract-review data build` applies them with
`apply_graded`, so a rebuilt dataset keeps them, and a label whose clause text changed is counted
as stale instead of landing on another clause.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from contract_review.records import ClauseRecord, RecordError, RiskAnnotation, iter_jsonl
from contract_review.taxonomy import load_taxonomy


@dataclass
class GradedLabel:
    clause_id: str
    text: str
    annotations: list[RiskAnnotation]
    adjudicator: str
    risk_to: str
    severity: str
    reason: str

    def as_dict(self) -> dict:
        return {"id": self.clause_id, "text_sha1": hashlib.sha1(self.text.encode()).hexdigest(),
                "risk_to": self.risk_to, "severity": self.severity, "reason": self.reason,
                "risk_adjudicator": self.adjudicator,
                "risk_annotations": [a.model_dump(exclude_none=True) for a in self.annotations]}


def graded_record(record: ClauseRecord, label: GradedLabel) -> ClauseRecord:
    """The dataset record with its graded risk (types and obligated party stay the dataset's)."""
    tax = load_taxonomy()
    top = tax.clause_type(record.clause_types[0])
    category = (record.risk_category if record.risk_category != "none" else top.risk_category) \
        if label.severity != "none" else "none"
    if label.severity != "none" and category == "none":
        category = next((tax.clause_type(t).risk_category for t in record.clause_types
                         if tax.clause_type(t).risk_category != "none"), "none")
    fields = {**record.model_dump(exclude_none=True), "risk_to": label.risk_to, "severity": label.severity,
              "risk": label.severity, "risk_category": category, "reason": label.reason or record.reason,
              "risk_labeller": "graded", "risk_graded": True, "risk_adjudicator": label.adjudicator,
              "risk_annotations": [a.model_dump(exclude_none=True) for a in label.annotations]}
    answer = ClauseRecord.model_construct(**fields).answer()
    fields["output"] = answer.to_json()
    return ClauseRecord.model_validate(fields)


def apply_graded(records: list[dict], graded_file: Path | None) -> tuple[int, int]:
    """Overlay graded labels on built records (dicts); returns (applied, stale). A label whose clause text
    changed is stale and left out."""
    if graded_file is None or not Path(graded_file).exists():
        return 0, 0
    by_id = {r["id"]: r for r in records}
    applied = stale = 0
    for lineno, g in iter_jsonl(graded_file):
        rec = by_id.get(g.get("id"))
        if rec is None or hashlib.sha1(rec["text"].encode()).hexdigest() != g.get("text_sha1"):
            stale += 1
            continue
        label = GradedLabel(g["id"], rec["text"], [RiskAnnotation(**a) for a in g["risk_annotations"]],
                            g["risk_adjudicator"], g["risk_to"], g["severity"], g.get("reason", ""))
        try:
            updated = graded_record(ClauseRecord.model_validate(rec), label).model_dump(exclude_none=True)
        except ValueError as exc:
            raise RecordError(f"{graded_file}:{lineno}: {exc}") from None
        rec.clear()
        rec.update(updated)
        applied += 1
    return applied, stale
