"""The parties of a contract: one canonical list per contract, with aliases, and their roles.

    plist = contract_parties(text)                   # any contract: the app, `annotate push --contracts`
    plist = contract_parties(text, hints=names)      # a CUAD contract: its lawyers' Parties spans help
    plist.names()    -> {"first_party": "ACME Corp.", "second_party": "Beta LLC"}
    plist.aliases()  -> {"first_party": ["ACME", "Supplier"], "second_party": ["Beta", "Distributor"]}
    plist.roles()    -> Parties, what the obligation and risk labellers match clauses against

Roles mirror 甲方/乙方: the first party named in the contract's opening is `first_party`, the
next `second_party` ("Party A" / "Party B" and 甲方 / 乙方 say so themselves). Parties named
after the second stay in the list and are grouped with the second party's side when a clause is
labelled (data/guidelines.md, "More than two parties").

Where names come from, in order of trust:
1. the opening: "by and between X, a Delaware corporation ("Alias"), and Y ("Alias")", a
   "Party A: X" block, or a letter's signer and addressee; each name with the aliases defined
   beside it;
2. hints: names marked by someone who read the contract (CUAD's Parties column). They complete
   a truncated name ("Rise" -> "Rise Inc."), fill a party the opening only refers to ("the
   above-named Supplier"), and order nothing: the opening's order decides the roles;
3. the signature blocks, which carry full legal names, for a name still truncated or missing.
Names are cleaned (layout whitespace, stray quotes and apostrophes, trailing commas); a template
blank ("[•]", "______", "[Name of Licensee]") is kept and flagged `blank`, never replaced by an
invented name; a role nobody is found for stays empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ROLES = ("first_party", "second_party")

_QUOTE = "\"“”'‘’`´"
_ORG = re.compile(
    r"\b(?:inc|incorporated|corp|corporation|llc|l\.l\.c|ltd|limited|plc|lp|l\.p|llp|l\.l\.p|gmbh|s\.a|sa|n\.v|nv|"
    r"b\.v|bv|ag|kg|co|company|bank|trust|partners|holdings|n\.a|s\.r\.l|srl|s\.p\.a|pty|s/a|a/s|ab|oy|kgaa|"
    r"association|fund|chapter|university|institute|foundation|authority)\b\.?",
    re.IGNORECASE)
# the legal forms that end a company's name; what follows one is an address or a date, not the name
_SUFFIX = re.compile(
    r"\b(?:inc|incorporated|corp|corporation|llc|l\.l\.c|ltd|limited|plc|lp|l\.p|llp|l\.l\.p|gmbh|s\.a|n\.v|b\.v|ag|"
    r"kg|kgaa|s\.r\.l|srl|s\.p\.a|pty|s/a|a/s|co)\b\.?", re.IGNORECASE)
# defined terms that follow a party's name but are not the party
_NOT_A_PARTY = re.compile(
    r"\b(?:date|agreement|amendment|program|price|website|term|territory|products?|services?|plan|exhibit|"
    r"schedule|contract|shares?|offering|stock|act|brand|marks?|software|business|affiliates?|group)\b",
    re.IGNORECASE)
_COLLECTIVE = re.compile(r"(?:each\s+|a\s+|the\s+)?(?:part(?:y|ies)|signator(?:y|ies))", re.IGNORECASE)
_PRONOUNS = {"we", "us", "our", "you", "your", "i", "me", "my"}
# a quoted defined term, and an unquoted one of the Chinese-style openings ("hereinafter referred to as Party A")
_DEFINITION = re.compile(r"[\"“”]([^\"“”\n]{1,60}?),?[\"“”]")
_UNQUOTED_DEF = re.compile(r"\(\s*(?:hereinafter\s+)?(?:referred\s+to\s+as|called)\s+(?:the\s+)?"
                           r"(Party\s+[A-C]|[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*){0,3})\s*\)")
_ANCHOR = re.compile(r"\b(?:by\s+and\s+(?:between|among)|between|among|entered\s+into\s+by)\s*[:\-]*", re.IGNORECASE)
_LETTER = re.compile(r"\b(?:Ladies\s+and\s+Gentlemen|Dear\s+(?:Sirs?|Madam|[A-Z][\w.]*(?:\s+[A-Z][\w.]*){0,3}))\s*[:,]")
_PREAMBLE_END = re.compile(
    r"(?i:\bW\s?I\s?T\s?N\s?E\s?S\s?S\s?E\s?T\s?H\b|\bRECITALS?\b|\bWHEREAS\b|\bBACKGROUND\b|\bNOW,?\s+THEREFORE\b|"
    r"\bIN\s+CONSIDERATION\b|\bagree\s+as\s+follows\b|\bhereby\s+agree\b|\bTERMS\s+AND\s+CONDITIONS\b)|"
    r"\bTABLE\s+OF\s+CONTENTS\b|\bDATED\b|\bDated\s+(?:as\s+of\s+)?[A-Z0-9]|\bEffective\s+Date\b|"
    r"\n\s*(?:ARTICLE|Section|SECTION)?\s*1\.\s|\bARTICLE\s+(?:I|1)\b|\bSource:")
_PARTY_AB = re.compile(
    r"(?:Party\s+([AB])|([甲乙])方)\s*(?:[(（][^)）]{0,40}[)）])?\s*[:：]\s*"
    r"((?:(?!\s{2}|Party\s+[AB]\b|[甲乙]方|Address\b|地址)[^\n;（(]){2,120})")
# the words a name is made of: capitalised words, "iMine" / "eBay", numbers ("695014 B.C. Ltd.")
_WORD = (r"(?:[A-Z0-9][\w&.'’\-/@!+,]*|[a-z]{1,2}[A-Z.][\w&.'’\-/@]*|[a-z]-[a-z][\w&.'’\-/@,]*|"
         r"(?:of|and|de|du|des|la|le|the|for|und|y|dba|d/b/a|&)(?=\s))")
_NAME_HEAD = re.compile(rf"(?:{_WORD})(?:\s+(?:{_WORD}|\([A-Z][\w .&/-]{{0,24}}\)(?=\s+[A-Z])))*")
_NAME_STOP = re.compile(
    r",?\s+(?:a|an|the|with|having|whose|which|located|organized|organised|incorporated|acting|on\s+behalf|"
    r"duly|existing|formed|registered|residing|domiciled|its|who|at|in|by|as)\b|\s+\(|,\s*(?=[a-z])|,\s*$|"
    r",?\s+\d|\s+(?:This|THIS|The|Dated|DATED|Source|Effective|EFFECTIVE|WHEREAS|Whereas|TABLE|Table|Page|"
    r"Address|Attention|Tel|Fax|Phone|Suite|Street|Ave(?:nue)?|Road|Boulevard|P\.?O\.?|And|Legal|"
    r"(?i:January|February|March|April|May|June|July|August|September|October|November|December))\b|\s*:")
_SEP_AND = re.compile(r"\s*(?:;\s*(?:(?i:and)\s*:?\s+)?|,?\s+(?i:and)\s*:?\s+|\s+-\s*(?i:and)\s*-\s+|\n\s*&\s*\n\s*|,\s+)")
_BLANK = re.compile(r"_{3,}|\[\s*[•·*.\s]*\]|^\[[^\]]{0,60}\]$|^[•·*_.\s\[\]()]*[•·*_\[][•·*_.\s\[\]()]*$|"
                    r"^\[?\s*(?:enter|insert|name\s+of)\b", re.IGNORECASE)
_SIGN_BLOCK = re.compile(r"IN\s+WITNESS\s+WHEREOF|SIGNATURE\s+PAGE|AGREED\s+AND\s+ACCEPTED|ACCEPTED\s+AND\s+AGREED",
                         re.IGNORECASE)
_SIGN_LINE = re.compile(r"^\s*(?:By|Signature|Signed)\s*[:_]", re.IGNORECASE)
_NOT_SIGNER = re.compile(r"^\s*(?:Name|Title|Date|Its|Address|Attention|Attn|Witness|Print|Signature|By)\b", re.IGNORECASE)


@dataclass
class Parties:
    """Two roles and the terms that name each, what the clause labellers match text against."""

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


@dataclass(frozen=True)
class Party:
    """One party. `name` is "" when the contract never names it (only "the above-named Supplier");
    `blank` when a template blank or redaction stands where the name goes (`name` keeps it as written)."""

    name: str
    aliases: tuple[str, ...] = ()  # defined terms and short forms the contract uses for it
    blank: bool = False
    found_in: tuple[str, ...] = ()  # "opening", "hints", "signature", "terms_of_service"; "not_found" for a role
    # the text never names (a contract's second side the extractor could not find)

    @property
    def named(self) -> bool:
        return bool(self.name) and not self.blank

    def display(self) -> str:
        """How the party reads in a record's input: its name, or what stands in its place, said plainly."""
        called = f" (called {', '.join(repr(a) for a in self.aliases[:2])})" if self.aliases else ""
        if self.blank:
            return f"{self.name} [blank in the contract]{called}"
        if "not_found" in self.found_in:
            return "[not identified]"
        return self.name or f"[not named in the contract]{called}"

    def terms(self) -> list[str]:
        return [t for t in (((self.name,) if self.named else ()) + self.aliases) if t]

    def as_dict(self) -> dict:
        return {"name": self.name, "aliases": list(self.aliases), "blank": self.blank, "found_in": list(self.found_in)}


