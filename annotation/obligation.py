"""Rule pre-labeller for the obligated party: who must act or refrain under a clause.

It follows `data/guidelines.md`: find each duty ("shall", "must", "agrees to", "shall not",
"may not", ...) that is not a definition, a legal effect or a right ("shall mean", "shall
be deemed", "shall have the right", "shall not be liable"); find the duty's bearer, the
subject before it or the agent of a passive ("shall be paid by X"); map the bearer to a
role with the contract's party names and aliases. Duties of both sides, or of "each
party" / "neither party" / "the parties", give `both`; no duty with a known bearer gives
`none`. It is a pre-labeller: records it labels say `party_labeller: "rules"`, and the
verified records show its accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .parties import Parties

_DUTY = re.compile(
    r"\b(shall|must|will|agrees?\s+(?:not\s+)?to|undertakes?\s+(?:not\s+)?to|covenants?\s+(?:not\s+)?to|"
    r"(?:is|are)\s+(?:required|obligated|obliged|responsible)|may\s+not|cannot|can\s+not)\b",
    re.IGNORECASE,
)
# after a duty word: uses that state a definition, an effect or a right, not a duty
_NOT_DUTY = re.compile(
    r"^\s*(?:not\s+)?(?:be\s+)?(?:(?:deemed|construed|interpreted|governed|binding|effective|entitled|"
    r"liable|void|valid|enforceable|considered|terminated|extended|renewed|automatically|final|"
    r"applicable|available|subject|in\s+effect|in\s+full\s+force)\b|mean|means|include|includes|"
    r"have\s+(?:the\s+)?(?:right|option|power|authority|no\s+(?:liability|obligation|responsibility))|"
    r"(?:terminate|expire|survive|continue|remain|commence|apply|prevail|control|inure)\b)",
    re.IGNORECASE,
)
_PASSIVE_AGENT = re.compile(
    r"^\s*(?:be\s+)?(?:\w+ly\s+)?(?:paid|borne|made|provided|performed|delivered|given|sent|reimbursed|"
    r"maintained|prepared|submitted|furnished|supplied|obtained|kept|handled)\s+by\s+(.{2,80}?)(?:[,.;:]|\s+(?:to|within|for|in|at|on|no)\b|$)",
    re.IGNORECASE,
)
_BOTH = re.compile(
    r"\b(each|either|neither|both)\s+(?:of\s+the\s+)?part(?:y|ies)\b|\bthe\s+parties\b|\beach\s+of\s+(?:us|them)\b",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(r"[.;:]\s|\(\w{1,4}\)\s|\b(?:and|or|but|that|which|if|unless|provided|except|whereas)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ObligationLabel:
    party: str  # first_party | second_party | both | none
    evidence: str  # the duty phrase the label rests on, for a reviewer


def role_in(phrase: str, parties: Parties) -> str | None:
    if _BOTH.search(phrase):
        return "both"
    hits: list[tuple[int, str]] = []
    for role in ("first_party", "second_party"):
        for term in parties.terms(role):
            flags = 0 if len(term) <= 3 and term.isupper() else re.IGNORECASE
            for m in re.finditer(rf"(?<![\w-]){re.escape(term)}(?![\w-])", phrase, flags):
                hits.append((m.end(), role))
    if not hits:
        return None
    roles = {r for _, r in hits}
    if len(roles) == 2 and re.search(r"\b(and|together\s+with|jointly)\b", phrase, re.IGNORECASE):
        return "both"
    return max(hits)[1]  # the mention nearest the duty word is its subject


def label_obligation(text: str, parties: Parties) -> ObligationLabel:
    text = " ".join(text.split())
    roles: list[tuple[str, str]] = []
    for m in _DUTY.finditer(text):
        after = text[m.end() :]
        passive = _PASSIVE_AGENT.match(after)
        if passive:
            role = role_in(passive.group(1), parties)
            if role:
                roles.append((role, text[m.start() : m.end() + passive.end()]))
                continue
        if _NOT_DUTY.match(after):
            continue
        # the subject: words since the last clause boundary before the duty word
        before = text[max(0, m.start() - 160) : m.start()]
        cuts = [b.end() for b in _BOUNDARY.finditer(before)]
        subject = before[cuts[-1] :] if cuts else before
        role = role_in(subject, parties)
        if role is None and cuts:  # "X and its affiliates shall": look one boundary further back
            subject = before[cuts[-2] :] if len(cuts) > 1 else before
            role = role_in(subject, parties)
        if role:
            roles.append((role, (subject + m.group(0)).strip()))
    found = {r for r, _ in roles}
    if not found:
        return ObligationLabel("none", "")
    if "both" in found or {"first_party", "second_party"} <= found:
        ev = next((e for r, e in roles if r == "both"), "; ".join(e for _, e in roles[:2]))
        return ObligationLabel("both", ev)
    role = found.pop()
    return ObligationLabel(role, next(e for r, e in roles if r == role))
