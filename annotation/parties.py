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
    """First mention of a name, tolerating layout whitespace and case ("ACME CORP." on a cover)."""
    m = re.search(r"\s+".join(re.escape(w) for w in name.split()), text, re.IGNORECASE)
    return m.start() if m else -1


def _aliases_after(text: str, pos: int, window: int = 300, stop: int | None = None) -> list[str]:
    """Aliases defined right after a name: `X, a Delaware corporation ("Acme")`. Only the
    first definition counts, with any alternatives that follow it closely (`("Acme" or
    "Vendor")`); the window ends where the other party's name begins (`stop`)."""
    end = pos + window if stop is None or stop <= pos else min(pos + window, stop)
    out: list[str] = []
    last_end = None
    for m in _ALIAS.finditer(text, pos, end):
        if last_end is not None and m.start() - last_end > 40:
            break
        alias = m.group(1).strip()
        last_end = m.end()
        if _COLLECTIVE.fullmatch(alias) or _NOT_A_PARTY.search(alias):
            continue
        out.append(alias)
    for m in re.finditer(r'\bor\s+["“]([^"”]{2,40})["”]', text[last_end : last_end + 60] if last_end else ""):
        if not _NOT_A_PARTY.search(m.group(1)):
            out.append(m.group(1).strip())
    return out


def _is_name(entry: str) -> bool:
    """A party's name has at least two words ("Acme Corp."); one word ("Company",
    "NETGEAR", "Distributor") is a defined alias."""
    entry = entry.strip()
    if entry.startswith("(") or len(entry) < 2:
        return False
    return len(entry.split()) >= 2


def _lead(name: str, n: int = 2) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", name.lower())[:n])


def _same_party(a: str, b: str) -> bool:
    la, lb = _lead(a, 3), _lead(b, 3)
    return la.startswith(_lead(b, 2)) or lb.startswith(_lead(a, 2)) or la.replace(" ", "") == lb.replace(" ", "")


def from_cuad(text: str, entries: list[str]) -> Parties:
    """Order CUAD's Parties spans by first appearance; assign aliases to the nearest name."""
    # spans like 'the "Company"' are alias definitions, not names
    entries = [q.group(1) if (q := re.search(r'["“]([^"”]{2,60})["”]', e)) else e for e in entries]
    names = [e.strip() for e in entries if _is_name(e)]
    aliases = [
        e.strip().strip('"“”,;. ')
        for e in entries
        if not _is_name(e) and not e.strip().startswith("(") and not _NOT_A_PARTY.search(e)
        and not _COLLECTIVE.fullmatch(e.strip().strip('"“”,;. '))
    ]
    located = sorted({(_find(text, n), n) for n in names if _find(text, n) >= 0})
    # merge repeated mentions of one party ("Water Now" / "WATER NOW, INC.", "MediaNet" /
    # "MEDIANET GROUP TECHNOLOGIES"): same leading words, whatever the case
    primary: list[tuple[int, str]] = []
    for pos, name in located:
        if any(_same_party(name, p) for _, p in primary):
            continue
        primary.append((pos, name))
    if len(primary) < 2:  # fall back on an alias no known name defines ("the Agent named below")
        defined = {a for pos, name in primary for a in _aliases_after(text, pos + len(name))}
        for a in aliases:
            pos = _find(text, a)
            if pos >= 0 and a not in defined and not any(a in p or p in a for _, p in primary):
                primary.append((pos, a))
                break
        primary.sort()
    parties = Parties()
    if not primary:
        return parties
    parties.first_party = primary[0][1]
    if len(primary) > 1:
        parties.second_party = primary[1][1]
    roles = ["first_party", "second_party"]
    starts = sorted(p for p, _ in primary)
    for idx, (pos, name) in enumerate(primary[:2]):
        later = [p for p in starts if p > pos]
        parties.aliases[roles[idx]].extend(_aliases_after(text, pos + len(name), stop=later[0] if later else None))
    # CUAD alias spans not yet placed: give each to the party named closest before its definition
    placed = {a for v in parties.aliases.values() for a in v}
    for a in aliases:
        if a in placed or any(a == p for _, p in primary):
            continue
        pos = text.find(f'"{a}"')
        pos = pos if pos >= 0 else _find(text, a)
        best = None
        for idx, (_, name) in enumerate(primary[:2]):
            pattern = r"\s+".join(re.escape(w) for w in name.split())
            mentions = [m.end() for m in re.finditer(pattern, text[: max(pos, 0)], re.IGNORECASE)]
            if mentions and (best is None or mentions[-1] > best[0]):
                best = (mentions[-1], idx)
        if best is not None:
            parties.aliases[roles[best[1]]].append(a)
    for role in roles:
        other = parties.terms("second_party" if role == "first_party" else "first_party")
        parties.aliases[role] = [a for a in dict.fromkeys(parties.aliases[role]) if a not in other]
    return parties


_BETWEEN = re.compile(r"\bby\s+and\s+between\b|\bbetween\b|\bamong\b", re.IGNORECASE)
# a name: capitalised words, or a word like "iMine" / "eBay" (lower-case first letter, then a capital)
_WORD = r"(?:[A-Z][\w&.'\-]*|[a-z][A-Z][\w&.'\-]*)"
_NAME = re.compile(rf"({_WORD}(?:[ ,]+(?:{_WORD}|of|and|de|la|the|\d+))*)")
# Chinese-style openings: "Party A (Shipper): Name" / "甲方：Name"
# the name ends at a line break, a layout gap of 2+ spaces, an address or the other party's label
_PARTY_AB = re.compile(
    r"(?:Party\s+([AB])|([甲乙])方)\s*(?:\([^)]{0,40}\))?\s*[:：]\s*"
    r"((?:(?!\s{2}|Party\s+[AB]\b|[甲乙]方|Address\b|地址)[^\n;（(]){2,120})"
)


def extract_parties(text: str, window: int = 4000) -> Parties:
    """Find the parties of a contract from its opening, for contracts with no CUAD labels."""
    head = text[:window]
    parties = Parties()
    ab = {}
    for m in _PARTY_AB.finditer(head):
        role = "first_party" if (m.group(1) == "A" or m.group(2) == "甲") else "second_party"
        name = re.split(r",\s+(?:a|an|the|with|having|located)\s|，", m.group(3))[0]
        ab.setdefault(role, name.strip(" ,"))
    if len(ab) == 2:
        parties.first_party, parties.second_party = ab["first_party"], ab["second_party"]
        parties.aliases = {"first_party": ["Party A", "甲方"], "second_party": ["Party B", "乙方"]}
        return parties
    m = _BETWEEN.search(head)
    if not m:
        return parties
    rest = head[m.end() :]
    # the first two "Name, ... ("Alias")" units separated by "and"
    chunks = re.split(r"\)\s*,?\s*and\s+|;\s*and\s+|\band\b(?=\s+(?:[A-Z]|[a-z][A-Z]))", rest, maxsplit=2)
    names: list[str] = []
    for chunk in chunks[:2]:
        nm = _NAME.match(chunk.strip(" ,:;\n"))
        if nm:
            names.append(nm.group(1).strip(" ,"))
    if names:
        parties.first_party = names[0]
        stop = _find(text, names[1]) if len(names) > 1 else None
        parties.aliases["first_party"] = _aliases_after(text, _find(text, names[0]) + len(names[0]), stop=stop)
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