@dataclass(frozen=True)
class PartyList:
    """A contract's parties in role order: first_party, second_party, then any further party."""

    parties: tuple[Party, ...] = ()
    kind: str = "contract"  # "contract" | "terms_of_service"

    def role_of(self, index: int) -> str:
        return ROLES[index] if index < len(ROLES) else f"party_{index + 1}"

    def names(self) -> dict[str, str]:
        """Role -> name, the two roles only (what a record's `party_names` holds); a party the contract
        leaves blank or unnamed reads as such, so the reader sees the contract left it open."""
        return {role: p.display() for role, p in zip(ROLES, self.parties)}

    def aliases(self) -> dict[str, list[str]]:
        """Role -> aliases; parties after the second are the second party's side (their names count as
        its aliases, as data/guidelines.md groups them)."""
        out = {role: list(p.aliases) for role, p in zip(ROLES, self.parties)}
        for p in self.parties[2:]:
            out["second_party"] += [t for t in p.terms() if t not in out["second_party"]]
        return out

    def roles(self) -> Parties:
        named = [p.name if p.named else "" for p in self.parties[:2]] + ["", ""]
        aliases = self.aliases()
        return Parties(first_party=named[0], second_party=named[1],
                       aliases={role: list(aliases.get(role, [])) for role in ROLES})

    def as_dict(self) -> dict:
        return {"kind": self.kind,
                "parties": [{"role": self.role_of(i), **p.as_dict()} for i, p in enumerate(self.parties)]}


