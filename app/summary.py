"""The summary on top of a review: counts by risk, the highest risks, parties, missing clauses.

"Usual clauses" are the terms a lawyer expects in almost any commercial contract; when none
of a group's clause types was found, the summary lists the group as missing with why it
matters. The groups name taxonomy ids and are checked against the taxonomy when used, so a
renamed type fails loudly here instead of silently never matching.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from contract_review.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from .review import Finding

TOP_RISKS = 10
QUOTE_CHARS = 240

# (what a lawyer calls it, the taxonomy types that count as having it, why its absence matters)
USUAL_CLAUSES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Limitation of liability", ("cap_on_liability", "uncapped_liability"),
     "No cap on or exclusion of damages was found: liability for a breach may be unlimited."),
    ("Governing law", ("governing_law",),
     "No choice of law was found: which law governs is left to conflict-of-laws rules."),
    ("Dispute forum", ("jurisdiction", "arbitration"),
     "No agreed court or arbitration was found: a dispute may start with a fight over where to sue."),
    ("Term and expiry", ("expiration_date", "renewal_term"),
     "No term or expiry was found: it is unclear how long the obligations last."),
    ("Assignment", ("anti_assignment", "change_of_control"),
     "No limit on assignment was found: the other side may transfer the contract to a third party."),
    ("Dates", ("agreement_date", "effective_date"),
     "No agreement or effective date was found: when the obligations start is unclear."),
)


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def risk_order(findings: Sequence["Finding"], tax: Taxonomy) -> list["Finding"]:
    """Highest risk first; within a level the surest first, then in contract order."""
    return sorted(findings, key=lambda f: (-tax.risk_rank(f.risk), -f.confidence, f.index))


def summarize(findings: Sequence["Finding"], parties: dict, tax: Taxonomy | None = None) -> dict:
    tax = tax or load_taxonomy()
    counts = Counter(f.risk for f in findings)
    found_types = {t for f in findings for t in f.clause_types}
    missing = []
    for name, types, why in USUAL_CLAUSES:
        for t in types:
            tax.clause_type(t)  # raises naming the taxonomy file if a type was renamed
        if not found_types & set(types):
            missing.append({"clause": name, "types": list(types), "why": why})
    top = [f for f in risk_order(findings, tax) if f.is_risk][:TOP_RISKS]
    party_list = []
    for role in ("first_party", "second_party"):
        if parties.get(role):
            party_list.append({"role": role, "name": parties[role],
                               "aliases": list(parties.get("aliases", {}).get(role, []))})
    return {
        "clauses": len(findings),
        "risk_counts": {level: counts.get(level, 0) for level in reversed(tax.risk_levels)},
        "risk_clauses": sum(f.is_risk for f in findings),
        "unlabelled": sum(1 for f in findings if f.error),
        "corrected": sum(1 for f in findings if f.corrected),
        "top_risks": [{"index": f.index, "risk": f.risk, "type": ", ".join(f.type_names), "party": f.party_name,
                       "reason": f.reason, "confidence": f.confidence, "quote": quote(f.text)} for f in top],
        "parties": party_list,
        "missing": missing,
    }
