"""What a passage of a contract is when it is not a clause: an address, a signature block,
bank details, a table of contents.

    block_kind("Acme Corp.\\n123 Main Street\\nNew York, NY 10001\\nAttention: General Counsel")  # "address"
    field_start(text, start, end)   # where a clause's lead-in ends and such a block glued to it begins

These passages carry no obligation of their own; labelled as clauses they dilute or
mislabel the clause they are glued to (a notice clause followed by three addresses reads
as an address list). A passage is one of these kinds when it holds at least two of the
kind's field cues and almost no clause language (shall, will, agree, hereby, ...).
"""

from __future__ import annotations

import re

CLAUSE = "clause"
ADDRESS = "address"
SIGNATURE = "signature"
PAYMENT = "payment_details"
CONTENTS = "contents"

# fields of a signature block; "signed by" or "authorised officer" alone also occur in clauses
_SIGNATURE_CUES = re.compile(
    r"\bBy\s*:|/s/|\bName\s*:|\bTitle\s*:|\bIts\s*:|\bSignature\s*[:_]|_{4,}|\bWitness(?:es)?\s*:|IN WITNESS WHEREOF|"
    r"\bCommon Seal\b|\bDate\s*:|\bPrint(?:ed)?\s+Name\b",
    re.IGNORECASE,
)
_SIGNATURE_WEAK = re.compile(
    r"Authori[sz]ed\s+(?:Signatory|Representative|Officer)|Signed\s+(?:for|by)|For and on behalf of", re.IGNORECASE)