# -- names --------------------------------------------------------------------------------------------
def clean_name(raw: str) -> str:
    """Layout whitespace, stray quotes and apostrophes, trailing commas and unbalanced brackets out."""
    s = " ".join(raw.replace("\xad", "").replace("<<", " ").replace(">>", " ").split())
    s = re.sub(r"(?<![\w.])['‘’`´](?!\w)|(?<=\s)['‘’`´]|['‘’`´](?=\s|$)(?<!s')", "", s)
    s = s.strip(_QUOTE + " ,;:")
    s = re.sub(r"[\"“”]", "", s)
    if s.count("(") > s.count(")"):
        s = s[: s.rfind("(")].rstrip(" ,") or s.replace("(", "")
    if s.count(")") > s.count("("):
        s = s.replace(")", "")
    return s.strip(" ,;:")


def is_blank(name: str) -> bool:
    """A template blank or redaction standing where a name goes: "[•]", "______", "[Name of Licensee]", "[***]"."""
    return bool(_BLANK.search(name.strip()))


def _key(name: str) -> str:
    """What two spellings of one name share: lower case, no punctuation, no "the", no legal form."""
    s = _ORG.sub(" ", name.lower().replace("&", " and "))
    words = [w for w in re.findall(r"[a-z0-9\u4e00-\u9fff]+", s) if w not in ("the", "a")]
    return " ".join(words)


def _has_legal_form(name: str) -> bool:
    return bool(_ORG.search(name))


def same_party(a: str, b: str) -> bool:
    """One party under two spellings: the same words once case, punctuation and legal form are set
    aside ("WATER NOW, INC." / "Water Now"), or a short form that starts the full name ("Rise" /
    "Rise Inc."). Two full names with legal forms must match whole ("THE HERTZ CORPORATION" is not
    "HERTZ SYSTEM, INC.")."""
    ka, kb = _key(a), _key(b)
    if not ka or not kb:
        return False
    if ka == kb or ka.replace(" ", "") == kb.replace(" ", ""):
        return True
    short, long_ = (a, b) if len(ka) < len(kb) else (b, a)
    ks, kl = _key(short), _key(long_)
    if kl.endswith(" " + ks) and len(ks.split()) >= 2 and _has_legal_form(short) and _has_legal_form(long_):
        return True  # a name cut at the front ("System Associates, Inc." / "Information System Associates, Inc.")
    if _has_legal_form(short) or not kl.startswith(ks + " "):
        return False
    return len(ks) >= 3 and ks not in _GENERIC


_GENERIC = {"company", "licensee", "licensor", "customer", "supplier", "client", "party", "buyer", "seller",
            "distributor", "agent", "bank", "owner", "the company", "provider", "contractor", "consultant"}


def _is_alias_like(term: str) -> bool:
    """A defined role word ("Licensee", "the Company", "Distributor", "you") rather than a name."""
    t = term.strip()
    the_role = (t.lower().startswith("the ") and not _has_legal_form(t) and len(t.split()) <= 3) or bool(
        re.fullmatch(r"Party\s+[A-C]|[甲乙丙]方", t))
    return (t.lower() in _PRONOUNS or t.lower() in _GENERIC or the_role or not _key(t)
            or bool(re.match(r"[a-z]{3,}\s", t))
            or (len(t.split()) == 1 and not _has_legal_form(t) and not re.search(r"\d", t)))


def _name_head(unit: str) -> str:
    """The name a unit of the opening starts with: "Acme Corp., a Delaware corporation (...)" -> "Acme Corp."."""
    unit = re.split(r"\n[ \t]*\n", unit.lstrip())[0]  # a name never crosses a paragraph break
    unit = re.sub(r"^[\s,;:\-–—(]*(?:\(?[0-9ivx]{1,3}[.)]\s+)?", "", unit)
    unit = re.sub(r"^(?:the\s+undersigned\s*,?\s*|and\s+|[●•·*-]\s*)", "", unit, flags=re.IGNORECASE)
    unit = re.sub(r"^the\s+(?=[A-Z])", "", unit)  # "the At Home Corporation": the article is not the name
    m = _NAME_HEAD.match(unit)
    if not m:
        return ""
    head = m.group(0)
    stop = _NAME_STOP.search(head)
    if stop:
        head = head[: stop.start()]
    head = re.sub(r"(?:\s+(?:of|and|de|du|des|la|le|the|for|und|y|&))+$", "", head.rstrip(" ,"))
    last = None
    for last in _SUFFIX.finditer(head):
        pass
    if last is not None and last.start() > 0:
        rest = head[last.end() :].strip(" ,")
        if (rest and re.fullmatch(r"[A-Z][\w.\-ßäöüé]*(?:\s+[A-Z][\w.\-ßäöüé]*){0,2}", rest) and not _SUFFIX.search(rest)
                and re.match(r"[A-Za-zßäöüé]{3}", rest)):
            head = head[: last.end()]  # "Boehringer Ingelheim International GmbH Binger Straße": the address
    return clean_name(head)


