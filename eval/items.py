"""What evaluation scores against: one `EvalItem` per clause, with its gold labels.

An item comes from a dataset record (`from_record`) or from a CLAUDETTE sentence read in
its published layout (`claudette_eval.py`). It carries the record's labels, who labelled the
risk (`risk_labeller`: "graded" marks the gold labels of the graded set, the rest are the rule
pre-labeller's or set by CLAUDETTE's fairness levels), and
`unfair`: the LexGLUE UNFAIR-ToS categories (CLAUDETTE codes) the sentence is unfair
for, or None for a clause that is not a Terms-of-Service sentence (CUAD), so the
8-category figures are computed over ToS sentences only.

For a dataset record the categories are derived from its labels: code C is unfair when
the clause type mapped to C is among `clause_types` and the clause is a risk clause
(medium/high: the experts' "potentially" or "clearly unfair"). The record keeps one risk
per clause, so a sentence tagged fair for one category and unfair for another counts as
unfair for both; reading the layout (`--claudette`) uses LexGLUE's labels exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from contract_review.predictor import ClauseInput
from contract_review.records import ClauseRecord, RecordError, read_records
from contract_review.taxonomy import Taxonomy, load_taxonomy


@dataclass(frozen=True)
class EvalItem:
    id: str
    doc_id: str
    source: str
    text: str
    clause_types: tuple[str, ...]
    party: str
    risk: str
    risk_category: str = "none"
    party_names: dict[str, str] = field(default_factory=dict)
    verified: bool = False
    unfair: frozenset[str] | None = None  # LexGLUE categories (CLAUDETTE codes); None: not a ToS sentence
    risk_to: str | None = None  # who bears the risk; None only for an item made without one (tests)
    # who labelled the risk: "graded" (two annotators, adjudicated: gold), "claudette+rules" (the experts'
    # fairness level sets the severity, the bearer rule the bearer), "rules" (the rule pre-labeller)
    risk_labeller: str = "rules"
    party_aliases: dict[str, list[str]] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """How severe the risk is for its bearer (`risk` is the same value under its old name)."""
        return self.risk

    @property
    def risk_graded(self) -> bool:
        return self.risk_labeller == "graded"

    def clause_input(self) -> ClauseInput:
        return ClauseInput(self.text, dict(self.party_names),
                           {k: list(v) for k, v in self.party_aliases.items()}, terms_of_service=self.source == "claudette")

    def gold(self) -> dict:
        out = {"clause_types": list(self.clause_types), "party": self.party, "risk_to": self.risk_to,
               "severity": self.severity, "risk": self.risk, "risk_category": self.risk_category,
               "risk_labeller": self.risk_labeller}
        if self.unfair is not None:
            out["unfair"] = sorted(self.unfair)
        return out


def unfair_codes(clause_types, risk: str, tax: Taxonomy) -> frozenset[str]:
    """CLAUDETTE codes a (clause types, risk) pair calls unfair: a mapped type, at medium/high risk."""
    if not tax.is_risk_clause(risk):
        return frozenset()
    by_type = {ct.id: code for code, ct in tax.by_claudette().items()}
    return frozenset(by_type[t] for t in clause_types if t in by_type)


def from_record(record: ClauseRecord, tax: Taxonomy | None = None) -> EvalItem:
    tax = tax or load_taxonomy()
    unfair = unfair_codes(record.clause_types, record.risk, tax) if record.source == "claudette" else None
    return EvalItem(
        id=record.id,
        doc_id=f"{record.source}/{record.doc_id}",
        source=record.source,
        text=record.text,
        clause_types=tuple(record.clause_types),
        party=record.party,
        risk=record.risk,
        risk_category=record.risk_category,
        party_names=dict(record.party_names),
        verified=record.verified,
        unfair=unfair,
        risk_to=record.risk_to,
        risk_labeller="graded" if record.risk_graded else record.risk_labeller,
        party_aliases={k: list(v) for k, v in record.party_aliases.items()},
    )


def load_items(path: str | Path, limit: int | None = None) -> list[EvalItem]:
    """Items of a dataset file; a broken line, an unknown label or an empty file raises RecordError
    naming the file and line (read_records validates every record against the taxonomy)."""
    records = read_records(path)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise RecordError(f"{path}: record id {dup!r} occurs more than once; ids must be unique to pair runs")
    tax = load_taxonomy()
    items = [from_record(r, tax) for r in records]
    return take(items, limit)


def take(items: list[EvalItem], limit: int | None, seed: int = 0) -> list[EvalItem]:
    """A fixed sample of `limit` items (seeded, in file order): drawn across the whole file
    rather than its head, so a small slice still spans many documents and the by-document
    bootstrap means something."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        raise ValueError(f"--limit must be positive, got {limit}")
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]
