"""Small records for the annotation tests (a module of its own name: `conftest` is ambiguous
on sys.path when the whole suite runs)."""

from __future__ import annotations

from contract_review.prompt import INSTRUCTION, SYSTEM, Answer, build_input
from contract_review.records import ClauseRecord

NAMES = {"first_party": "Acme Corp.", "second_party": "Beta LLC"}


def make_record(rid: str, doc_id: str, split: str, text: str, party: str = "none", *, types=("other",),
                names: dict | None = None, source: str = "cuad", risk: str = "none", category: str = "none",
                start: int = 0, risk_to: str | None = None) -> ClauseRecord:
    names = dict(NAMES if names is None else names)
    risk_to = risk_to or ("none" if risk == "none" else "both")
    answer = Answer(tuple(types), party, risk, category, "a reason", risk_to=risk_to, severity=risk)
    return ClauseRecord.model_validate({
        "id": rid, "system": SYSTEM, "instruction": INSTRUCTION, "input": build_input(text, names),
        "output": answer.to_json(), "source": source, "doc_id": doc_id, "split": split, "start": start,
        "end": start + len(text), "text": text, "clause_types": list(types), "party": party, "party_names": names,
        "risk_to": risk_to, "severity": risk, "risk": risk, "risk_category": category, "reason": "a reason",
        "type_labeller": "cuad", "party_labeller": "rules", "risk_labeller": "rules",
    })