def _definitions(segment: str) -> list[str]:
    """The party aliases a stretch of the opening defines: quoted terms in brackets after a name
    ("(the "Licensor")", "(hereinafter "Acme" or "Vendor")"), Chinese-style "(hereinafter referred
    to as Party A)"; collective terms ("Parties") and defined things ("Effective Date") left out."""
    out: list[str] = []
    for paren in re.finditer(r"[(（]([^()（）]{0,200})[)）]", segment):
        # only the first bracket that defines something, and only up to a group term in it
        # ("("Licensing" and together with Seller, "Arizona")" defines "Licensing" for this party)
        inside = paren.group(1)
        first = _DEFINITION.search(inside)
        if first:  # a group term after the alias ("("Licensing" and together with Seller, "Arizona")") is not it
            inside = inside[: first.end()] + re.split(r"\b(?:together|collectively|each|individually|jointly)\b",
                                                      inside[first.end() :])[0]
        terms = [clean_name(m.group(1)) for m in _DEFINITION.finditer(inside)]
        terms = [t for t in terms if t and not _COLLECTIVE.fullmatch(t) and not _NOT_A_PARTY.search(t)]
        if terms:
            out += terms
            break
    for m in _UNQUOTED_DEF.finditer(segment):
        out.append(clean_name(m.group(1)))
    return list(dict.fromkeys(out))


# -- the opening ----------------------------------------------------------------------------------
@dataclass
class _Found:
    name: str
    aliases: list[str]
    pos: int
    source: str
    blank: bool = False


def _opening_window(text: str, limit: int = 12000) -> tuple[int, int] | None:
    """Where the parties are introduced: after the first "between / among / by and between" that is
    followed by a name, up to the recitals or the first numbered clause."""
    head = text[:limit]
    letter = _LETTER.search(head)
    anchors = list(_ANCHOR.finditer(head))
    # a title ("AGREEMENT BETWEEN X AND Y") gives way to the sentence that defines the parties
    defining = [m for m in anchors
                if re.search(r"\([^()]{0,80}[\"“]", re.split(r"\n[ \t]*\n", head[m.end() : m.end() + 400])[0])]
    if defining:
        anchors = defining + [m for m in anchors if m not in defining]
    for m in anchors:
        if letter and m.start() > letter.end() + 600:
            return None  # a letter agreement: its parties are the signer and the addressee
        after = head[m.end() : m.end() + 400]
        lead = re.match(r"\s*(?:the\s+following\s+(?:\w+\s+)?parties[^:]{0,80}:)?[\s●•·*-]*", after)
        if not re.match(r"(?:\(?[0-9ivx]{1,3}[.)]\s+)?(?:the\s+undersigned|[\"“]?[A-Z0-9\[_]|[a-z]{1,2}[A-Z.]|"
                        r"the\s+[a-z\-]+\s+[A-Z]|the\s+[A-Z]\w*\s[^()\n]{0,60}?(?i:" + _ORG.pattern + r")|an?\s+\[)",
                        after[lead.end() :], re.IGNORECASE if False else 0):
            continue
        if re.search(r"\.{4,}|\s\d{1,3}\s*$", head[max(0, m.start() - 80) : m.start()]):  # a table of contents line
            continue
        end = _PREAMBLE_END.search(head, m.end() + lead.end() + 20)
        stop = min(end.start() if end else len(head), m.end() + lead.end() + 2500)
        return m.end() + lead.end(), stop
    return None


_ABBREVIATION = re.compile(r"(?:inc|co|corp|ltd|no|st|mr|ms|mrs|dr|jr|sr|n\.a|s\.a|l\.p|b\.v|n\.v|u\.s|s\.p\.a|[a-z])$",
                           re.IGNORECASE)


def _sentence_end(text: str, start: int) -> int:
    """Where the sentence that introduces the parties ends (a period that does not close "Inc." or "N.A.")."""
    for m in re.finditer(r"\.(?:\s+(?=[A-Z\"“])|\s*\n\s*\n)", text[start:]):
        word = re.search(r"[\w.]*$", text[start : start + m.start()]).group(0)
        if not _ABBREVIATION.search(word):
            return start + m.start() + 1
    return len(text)


