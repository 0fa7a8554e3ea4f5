"""A finding's reason in the clause's own terms, and the party labels a lawyer reads.

    reason, terms = clause_reason(answer, clause_text, offset, party_terms, tax)
    # "Termination for Convenience: one side can walk away ... In this clause: obliges Acme;
    #  ten (10) days written notice."  + [{"kind": "notice", "text": ..., "start": 6231, "end": 6259}]

The model (or the taxonomy row it fell back on) gives a sentence about the clause *type*; a
lawyer needs the clause's own figures. `annotation.key_terms` finds them (amounts, durations,
notice periods, caps, "uncapped", who acts and in whose favour); they are quoted after the
sentence, and each keeps its span in the contract so the page can point at it. Only when none
is found does the reason stay the type's generic sentence.

A reason never contradicts the type: a sentence written for another clause type (one that
starts with another type's name, or is another type's default) is replaced by the default
reason of the finding's own top type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from contract_review.annotation.key_terms import describe, extract
from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy

NOT_ASSESSED = "not assessed"


def _contradicts(reason: str, types: Sequence[str], tax: Taxonomy) -> bool:
    own = set(types)
    for ct in tax.clause_types:
        if ct.id in own:
            continue
        if reason.startswith(f"{ct.name}:") or reason == tax.default_reason(ct.id):
            return True
    return False


def base_reason(answer: Answer, tax: Taxonomy) -> str:
    """The model's sentence, or the top type's default when it was written for another type."""
    types = tax.order_types(answer.clause_types)
    reason = (answer.reason or "").strip()
    if not reason or _contradicts(reason, types, tax):
        return tax.default_reason(types[0])
    return reason


def clause_reason(answer: Answer, clause: str, offset: int, party_terms: Sequence[str],
                  tax: Taxonomy) -> tuple[str, list[dict]]:
    """The reason with the clause's key terms quoted, and those terms with their spans in the contract
    (`clause` is the clause as written, `offset` where it starts in the contract)."""
    reason = base_reason(answer, tax)
    terms = extract(clause, party_terms)
    spans = [{"kind": t.kind, "text": " ".join(t.text.split()), "start": offset + t.start, "end": offset + t.end}
             for t in terms]
    said = describe(terms)
    if said and said.lower() not in reason.lower():
        reason = f"{reason.rstrip()} In this clause: {said}."
    return reason, spans


def masked_span(text: str, start: int, end: int, gaps: Sequence[Sequence[int]]) -> str:
    """The clause as written with page furniture blanked (same length, so offsets hold)."""
    span = list(text[start:end])
    for s, e in gaps:
        for i in range(max(s, start), min(e, end)):
            span[i - start] = " "
    return "".join(span)


# -- parties as a lawyer reads them ------------------------------------------------------------------

def party_label(party: dict | None, role: str) -> str:
    """A party of the contract's list as the report names it: its name; a blank in the template shown
    as the blank with the term the contract uses; a side the contract never names said so."""
    ordinal = "first" if role == "first_party" else "second"
    if not party:
        return f"the {ordinal} party (not identified)"
    alias = party["aliases"][0] if party.get("aliases") else ""
    if party.get("blank"):
        called = f"the {alias}" if alias else f"the {ordinal} party"
        return f"{called} (name left blank: {party['name']})"
    if party.get("name"):
        return party["name"]
    if "not_found" in party.get("found_in", []):
        return f"the {ordinal} party (not identified)"
    return f"the {alias}" if alias else f"the {ordinal} party (not named)"


def role_name(role: str | None, labels: dict[str, str]) -> str:
    """A role (first_party, second_party, both, none, or None: not assessed) named for this contract."""
    if role is None:
        return NOT_ASSESSED
    if role in ("first_party", "second_party"):
        return labels[role]
    if role == "both":
        return f"both ({labels['first_party']} and {labels['second_party']})"
    return "no one"


def resolve_party(choice: str | None, party_list: Sequence[dict]) -> str | None:
    """`--represent` / the page's choice as a role: "first_party", "second_party", or a name or alias of
    one of the first two parties (case and punctuation ignored). None for no choice; ValueError naming
    the parties for a name the contract does not use."""
    if not choice or not choice.strip():
        return None
    choice = choice.strip()
    if choice in ("first_party", "second_party"):
        return choice

    def key(s: str) -> str:
        return " ".join(re.findall(r"\w+", s.lower()))

    for p in party_list[:2]:
        if key(choice) in {key(t) for t in [p.get("name", ""), *p.get("aliases", [])] if t}:
            return p["role"]
    names = "; ".join(f"{p['role']}: {p.get('name') or '(unnamed)'}"
                      + (f" ({', '.join(p['aliases'])})" if p.get("aliases") else "") for p in party_list[:2])
    raise ValueError(f"{choice!r} is not a party of this contract; use first_party, second_party or a name: {names}")
