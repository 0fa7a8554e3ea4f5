"""The summary on top of a review: counts by risk, the highest risks (overall and for the party
the user represents), the parties, the usual clauses found or not, and what was checked.

"Usual clauses" are the terms a lawyer expects in almost any commercial contract. A group is
claimed "not found" only when the review could have found it: the contract is in English,
reads like a contract and was labelled to its end (`assessed`), no clause of the group's
types was labelled, and the group's words appear nowhere in the text. Where the words do
appear ("governed by the laws of ...") but no clause was labelled as such, the group is
"mentioned" with where, for the lawyer to check: a wrong "missing" list is worse than none.
When the review could not judge at all, every group is "not checked" and no list claims
anything. The groups name taxonomy ids and are checked against the taxonomy when used, so a
renamed type fails loudly here instead of silently never matching.

"What was checked" lists every clause type of the taxonomy by risk area, with where each
was found and its highest risk, so a client sees what was looked for and found acceptable,
not only what was flagged.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from contract_review.taxonomy import Taxonomy, load_taxonomy

from .reasons import resolve_party

if TYPE_CHECKING:
    from .review import Finding

TOP_RISKS = 10
QUOTE_CHARS = 240
FOUND, MENTIONED, NOT_FOUND, NOT_CHECKED = "found", "mentioned", "not found", "not checked"

# (what a lawyer calls it, the taxonomy types that count as having it, the words that mention it,
#  why its absence matters)
USUAL_CLAUSES: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("Limitation of liability", ("cap_on_liability", "uncapped_liability"),
     r"limitation\s+of\s+liability|limit(?:s|ed)?\s+(?:of|on)\s+(?:its\s+|their\s+|the\s+)?liability|"
     r"aggregate\s+liability|in\s+no\s+event\s+(?:shall|will)\s[^.]{0,120}\bliable|consequential\s+damages",
     "No cap on or exclusion of damages was found: liability for a breach may be unlimited."),
    ("Governing law", ("governing_law",),
     r"govern(?:ed|ing)\s+(?:by|law)|construed\s+(?:in\s+accordance\s+with|under)\s+the\s+laws?",
     "No choice of law was found: which law governs is left to conflict-of-laws rules."),
    ("Dispute forum", ("jurisdiction", "arbitration"),
     r"arbitrat|jurisdiction|\bvenue\b|\bcourts?\s+(?:of|in|located)",
     "No agreed court or arbitration was found: a dispute may start with a fight over where to sue."),
    ("Term and expiry", ("expiration_date", "renewal_term"),
     r"\b(?:initial|renewal)\s+term\b|\bterm\s+of\s+this\b|\bexpir|remain\s+in\s+(?:full\s+)?(?:force|effect)\s+(?:for|until)",
     "No term or expiry was found: it is unclear how long the obligations last."),
    ("Assignment", ("anti_assignment", "change_of_control"),
     r"\bassign(?:s|ed|ment)?\b|\btransfer\s+this\s+agreement|change\s+(?:of|in)\s+control",
     "No limit on assignment was found: the other side may transfer the contract to a third party."),
    ("Dates", ("agreement_date", "effective_date"),
     r"\bdated\s+(?:as\s+of\s+)?|effective\s+(?:date|as\s+of)|made\s+(?:and\s+entered\s+into\s+)?(?:as\s+of|on)\b",
     "No agreement or effective date was found: when the obligations start is unclear."),
)


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def risk_order(findings: Sequence["Finding"], tax: Taxonomy) -> list["Finding"]:
    """Highest risk first; within a level the surest first, then in contract order."""
    return sorted(findings, key=lambda f: (-tax.risk_rank(f.risk), -f.confidence, f.index))


def _where(pos: int, findings: Sequence["Finding"], segments: Sequence[dict]) -> str:
    for f in findings:
        if f.start <= pos < f.end:
            return f.where
    for s in segments:
        if s["start"] <= pos < s["end"]:
            ref = " ".join(x for x in (s.get("number"), s.get("heading")) if x)
            return ref or f"a {s['kind'].replace('_', ' ')} passage"
    return "the text"


def usual_clauses(findings: Sequence["Finding"], tax: Taxonomy, text: str, segments: Sequence[dict],
                  assessed: bool) -> list[dict]:
    """Each usual clause: found (where), mentioned (where: check it), not found (why it matters), or
    not checked (the review could not judge)."""
    out = []
    for name, types, words, why in USUAL_CLAUSES:
        for t in types:
            tax.clause_type(t)  # raises naming the taxonomy file if a type was renamed
        row = {"clause": name, "types": list(types), "why": why, "where": []}
        hits = [f for f in findings if set(types) & set(f.clause_types)]
        if not assessed:
            row["status"] = NOT_CHECKED
        elif hits:
            row["status"], row["where"] = FOUND, [f.where for f in hits[:5]]
        else:
            found = [m.start() for m in re.finditer(words, text, re.IGNORECASE)][:20]
            where = list(dict.fromkeys(_where(pos, findings, segments) for pos in found))[:3]
            row["status"], row["where"] = (MENTIONED, where) if where else (NOT_FOUND, [])
        out.append(row)
    return out


def checked_types(findings: Sequence["Finding"], tax: Taxonomy) -> list[dict]:
    """Every clause type, grouped by risk area: where it was found and its highest risk."""
    by_type: dict[str, list["Finding"]] = {}
    for f in findings:
        for t in f.clause_types:
            by_type.setdefault(t, []).append(f)
    areas: dict[str, list[dict]] = {}
    for ct in tax.clause_types:
        if ct.id == "other":
            continue
        hits = by_type.get(ct.id, [])
        top = max((f.risk for f in hits), key=tax.risk_rank, default=None)
        areas.setdefault(ct.risk_category, []).append(
            {"id": ct.id, "name": ct.name, "found": [f.where for f in hits[:4]], "count": len(hits), "risk": top})
    return [{"area": area, "types": rows} for area, rows in areas.items()]


def _top(f: "Finding") -> dict:
    return {"index": f.index, "ref": f.ref, "where": f.where, "risk": f.risk, "type": ", ".join(f.type_names),
            "party": f.party_name, "risk_to": f.risk_to, "risk_to_name": f.risk_to_name, "severity": f.severity,
            "reason": f.reason, "confidence": f.confidence, "quote": quote(f.text)}


def represented(findings: Sequence["Finding"], tax: Taxonomy, role: str | None) -> dict | None:
    """The highest risks the represented party bears (alone or with the other side), and how many
    flagged clauses have no assessed bearer (the lawyer must read those to know)."""
    if role is None:
        return None
    mine = [f for f in risk_order(findings, tax) if f.is_risk and f.risk_to in (role, "both")]
    unknown = [f for f in findings if f.is_risk and f.risk_to is None]
    return {"top_risks": [_top(f) for f in mine[:TOP_RISKS]], "count": len(mine),
            "bearer_not_assessed": len(unknown)}


def summarize(findings: Sequence["Finding"], parties: dict, tax: Taxonomy | None = None, represent: str | None = None,
              text: str = "", segments: Sequence[dict] = (), assessed: bool = True,
              not_assessed_why: str = "") -> dict:
    tax = tax or load_taxonomy()
    counts = Counter(f.risk for f in findings)
    role = resolve_party(represent, parties.get("list", []))
    usual = usual_clauses(findings, tax, text, segments, assessed)
    top = [f for f in risk_order(findings, tax) if f.is_risk][:TOP_RISKS]
    party_list = []
    for p in parties.get("list", []):
        if p["role"] in ("first_party", "second_party"):
            party_list.append({"role": p["role"], "name": parties.get(p["role"], p.get("name", "")),
                               "aliases": list(p.get("aliases", [])), "blank": bool(p.get("blank"))})
    return {
        "assessed": assessed,
        "not_assessed_why": "" if assessed else not_assessed_why,
        "clauses": len(findings),
        "risk_counts": {level: counts.get(level, 0) for level in reversed(tax.risk_levels)},
        "risk_clauses": sum(f.is_risk for f in findings),
        "unlabelled": sum(1 for f in findings if f.error),
        "corrected": sum(1 for f in findings if f.corrected),
        "top_risks": [_top(f) for f in top],
        "represent": {"role": role, "name": parties.get(role, "")} if role else None,
        "for_represented": represented(findings, tax, role),
        "parties": party_list,
        "usual": usual,
        "missing": [u for u in usual if u["status"] == NOT_FOUND],
        "checked": checked_types(findings, tax),
    }
