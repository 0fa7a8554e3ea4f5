"""The contract's parties: names as written, defined aliases, and their roles.

The role scheme mirrors 甲方/乙方: `first_party` is the party named first in the
contract's opening, `second_party` the next one. CUAD gives the parties' names and alias
definitions (its "Parties" spans); for any other contract `extract_parties` reads the
opening ("by and between X ("Alias") and Y"). In a Terms of Service the provider is the
first party ("we", "us") and the user the second ("you").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ALIAS = re.compile(
    r"""\(\s*(?:each\s+|individually\s+|hereinafter\s+|herein\s+|collectively\s+)?(?:referred\s+to\s+)?(?:as\s+)?(?:the\s+|a\s+)?["“']([^"”']{2,60})["”']""",
    re.IGNORECASE,
)
_ORG = re.compile(r"\b(inc|corp|corporation|llc|l\.l\.c|ltd|limited|plc|lp|l\.p|llp|gmbh|s\.a|n\.v|ag|co|company|bank|trust|partners|holdings)\b\.?", re.IGNORECASE)
# defined terms that follow a party's name but are not the party
_NOT_A_PARTY = re.compile(r"\b(date|agreement|amendment|program|price|website|term|territory|products?|services?|plan|exhibit|schedule)\b", re.IGNORECASE)
_COLLECTIVE = re.compile(r"\b(parties|party)\b", re.IGNORECASE)


@dataclass
class Parties:
    first_party: str = ""
    second_party: str = ""
    aliases: dict[str, list[str]] = field(default_factory=lambda: {"first_party": [], "second_party": []})

    def names(self) -> dict[str, str]:
        return {"first_party": self.first_party, "second_party": self.second_party}

    def terms(self, role: str) -> list[str]:
        """All the ways the contract names a role, longest first."""
        base = [self.first_party if role == "first_party" else self.second_party]
        terms = {t.strip() for t in base + self.aliases.get(role, []) if t and t.strip()}
        return sorted(terms, key=len, reverse=True)


def _find(text: str, name: str) -> int:
    i = text.find(name)
    if i < 0:
        m = re.search(r"\s+".join(re.escape(w) for w in name.split()), text)
        i = m.start() if m else -1
    return i


def _aliases_after(text: str, pos: int, window: int = 300) -> list[str]:
    """Aliases defined right after a name: `X, a Delaware corporation ("Acme")`."""
    tail = text[pos : pos + window]
    # stop at the next party name's "and" to avoid taking the other party's alias
    out = []
    for m in _ALIAS.finditer(tail):
        alias = m.group(1).strip()
        if _COLLECTIVE.fullmatch(alias) or _NOT_A_PARTY.search(alias):
            continue
        out.append(alias)
        if len(out) == 2:
            break
    return out


def _is_name(entry: str) -> bool:
    entry = entry.strip()
    if entry.startswith("(") or len(entry) < 2:
        return False
    return bool(_ORG.search(entry)) or len(entry.split()) >= 2


def from_cuad(text: str, entries: list[str]) -> Parties:
    """Order CUAD's Parties spans by first appearance; assign aliases to the nearest name."""
    names = [e.strip() for e in entries if _is_name(e)]
    aliases = [
        e.strip().strip('"“”')
        for e in entries
        if not _is_name(e) and not e.strip().startswith("(") and not _NOT_A_PARTY.search(e)
    ]
    located = sorted({(_find(text, n), n) for n in names if _find(text, n) >= 0})
    # merge repeated mentions of one party (a short form inside a longer name)
    primary: list[tuple[int, str]] = []
    for pos, name in located:
        if any(name in p or p in name for _, p in primary):
            continue
        primary.append((pos, name))
    if len(primary) < 2:  # fall back on aliases as names
        for a in aliases:
            pos = _find(text, a)
            if pos >= 0 and not any(a in p or p in a for _, p in primary):
                primary.append((pos, a))
        primary.sort()
    parties = Parties()
    if not primary:
        return parties
    parties.first_party = primary[0][1]
    if len(primary) > 1:
        parties.second_party = primary[1][1]
    roles = ["first_party", "second_party"]
    for idx, (pos, name) in enumerate(primary[:2]):
        parties.aliases[roles[idx]].extend(_aliases_after(text, pos + len(name)))
    # CUAD alias spans not yet placed: give each to the closest preceding primary name
    placed = {a for v in parties.aliases.values() for a in v}
    for a in aliases:
        if a in placed or any(a == p for _, p in primary):
            continue
        pos = text.find(f'"{a}"')
        pos = pos if pos >= 0 else _find(text, a)
        before = [(p, i) for i, (p, _) in enumerate(primary[:2]) if 0 <= p <= pos]
        if before:
            parties.aliases[roles[max(before)[1]]].append(a)
    for role in roles:
        other = parties.terms("second_party" if role == "first_party" else "first_party")
        parties.aliases[role] = [a for a in dict.fromkeys(parties.aliases[role]) if a not in other]
    return parties


_BETWEEN = re.compile(r"\bby\s+and\s+between\b|\bbetween\b|\bamong\b", re.IGNORECASE)


def extract_parties(text: str, window: int = 4000) -> Parties:
    """Find the parties of a contract from its opening, for contracts with no CUAD labels."""
    head = text[:window]
    m = _BETWEEN.search(head)
    if not m:
        return Parties()
    rest = head[m.end() :]
    # the first two "Name, ... ("Alias")" units separated by "and"
    chunks = re.split(r"\)\s*,?\s*and\s+|;\s*and\s+|\band\b(?=\s+[A-Z])", rest, maxsplit=2)
    names: list[str] = []
    for chunk in chunks[:2]:
        chunk = chunk.strip(" ,:;\n")
        nm = re.match(r"([A-Z][\w&.'\-]*(?:[ ,]+(?:[A-Z][\w&.'\-]*|of|and|de|la|the))*)", chunk)
        if nm:
            names.append(nm.group(1).strip(" ,"))
    parties = Parties()
    if names:
        parties.first_party = names[0]
        parties.aliases["first_party"] = _aliases_after(text, _find(text, names[0]) + len(names[0]))
    if len(names) > 1:
        parties.second_party = names[1]
        parties.aliases["second_party"] = _aliases_after(text, _find(text, names[1]) + len(names[1]))
    return parties


def terms_of_service(company: str) -> Parties:
    """The provider (first party) and the user (second party) of a Terms of Service."""
    name = company.replace("_", " ").replace("-", " ")
    return Parties(
        first_party=name,
        second_party="the user",
        aliases={
            "first_party": [name, "we", "us", "our", "the company", "the service provider"],
            "second_party": ["you", "your", "users", "user", "members", "member", "customer", "customers"],
        },
    )