def _units(text: str, start: int, end: int) -> list[tuple[int, str]]:
    """Split the opening into one stretch per party at top-level "and" / ";" (never inside brackets)."""
    seg = text[start:end]
    depth, cuts, i = 0, [], 0
    while i < len(seg):
        c = seg[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif depth == 0:
            m = _SEP_AND.match(seg, i)
            if m and m.end() > i:
                before = seg[:i].rstrip()
                after = seg[m.end() : m.end() + 80]
                sep = m.group(0)
                # "Savings and Loan Association": an "and" inside a name does not end a party
                unit_so_far = seg[cuts[-1][1] if cuts else 0 : i]
                ends_party = (";" in sep or before.endswith((")", ",", "]")) or "," in sep or "-" in sep
                              or before[-1:].isdigit() or bool(_DEFINITION.search(unit_so_far))
                              or bool(re.search(r"(?:" + _ORG.pattern + r")\s*$", before, re.IGNORECASE)))
                starts_name = bool(re.match(r"[\s●•·*-]*(?:an?\s+(?=\[))?(?:\(?[0-9a-z]{1,3}[.)]\s+)?"
                                            r"(?:the\s+(?:(?:above|below|undersigned)[- ]named\s+)?)?"
                                            r"[\"“]?(?:[A-Z0-9\[_]|[a-z]{1,2}[A-Z.]|[a-z]-[a-z])", after))
                if sep.strip() == ",":
                    # "(...), JAMES W. NANTZ III ("Nantz")", "... corporation, Hyde Park Bancorp, MHC (the "MHC")":
                    # a bare comma ends a party that has defined its alias, before another defined party
                    ends_party = bool(_DEFINITION.search(unit_so_far)) and (before.endswith(")") or bool(
                        re.search(r"(?:" + _ORG.pattern + r")\s*$", before, re.IGNORECASE)))
                    starts_name = (starts_name and bool(re.match(r"[^()]{2,120}\([^()]*[\"“]",
                                                                 after + seg[m.end() + 80 : m.end() + 200]))
                                   and not re.match(r"\s*(?:\d|(?:" + _ORG.pattern + r")(?:[\s,(]|$))", after,
                                                    re.IGNORECASE))
                if ends_party and starts_name:
                    cuts.append((i, m.end()))
                    i = m.end()
                    continue
        i += 1
    if not cuts:  # "between Galacticomm and Horst Entertainment Inc.": no punctuation, split at the first "and"
        m = re.search(r"\s+(?:and|AND|And)\s+(?=[A-Z\"“]|[a-z]{1,2}[A-Z])", seg)
        if m and "(" not in seg[: m.start()]:
            cuts.append((m.start(), m.end()))
    bounds, pos = [], 0
    for a, b in cuts:
        bounds.append((pos, a))
        pos = b
    bounds.append((pos, len(seg)))
    return [(start + a, seg[a:b]) for a, b in bounds if seg[a:b].strip()]


def _from_opening(text: str) -> list[_Found]:
    ab = _party_a_b(text)
    if ab:
        return ab
    window = _opening_window(text)
    found: list[_Found] = []
    if window:
        # the parties are introduced in one sentence; later sentences count only while fewer than two are found
        # (a layout with one paragraph per party ends each with a period)
        sentence_end = _sentence_end(text, window[0])
        for i, (pos, unit) in enumerate(_units(text, *window)):
            if pos >= sentence_end and len(found) >= 2:
                break
            found.extend(f for f in _unit_party(unit, pos) if _party_like(f, i))
    if len([f for f in found if f.name]) < 2:
        letter = _from_letter(text)
        if len([f for f in letter if f.name]) > len([f for f in found if f.name]):
            found = letter
    return _merge_found([f for f in found if f.name or f.aliases])


def _party_like(f: _Found, index: int) -> bool:
    """A unit of the opening introduces a party when it defines an alias, names a legal entity, is a
    template blank, or (one of the first two) reads as a proper name; table-of-contents lines,
    addresses and dates do not."""
    if f.blank or f.aliases:
        return True
    if not f.name or len(f.name.split()) > 10 or re.search(r"\d{3,}|\.{3,}", f.name):
        return False
    if re.match(r"[\w&.-]+\s+(?:and|&)\s", f.name) and _is_alias_like(f.name.split()[0]):
        return False  # "Vendor and AT&T Corp.", "Tadeo and Diplomat": a later mention, not an introduction
    if re.search(r"(?:" + _ORG.pattern + r")\s+&\s+(?!Co\b)[A-Z]", f.name, re.IGNORECASE):
        return False  # "ANTHEMIC, LLC & VNUE": a title naming both sides
    if _has_legal_form(f.name):
        return True
    return index < 2 and len(f.name.split()) >= 2 and not _is_alias_like(f.name)


def _unit_party(unit: str, pos: int) -> list[_Found]:
    if re.match(r"\s*(?:each|any|all|its|their|such)\b", unit, re.IGNORECASE):
        return []
    unit = re.sub(r"^\s*\(?(?:[0-9]{1,2}|[a-h]|[ivx]{1,4})[.)]\s+", "", unit)  # "(1) [-1] whose registered office"
    aliases = [a.rstrip(".") if not _has_legal_form(a) else a for a in _definitions(unit)]
    ref = re.match(r"\s*the\s+(?:(?:above|below|undersigned)[- ]named\s+|)([A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)?)"
                   r"(?:\s+(?:named|identified|listed|specified|set\s+forth|indicated)\b|(?=[\s,]))", unit)
    if ref and re.match(r"\s*the\s+(?:above|below|undersigned)|.*\b(?:named|identified|listed|specified)\b", unit[:120]):
        return [_Found("", [ref.group(1), *[a for a in aliases if a != ref.group(1)]], pos, "opening")]
    # "the individual or legal entity identified on the cover page ("you")": a party the opening only describes
    if aliases and re.match(r"\s*(?:the|each|any)\s+(?:individual|person|persons|entity|entities|party|parties|company|"
                            r"franchisee|licensee|business)\b[^()]{0,100}?\b(?:identified|named|listed|specified|set\s+"
                            r"forth|described|signing)\b", unit, re.IGNORECASE):
        return [_Found("", aliases, pos, "opening")]
    head = _name_head(unit)
    # "[•], a [•] corporation", "[-1] whose office", "a [resident of] [corporation organized in] ..."
    blank = re.match(r"[\s●•·*-]*(?:an?\s+)?(\[[^\]]{0,40}\]|_{3,}|[•·]+)", unit)
    if blank and is_blank(blank.group(1)):
        return [_Found(blank.group(1), aliases, pos, "opening", blank=True)]
    if head and _is_alias_like(head) and aliases:
        aliases = [head, *aliases]
        head = ""
    elif head and not aliases and _is_alias_like(head):
        return [_Found("", [head.rstrip(".")], pos, "opening")]
    if not head and not aliases:
        return []
    return [_Found(head, [a for a in aliases if a != head], pos, "opening")]


def _party_a_b(text: str) -> list[_Found]:
    ab: dict[str, _Found] = {}
    for m in _PARTY_AB.finditer(text[:6000]):
        role = "A" if (m.group(1) == "A" or m.group(2) == "甲") else "B"
        name = clean_name(re.split(r",\s+(?:a|an|the|with|having|located)\s|，|\s+Legal\s+Representative", m.group(3))[0])
        if re.match(r"(?:name|address|legal\s+representative|signature)\b", name, re.IGNORECASE):
            continue  # a form's field label, not the party
        if name and role not in ab:
            terms = ["Party A", "甲方"] if role == "A" else ["Party B", "乙方"]
            ab[role] = _Found(name, [t for t in terms if t in text], m.start(), "opening")  # the ones it uses
    return [ab["A"], ab["B"]] if len(ab) == 2 else []


_LETTER_WITH = re.compile(r"\b(?:hereby\s+)?(?:confirms?|agrees?|sets?\s+forth)\s+(?:its|their|the\s+terms\s+of\s+(?:its|their)"
                          r"|the)\s+(?:agreement|engagement|understanding)\s+with\s+", re.IGNORECASE)


def _from_letter(text: str) -> list[_Found]:
    """A letter agreement: the signers the first paragraph after the salutation introduces ("X (the
    "Company") and Y (the "Bank") hereby confirm their agreement with Z (the "Agent")"), then the
    addressee, named there or above the salutation."""
    m = _LETTER.search(text[:12000])
    if not m:
        return []
    start = m.end()
    end = start + min(1500, len(re.split(r"\n[ \t]*\n", text[start : start + 1500].lstrip())[0])
                      + len(text[start : start + 1500]) - len(text[start : start + 1500].lstrip()))
    found: list[_Found] = []
    with_ = _LETTER_WITH.search(text, start, end)
    for i, (pos, unit) in enumerate(_units(text, start, with_.start() if with_ else end)):
        found.extend(f for f in _unit_party(unit, pos) if (f.aliases or _has_legal_form(f.name)) and _party_like(f, i))
    if with_:
        found.extend(f for f in _unit_party(text[with_.end() : end], with_.end()) if f.name or f.aliases)
    if not with_:
        lines = [ln.strip() for ln in text[max(0, m.start() - 600) : m.start()].split("\n") if ln.strip()]
        for ln in lines:
            head = _name_head(ln)
            if head and _has_legal_form(head) and not any(same_party(head, f.name) for f in found if f.name):
                found.append(_Found(head, [], m.start(), "opening"))
                break
    return found


def _merge_found(found: list[_Found]) -> list[_Found]:
    out: list[_Found] = []
    for f in found:
        twin = next((o for o in out if f.name and o.name and same_party(f.name, o.name)), None)
        if twin:
            twin.aliases += [a for a in f.aliases if a not in twin.aliases]
        else:
            out.append(f)
    return out


# -- hints and signatures --------------------------------------------------------------------------------
def _hint_terms(hints: list[str]) -> tuple[list[str], list[str]]:
    """Split hint spans into names and alias definitions; descriptive spans ("on behalf of itself and
    ... (each an "X")") give only their quoted terms."""
    names, aliases = [], []
    for raw in hints:
        # "Party A (Shipper): ZTO Express Co., Ltd.", "WATER NOW: WATER NOW, INC.": a label, then the name
        raw = re.sub(r"^\s*(?:(?:Party\s+[A-C]|[甲乙丙]方)\s*(?:\([^)]{0,30}\))?|[A-Z][A-Z .&'-]{1,40})\s*[:：]\s*(?=\S)", "",
                     raw)
        definition = re.search(r"\(\s*(?:the\s+)?[\"“]", raw)
        if definition and definition.start() > 2:  # 'e-centives, Inc., ("Application Provider" or "e-centives")'
            aliases += [q for q in (clean_name(x) for x in _DEFINITION.findall(raw[definition.start() :]))
                        if q and not _COLLECTIVE.fullmatch(q) and not _NOT_A_PARTY.search(q)]
            raw = raw[: definition.start()]
        quoted = [clean_name(q) for q in _DEFINITION.findall(raw)]
        text = clean_name(raw)
        descriptive = len(raw) > 80 or re.search(r"\b(?:on behalf|each|if you|which shall|referred|collectively|"
                                                  r"together|shall|means|hereinafter|by reference)\b", raw,
                                                  re.IGNORECASE) or re.match(
            r"\s*(?:a|an|of|on|doing|formerly|f/k/a|a\.k\.a\.|d/b/a|dba|acting|through|with)\b", raw, re.IGNORECASE)
        if quoted and (raw.strip()[0] in _QUOTE or text.lower().startswith("the ")) and not re.search(
                r"\b(?:each|collectively|together|individually)\b", raw, re.IGNORECASE):
            aliases += [q for q in quoted if q and not _COLLECTIVE.fullmatch(q) and not _NOT_A_PARTY.search(q)]
            continue
        if descriptive or not text or _COLLECTIVE.fullmatch(text):
            continue
        (aliases if _is_alias_like(text) else names).append(text)
    return list(dict.fromkeys(names)), list(dict.fromkeys(aliases))


def _defined_in(text: str, term: str) -> int:
    """Where the text defines `term` as a quoted term ("(the "Licensor")"), or -1."""
    m = re.search(r"[(\[][^()\[\]]{0,60}[\"“]\s*" + re.escape(term) + r"\s*,?[\"”]", text)
    return m.start() if m else -1


def _find(text: str, name: str) -> int:
    """First mention of a name, tolerating layout whitespace and case ("ACME CORP." on a cover)."""
    words = name.split()
    if not words:
        return -1
    m = re.search(r"\s+".join(re.escape(w) for w in words), text, re.IGNORECASE)
    return m.start() if m else -1


def signature_names(text: str) -> list[str]:
    """Names above the "By:" lines of the signature blocks after "IN WITNESS WHEREOF"."""
    m = None
    for m in _SIGN_BLOCK.finditer(text):
        pass
    if m is None:
        return []
    lines = text[m.end() : m.end() + 4000].split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        if not _SIGN_LINE.match(line):
            continue
        for back in range(i - 1, max(-1, i - 4), -1):
            cand = clean_name(lines[back].split("  ")[0])
            if not cand or _NOT_SIGNER.match(cand) or not re.search(r"[A-Za-z]{2}", cand) or len(cand) > 100:
                continue
            cand = re.sub(r"^(?:For\s+and\s+on\s+behalf\s+of|On\s+behalf\s+of|For)\s+", "", cand, flags=re.I)
            if cand.endswith((":", ".")) and not _has_legal_form(cand):
                cand = cand.rstrip(":.")
            if re.search(r"\b(?:whereof|executed|hereto|duly|authorized|agreement)\b", cand, re.IGNORECASE):
                break
            if cand not in out:
                out.append(cand)
            break
    return out


def contract_parties(text: str, hints: list[str] | None = None) -> PartyList:
    """The canonical party list of a contract (see the module docstring for the sources)."""
    found = _from_opening(text)
    hint_names, hint_aliases = _hint_terms(list(hints or []))
    sources: dict[int, list[str]] = {id(f): ["opening"] for f in found}

    # hints: complete names the opening truncated, fill parties the opening only refers to
    unplaced = []
    for h in hint_names:
        twin = next((f for f in found if f.name and same_party(f.name, h)), None)
        if twin is None:
            twin = next((f for f in found if not f.name and any(same_party(a, h) for a in f.aliases)), None)
        if twin is not None:
            _take_better_name(twin, h)
            sources[id(twin)].append("hints")
            continue
        if any(same_party(h, a) for f in found for a in f.aliases):
            continue  # the hint is a short form the opening already defines ("Capital Resources")
        unplaced.append(h)
    if not found:  # no opening: the hints, in order of first mention
        located = sorted((p, h) for h in unplaced if (p := _find(text, h)) >= 0)
        for pos, h in located:
            if not any(same_party(h, f.name) for f in found):
                found.append(_Found(h, [], pos, "hints"))
                sources[id(found[-1])] = ["hints"]
        unplaced = [h for h in unplaced if not any(same_party(h, f.name) for f in found)]
    for f in found:  # an opening unit that names only an alias ("the above-named Supplier")
        if not f.name and unplaced:
            f.name = unplaced.pop(0)
            sources[id(f)].append("hints")
    # a hint party the opening does not introduce at all goes after the others, when the opening found
    # fewer than two or the party signs (a regulator the opening merely mentions is no party)
    signers = signature_names(text)
    few = len([f for f in found if f.name]) < 2
    for h in unplaced:
        if not any(same_party(h, f.name) for f in found) and _find(text, h) >= 0 and (
                few or any(same_party(h, s) for s in signers)):
            found.append(_Found(h, [], len(text), "hints"))
            sources[id(found[-1])] = ["hints"]

    # aliases the hints mark: to the party named just before their definition; when nobody is and the
    # contract's other side is still missing, they name that side ("you", "Franchisee" of a template)
    orphans = []
    for a in hint_aliases:
        if any(a == x or a in f.aliases for f in found for x in [f.name]):
            continue
        owner = _alias_owner(text, a, found)
        if owner is not None:
            owner.aliases.append(a)
        else:
            orphans.append(a)
    first_person = [a for a in orphans if a.lower() in ("we", "us", "our")]
    if first_person and found:  # "we" is the drafting party, the first named
        found[0].aliases += first_person
    orphans = [a for a in orphans if a not in first_person and len(a.split()) <= 4]
    if orphans and len(found) < 2:
        blanks = [a for a in orphans if is_blank(a)]  # "________", "[enter Company Name]": the template's blank
        found.append(_Found(blanks[0] if blanks else "", [a for a in orphans if a not in blanks], len(text), "hints",
                            blank=bool(blanks)))
        sources[id(found[-1])] = ["hints"]

    # signatures: full legal names for truncated ones, parties when fewer than two were found
    for s in signers:
        s = re.sub(r"^[A-Z][A-Z .&'-]{1,40}\s*[:：]\s*(?=\S)", "", s)  # "HYDRASPIN: HYDRASPIN USA, INC."
        twin = next((f for f in found if f.name and same_party(f.name, s)), None) or next(
            (f for f in found if not f.name and _has_legal_form(s) and any(same_party(a, s) for a in f.aliases)), None)
        if twin is not None:
            if _take_better_name(twin, s, trusted=False):
                sources[id(twin)].append("signature")
        elif len([f for f in found if f.name]) < 2 and _has_legal_form(s):
            found.append(_Found(s, [], len(text) + 1, "signature"))
            sources[id(found[-1])] = ["signature"]

    parties = []
    for i, f in enumerate(found):
        if not f.name and not (f.aliases and i < 2):
            continue  # an alias-only stretch after the first two is a thing the opening defines, not a party
        name = f.name
        blank = f.blank or (bool(name) and is_blank(name))
        aliases = [a for a in dict.fromkeys(f.aliases) if a and a.lower() != name.lower()]
        parties.append(Party(name, tuple(aliases), blank, tuple(dict.fromkeys(sources.get(id(f), [f.source])))))
    while len(parties) < 2:  # a contract has two sides even when the text does not say who the other is
        parties.append(Party("", (), False, ("not_found",)))
    return PartyList(tuple(_dedupe_aliases(parties)))


def _ends_in_legal_form(name: str) -> bool:
    return bool(re.search(r"(?:" + _ORG.pattern + r")\s*\)?$", name, re.IGNORECASE))


def _take_better_name(f: _Found, other: str, trusted: bool = True) -> bool:
    """Keep the better spelling of one name: the one that ends in its legal form ("Rise Inc." over
    "Rise", "VALEANT ... LLC" over "VALEANT ... LLC September"), then a trusted source's (a hint is
    read by a person), then the longer. The other becomes an alias when it is a short form. Returns
    whether the name changed."""
    if f.blank or other == f.name:
        return False
    if not f.name:
        f.name = other
        return True
    # a truncation is fixed by a name that ends in the legal form the current one lacks; a trusted
    # source (a person's marks) also restores a name cut at the front; nothing else replaces the opening's
    better = (_ends_in_legal_form(other) and not _ends_in_legal_form(f.name)) or (
        trusted and _ends_in_legal_form(other) == _ends_in_legal_form(f.name)
        and _key(other).endswith(" " + _key(f.name)))
    if better:
        if _short_form(f.name, other) and f.name not in f.aliases:
            f.aliases.insert(0, f.name)
        f.name = other
        return True
    if trusted and _short_form(other, f.name) and other not in f.aliases:
        f.aliases.append(other)
    return False


def _short_form(short: str, full: str) -> bool:
    """`short` is how the contract shortens `full` ("Rise" for "Rise Inc.", "Water Now" for "WATER NOW, INC.")."""
    ks, kf = _key(short), _key(full)
    return bool(ks) and ks != kf and (kf.startswith(ks + " ") or kf.endswith(" " + ks))


def _alias_owner(text: str, alias: str, found: list[_Found]) -> _Found | None:
    pos = _defined_in(text, alias)
    if pos < 0:
        return None
    best = None
    for f in found:
        for term in [f.name, *f.aliases]:
            tokens = re.findall(r"\w+", term or "")
            if not tokens:
                continue
            # punctuation and layout may differ ("MEDICA S.p.A." for "MEDICA, S.p.A.")
            for m in re.finditer(r"\b" + r"\W*".join(re.escape(w) for w in tokens) + r"\b", text[:pos], re.IGNORECASE):
                if best is None or m.end() > best[0]:
                    best = (m.end(), f)
    if best is None or pos - best[0] > 150 or _DEFINITION.search(text, best[0], pos):
        return None  # too far, or another definition comes between: not this party's alias
    return best[1]


def _dedupe_aliases(parties: list[Party]) -> list[Party]:
    """An alias two parties claim is dropped from the later one: a term must name one party only."""
    seen: set[str] = set()
    out = []
    for p in parties:
        own = {p.name.lower()}
        keep = tuple(a for a in p.aliases if a.lower() not in seen and a.lower() not in own)
        seen |= {t.lower() for t in (p.name, *keep)}
        out.append(Party(p.name, keep, p.blank, p.found_in))
    return out


_SHORT_GENERIC = {"the", "a", "an", "company", "corporation", "inc", "llc", "ltd", "limited", "group", "international",
                  "global", "holdings", "party"}


def short_forms(name: str) -> list[str]:
    """How a contract usually shortens a name: its first word ("Acme" for "Acme Corp."), unless that word is
    generic ("The", "International") or too short to be safe."""
    first_word = re.split(r"[\s,]+", name.strip())[0].strip(".,") if name.strip() else ""
    if len(first_word) >= 4 and first_word.lower() not in _SHORT_GENERIC and first_word != name.strip():
        return [first_word]
    return []


def with_short_forms(names: dict[str, str], aliases: dict[str, list[str]] | None = None) -> Parties:
    """The roles of a clause known only by its party names (an app or API input), each name's short form
    added as an alias so "Beta shall ..." is found for "Beta Logistics LLC"."""
    aliases = aliases or {}
    return Parties(names.get("first_party", ""), names.get("second_party", ""),
                   {role: list(dict.fromkeys([*aliases.get(role, []), *short_forms(names.get(role, ""))]))
                    for role in ROLES})


def extract_parties(text: str) -> Parties:
    """The two roles of a contract with no labels of its own (the app, plain-text contracts)."""
    return contract_parties(text).roles()


def terms_of_service_list(company: str) -> PartyList:
    """The provider (first party) and the user (second party) of a Terms of Service."""
    name = company.replace("_", " ").replace("-", " ")
    return PartyList((
        Party(name, (name.lower(), "we", "us", "our", "the company", "the service provider"), False,
              ("terms_of_service",)),
        Party("the user", ("you", "your", "users", "user", "members", "member", "customer", "customers"), False,
              ("terms_of_service",)),
    ), kind="terms_of_service")


def terms_of_service(company: str) -> Parties:
    return terms_of_service_list(company).roles()