_PAYMENT_CUES = re.compile(
    r"\bBank(?:\s+(?:Name|Code|Address|Account))?\s*:|\bAccount\s*(?:No\.?|Number|#|Name)\b|\bAcc(?:oun)?t\.?\s*#|"
    r"\bA/C\b|\bABA\b|\bRouting\b|\bSWIFT\b|\bBIC\b|\bIBAN\b|\bSort\s+Code\b|\bBeneficiary\b|\bBranch\s+Code\b|"
    r"\bBSB\b|\bWire\s+(?:Instructions|to)\b|\bPayee\s*:|\bFor\s+(?:further\s+)?credit\s+to\b",
    re.IGNORECASE,
)
_ADDRESS_CUES = re.compile(
    r"\b\d{1,6}\s+(?:[A-Z][\w.'-]*\s+){1,4}(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Drive|Dr\.?|"
    r"Lane|Ln\.?|Way|Place|Pl\.?|Parkway|Pkwy\.?|Court|Ct\.?|Square|Sq\.?|Highway|Hwy\.?|Plaza|Circle|Terrace|"
    r"Allée|Rue|Strasse|Straße)\b|"
    r"\b(?:Suite|Ste\.?|Floor|Fl\.?|Building|Bldg\.?|Unit|Room)\s+\w+|\bP\.?\s?O\.?\s+Box\b|"
    r"\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b|\b\d{5}(?:-\d{4})?\s*(?:USA|U\.S\.A\.)?$|\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b|"
    r"\b(?:Attention|Attn\.?)\s*:|\b(?:Facsimile|Fax|Telecopier|Telecopy|Telephone|Tel\.?|Phone|E-?mail)"
    r"(?:\s+(?:No\.?|Number))?\s*:|\bIf\s+to\b|\bwith\s+(?:a\s+)?cop(?:y|ies)\s+to\b|"
    r"\b(?:United States|U\.S\.A\.|USA|Canada|United Kingdom|England|France|Germany|China|Hong Kong|Japan|"
    r"Israel|Switzerland|Netherlands|Ireland|India|Singapore|Australia|Korea|Taiwan|Vanuatu|Malaysia)\b\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_TOC_LINE = re.compile(r"^.{3,110}?(?:\.{3,}|[ \t])[ \t]*(?:\d{1,3}|[ivx]{1,5})$")
# the end of an entry of a table of contents run into one line: "... Defined Terms 2 1.2 ..."
_TOC_ENTRY = re.compile(r"(?<=[A-Za-z.)\]])[ \t.]+(\d{1,3})(?=[ \t]+(?:\d{1,2}(?:\.\d{1,2})*\.?[ \t]|[A-Z])|[ \t]*$)")
_TOC_REFERENCE = re.compile(r"(?:section|article|clause|paragraph|exhibit|schedule|annex|days?|months?|years?|"
                            r"of|and|or|to|rule|no\.?|\$)[ \t.]*$", re.I)
_CLAUSE_WORDS = re.compile(
    r"\b(?:shall|will|agrees?|hereby|must|may|means|warrants?|represents?|undertakes?|covenants?|"
    r"terminat\w*|indemnif\w*|liab\w*|pursuant|provided that|notwithstanding)\b",
    re.IGNORECASE,
)
# the opening of a contract names the parties with their addresses; it is a clause
_PREAMBLE = re.compile(r"\bagreement\b.{0,200}\b(?:made|entered into|dated|between|by and among)\b|"
                       r"\bis made\b|\bentered into\b|^\W*between\b", re.IGNORECASE | re.DOTALL)
# '("Oaktree US")', '(the "Licensee")': a party being defined, not an address being given
_DEFINED_TERM = re.compile(r"\(\s*(?:each\s+|together\s+)?(?:a\s+|an\s+|the\s+)?[\"“'‘][A-Z]|"
                           r"\b(?:incorporated|organi[sz]ed|existing)\s+under\s+the\s+laws\b|\bhereinafter\b|"
                           r"\brepresented\s+(?:herein\s+)?by\b", re.IGNORECASE)


def _cues(pattern: re.Pattern, text: str) -> int:
    return len(pattern.findall(text))


def block_kind(text: str) -> str:
    """"address", "signature", "payment_details" or "clause" for one passage of a contract."""
    words = max(1, len(text.split()))
    clause_words = _cues(_CLAUSE_WORDS, text)
    sig = _cues(_SIGNATURE_CUES, text)
    if re.match(r"\s*IN WITNESS WHEREOF", text, re.IGNORECASE):
        return SIGNATURE
    if _PREAMBLE.search(text) or _DEFINED_TERM.search(text):
        return CLAUSE
    weak = _cues(_SIGNATURE_WEAK, text)
    if sig >= 1 and sig + weak >= 2 and words <= 30 * sig and \
            clause_words <= 1 + words // 60 and _starts_as_fields(text, _SIGNATURE_CUES):
        return SIGNATURE
    if weak >= 2 and words <= 8 * weak and not clause_words:  # "Signed for Acme ... Signed for Beta"
        return SIGNATURE
    prose = clause_words > 1 + words // 80
    pay = _cues(_PAYMENT_CUES, text)
    if pay >= 2 and not prose and _starts_as_fields(text, _PAYMENT_CUES):
        return PAYMENT
    addr = _cues(_ADDRESS_CUES, text)
    if addr >= 2 and not prose and words <= 25 * addr and _starts_as_fields(text, _ADDRESS_CUES):
        return ADDRESS
    return CLAUSE


def _starts_as_fields(text: str, cues: re.Pattern) -> bool:
    """No clause language before the first field: "sent to: Acme, 1 Main St" is a clause with an address."""
    first = cues.search(text)
    return first is not None and not _CLAUSE_WORDS.search(text[: first.start()])


def field_start(text: str, start: int, end: int) -> int | None:
    """Where a clause's lead-in ("... shall be sent to:") ends and an address, signature or
    bank-details block glued to it begins, or None. The lead-in stays a clause."""
    first_sig = _SIGNATURE_CUES.search(text, start, end)
    if first_sig is not None and block_kind(text[first_sig.start():end]) == SIGNATURE:
        # "... By signing this letter, you agree. ACME CORP. By: /s/ ...": the block follows the last sentence
        cut = max((m.end() for m in re.finditer(r"[.;:][\"”)]?\s+", text[start:first_sig.start()])), default=0)
        if cut and len(text[start:start + cut].split()) >= 10:
            return start + cut
    for m in re.finditer(r":[ \t]*(?=\S)|:\s*\n\s*", text[start:end]):
        cut = start + m.end()
        head, tail = text[start:cut], text[cut:end]
        if len(head.split()) < 5 or len(tail.split()) < 3:
            continue
        if block_kind(tail) != CLAUSE and block_kind(head) == CLAUSE and not _cues(_ADDRESS_CUES, head[:-1]):
            return cut
    return None


def is_contents(masked: str, s: int, e: int) -> bool:
    """A table of contents laid out one entry a line ("12.1 Term ........ 62")."""
    lines = [ln.strip() for ln in masked[s:e].splitlines() if ln.strip()]
    if len(lines) >= 3 and sum(bool(_TOC_LINE.match(ln)) for ln in lines) >= 0.7 * len(lines):
        return True
    return bool(re.fullmatch(r"\s*table of contents\s*", masked[s:e], re.I))


def inline_contents(masked: str, s: int, e: int) -> tuple[int, int] | None:
    """A table of contents run into one line: a chain of at least four entries whose page
    numbers never go down, starting at "TABLE OF CONTENTS" when the line says so."""
    chain: list[re.Match] = []
    best: list[re.Match] = []
    for m in _TOC_ENTRY.finditer(masked, s, e):
        if _TOC_REFERENCE.search(masked[max(s, m.start() - 12):m.start()]):
            continue
        if chain and (m.start() - chain[-1].end() > 160 or int(m.group(1)) < int(chain[-1].group(1))):
            best = max(best, chain, key=len)
            chain = []
        chain.append(m)
    best = max(best, chain, key=len)
    if len(best) < 4:
        return None
    title = re.compile(r"table\s+of\s+contents?\b|\bcontents\b", re.I).search(masked, s, best[0].start())
    return (title.start() if title else s), best[-1].end()
