"""The terms a lawyer quotes from a clause: amounts, durations, notice periods, caps,
percentages, "uncapped", and who acts or benefits -- each with its span in the clause.

    terms = extract("Supplier shall pay Buyer $50,000 per year for ten (10) years.")
    describe(terms)   # "obliges Supplier; in favour of Buyer; $50,000 per year; for ten (10) years"

Rule-based and conservative: a number is an amount only with a currency ("$", "USD",
"dollars", "€" ...), a duration only with a unit ("days", "months", "years" ...), so
section numbers ("Section 5.2"), dates ("January 5, 2021"), addresses ("123 Main
Street"), phone numbers and redactions ("[***]") never become amounts. Numbers written in
words ("ninety (90) days", "thirty days") are read. A party is one the sentence names as
the subject of a duty ("Supplier shall", "either party may not") or as the one a payment,
indemnity or right is for ("in favour of Buyer", "indemnify Licensor", "pay to Acme"), as
written; `parties` (names and aliases) widen what counts as a party name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

AMOUNT, DURATION, NOTICE, CAP, UNCAPPED, PERCENTAGE, ACTS, BENEFITS = (
    "amount", "duration", "notice", "cap", "uncapped", "percentage", "acts", "benefits")

_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
          "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a": 1, "an": 1}
_WORD_NUMBER = (r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[-\s](?:one|two|three|four|five|six|"
                r"seven|eight|nine))?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
                r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|one\s+hundred(?:\s+(?:and\s+)?\w+)?|"
                r"(?:one|two|three|four|five|six)\s+hundred)")
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# "ninety (90)", "90 (ninety)", "ninety", "90", "[***]"
_COUNT = (rf"(?:{_WORD_NUMBER}\s*\(\s*(?:{_NUM}|\[\*+\])\s*\)|"
          rf"(?:{_NUM})\s*\(\s*{_WORD_NUMBER}\s*\)|"
          rf"\[\*+\]\s*\(\s*\[\*+\]\s*\)|{_WORD_NUMBER}|{_NUM}|\[\*+\])")
_TIME_UNIT = (r"(?:business|calendar|working|banking)?\s*(?:days?|weeks?|months?|years?|quarters?|hours?)|"
              r"(?:contract|fiscal|calendar)\s+years?")
_DURATION = re.compile(rf"(?<![\w$€£.,])(?P<count>{_COUNT})[\s-]*(?P<unit>{_TIME_UNIT})\b(?P<apos>['’]s?)?", re.I)
_NOTICE_AFTER = re.compile(r"\s*(?:(?:prior|advance|previous)\s+)?(?:(?:written|formal|express)\s+)?"
                           r"(?:(?:prior|advance)\s+)?notice\b(?:\s+in\s+writing)?", re.I)
_NOTICE_BEFORE = re.compile(r"\bnotice\b[^.;]{0,60}?\b(?:at\s+least|not\s+less\s+than|no\s+(?:less|later)\s+than|"
                            r"a\s+minimum\s+of|within)\s*$", re.I)
_QUALIFIER = re.compile(r"\b(for(?:\s+a\s+(?:period|term)\s+of)?|within|after|before|at\s+least|not\s+less\s+than|"
                        r"no\s+later\s+than|no\s+more\s+than|up\s+to|of)\s*$", re.I)

_CURRENCY_CODE = r"(?:US\s?\$|USD|U\.S\.\s?\$|AUS?\s?\$|A\$|CAD|C\$|EUR|GBP|CHF|JPY|RMB|CNY|HK\$|S\$|INR|Rs\.?)"
_MULTIPLIER = r"(?:\s*(?:million|billion|thousand|mm|m|bn|k)\b)?"
_AMOUNT = re.compile(
    rf"(?:(?P<code>{_CURRENCY_CODE})\s?|(?P<sym>[$€£¥]))\s?(?P<num>{_NUM}){_MULTIPLIER}"
    rf"|(?P<num2>{_NUM}){_MULTIPLIER}\s*(?P<word>(?:U\.S\.\s+|US\s+|Canadian\s+|Australian\s+)?(?:dollars|euros?|pounds"
    rf"(?:\s+sterling)?|yen|francs|renminbi|yuan))\b|(?P<code2>{_CURRENCY_CODE})\s?(?P<num3>{_NUM}){_MULTIPLIER}",
    re.I,
)
# "Two Million Dollars (" before "$2,000,000)": the same amount in words
_WORDS_BEFORE_AMOUNT = re.compile(
    r"(?<![\w-])(?:(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
    r"million|billion|and|a)[\s,-]+)+(?:U\.?S\.?\s+)?(?:dollars|euros?|pounds)\s*\(\s*$", re.I)
_PERIOD = re.compile(r"\s*(?:(?:a|each|every)\s+(?:(?:calendar|contract|fiscal|full)\s+)?"
                     r"(?:year|month|quarter|week|day|hour|unit)\b|annually|monthly|quarterly|yearly|"
                     r"per\s+(?!cent\b)(?:(?:calendar|contract|fiscal|full)\s+)?[A-Za-z-]+)", re.I)
_PERCENT = re.compile(
    rf"(?:{_WORD_NUMBER}\s+(?:percent|per\s+cent)\s*\(\s*)?(?P<num>{_NUM})\s*(?:%|percent\b|per\s+cent\b)\)?", re.I)
_CAP = re.compile(
    r"\b(?:(?:shall|will|may|does|do|to)\s+not\s+exceed|not\s+to\s+exceed|(?:shall\s+|will\s+)?(?:be\s+)?limited\s+to|"
    r"capped\s+at|up\s+to\s+a\s+maximum\s+of|(?:shall|will)\s+in\s+no\s+event\s+exceed|in\s+no\s+event\s+(?:shall|will)"
    r"[^.;]{0,160}?\bexceed)\s+(?P<cap>[^;]{3,220}?)(?=\s*(?:[;]|\.(?:\s|$)|,\s*(?:except|provided|unless|and\s+in\s+no"
    r"|whichever|but)\b|$))",
    re.I,
)
_LIABILITY = re.compile(r"\b(?:liab\w*|damages?|indemnif\w*|claims?|losses)\b", re.I)
_UNCAPPED = re.compile(
    r"\b(?:unlimited|uncapped)\s+(?:liability|indemnit\w*|damages|amount)(?!\s+(?:company|companies|partnership))|"
    r"\bliability[^.;]{0,60}?\bshall\s+be\s+unlimited\b|"
    r"\bwithout\s+(?:any\s+)?(?:limit|limitation|cap)\b(?:\s+(?:as\s+to|on|of)\s+(?:the\s+)?amount)?|"
    r"\bno\s+(?:limit|limitation|cap)\s+(?:on|of|to)\s+(?:the\s+)?(?:amount|liability)\b|"
    r"\bthere\s+shall\s+be\s+no\s+limitation\b|"
    r"\b(?:limitations?|exclusions?|caps?)\b[^.;]{0,100}?\bshall\s+not\s+apply\s+to\b[^.;]{3,200}",
    re.I,
)
_ROLE_WORDS = (r"Buyer|Seller|Supplier|Vendor|Customer|Client|Purchaser|Licensor|Licensee|Sublicensee|Distributor|"
               r"Reseller|Manufacturer|Company|Contractor|Subcontractor|Consultant|Provider|Service\s+Provider|Agent|"
               r"Principal|Franchisor|Franchisee|Lessor|Lessee|Landlord|Tenant|Employer|Employee|Executive|Sponsor|"
               r"Developer|Publisher|Partner|Investor|Owner|Operator|Carrier|Shipper|Repairer|Member")
_ROLE = (rf"(?:(?i:each|either|neither|both|the\s+other|the|such)\s+(?:part(?:y|ies)|Part(?:y|ies))|(?i:the)\s+Parties|"
         rf"(?i:you|we)|(?:(?i:the)\s+)?(?:{_ROLE_WORDS})s?)")
# "liability to Company shall not exceed": Company is no subject after a preposition
_NOT_A_SUBJECT = {"to", "of", "by", "for", "with", "from", "than", "against", "upon", "on", "in", "under", "between",
                  "towards", "toward", "at", "s", "'s", "’s"}
_DUTY = (r"(?:shall|will|must|agrees?\s+(?:not\s+)?to|undertakes?\s+to|covenants?\s+(?:not\s+)?to|"
         r"is\s+required\s+to|may\s+not)")
_BENEFIT = (r"(?:in\s+favou?r\s+of|for\s+the\s+(?:sole\s+|exclusive\s+)?benefit\s+of|payable\s+to|paid\s+to|"
            r"(?:indemnify|defend)(?:,?\s+(?:defend|indemnify|and|hold\s+harmless|save\s+harmless))*|pay(?:\s+to)?)")


@dataclass(frozen=True)
class Term:
    kind: str  # amount | duration | notice | cap | uncapped | percentage | acts | benefits
    text: str  # as written
    start: int  # offsets into the clause
    end: int
    value: float | None = None  # the number: 50000.0, 60.0, 15.0
    unit: str | None = None  # "$", "USD", "days", "months", "%"
    period: str | None = None  # for an amount: "per year"; for a duration: "for", "within"; for a cap: "liability"


def number(text: str) -> float | None:
    """A count as written: "60", "1,500.50", "ninety", "ninety (90)", "twenty-one"; None if redacted."""
    digits = re.search(_NUM, text)
    if digits:
        return float(digits.group().replace(",", ""))
    words = re.findall(r"[a-z]+", text.lower())
    if not words or any(w not in _UNITS and w != "and" for w in words):
        return None
    total = 0
    for w in words:
        if w == "hundred":
            total = max(total, 1) * 100
        elif w != "and":
            total += _UNITS[w]
    return float(total)


def _scale(text: str, value: float) -> float:
    m = re.search(r"(million|billion|thousand|mm|bn|m|k)\b", text, re.I)
    if not m:
        return value
    factor = {"million": 1e6, "mm": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9, "thousand": 1e3, "k": 1e3}
    return value * factor[m.group(1).lower()]


def _amounts(text: str) -> list[Term]:
    out = []
    for m in _AMOUNT.finditer(text):
        start, end = m.span()
        num = m.group("num") or m.group("num2") or m.group("num3")
        unit = (m.group("code") or m.group("sym") or m.group("code2") or m.group("word") or "").strip()
        words = _WORDS_BEFORE_AMOUNT.search(text[max(0, start - 90):start])
        if words:  # "Fifty Thousand Dollars ($50,000)": one amount, written twice
            start = start - len(text[max(0, start - 90):start]) + words.start()
            close = re.match(r"\s*\)", text[end:])
            end += close.end() if close else 0
        period = _PERIOD.match(text, end)
        if period:
            end = period.end()
        out.append(Term(AMOUNT, text[start:end], start, end, _scale(m.group(), float(num.replace(",", ""))), unit,
                        " ".join(period.group().replace(")", "").split()) if period else None))
    return out


def _durations(text: str) -> list[Term]:
    out = []
    for m in _DURATION.finditer(text):
        unit = " ".join(m.group("unit").lower().split())
        start, end = m.span()
        notice = _NOTICE_AFTER.match(text, end)
        if notice:
            out.append(Term(NOTICE, text[start:notice.end()], start, notice.end(), number(m.group("count")), unit))
            continue
        before = text[max(0, start - 100):start]
        if _NOTICE_BEFORE.search(before):  # "written notice at least 90 days before": the period with its qualifier
            q = _QUALIFIER.search(before)
            start -= len(before) - q.start() if q else 0
            out.append(Term(NOTICE, text[start:end], start, end, number(m.group("count")), unit, "notice"))
            continue
        q = _QUALIFIER.search(before)
        qualifier = " ".join(q.group(1).lower().split()) if q else None
        if q and qualifier != "of":
            start -= len(before) - q.start()
        out.append(Term(DURATION, text[start:end], start, end, number(m.group("count")), unit, qualifier))
    return out


def _caps(text: str) -> list[Term]:
    out = []
    for m in _CAP.finditer(text):
        sentence_start = max(text.rfind(". ", 0, m.start()), text.rfind(";", 0, m.start())) + 1
        about = "liability" if _LIABILITY.search(text[sentence_start:m.end()]) else None
        out.append(Term(CAP, m.group("cap").strip(), m.start("cap"), m.start("cap") + len(m.group("cap").strip()),
                        period=about))
    return out


def _parties(text: str, parties: Sequence[str]) -> list[Term]:
    names = sorted({re.escape(p.strip()) for p in parties if p and p.strip()}, key=len, reverse=True)
    who = rf"(?:{'|'.join(names)}|{_ROLE})" if names else _ROLE
    out = []
    for m in re.finditer(rf"(?<![\w-])(?P<who>{who}(?:\s+(?:and|or)\s+{who})?)(?:\s*\([^)]{{1,40}}\))?\s+{_DUTY}\b",
                         text):
        previous = re.findall(r"[\w'’]+", text[max(0, m.start() - 12):m.start()])
        if previous and previous[-1].lower() in _NOT_A_SUBJECT:
            continue
        out.append(Term(ACTS, m.group("who"), m.start("who"), m.end("who")))
    for m in re.finditer(rf"\b{_BENEFIT}\s+(?P<who>{who})(?![\w-])", text, re.I):
        if not re.fullmatch(who, m.group("who")):  # the case-insensitive pass matched "The Supplier" as a role only
            continue
        out.append(Term(BENEFITS, m.group("who"), m.start("who"), m.end("who")))
    return out


def extract(clause: str, parties: Iterable[str] = ()) -> list[Term]:
    """Every key term of `clause`, in reading order; spans never overlap within a kind."""
    terms = _amounts(clause) + _durations(clause) + _caps(clause) + _parties(clause, list(parties))
    terms += [Term(UNCAPPED, m.group().strip(), m.start(), m.start() + len(m.group().strip()))
              for m in _UNCAPPED.finditer(clause)]
    amounts = [(t.start, t.end) for t in terms if t.kind == AMOUNT]
    for m in _PERCENT.finditer(clause):
        if not any(a <= m.start() < b for a, b in amounts):
            terms.append(Term(PERCENTAGE, m.group(), m.start(), m.end(), float(m.group("num").replace(",", "")), "%"))
    # a duration inside an amount ("per year") or a cap ("the fees paid in the 12 months") is part of it
    inside = amounts + [(t.start, t.end) for t in terms if t.kind == CAP]
    terms = [t for t in terms if t.kind not in (DURATION, NOTICE) or not any(a <= t.start < b for a, b in inside)]
    return sorted(terms, key=lambda t: (t.start, t.kind))


_ORDER = (ACTS, BENEFITS, AMOUNT, DURATION, NOTICE, CAP, UNCAPPED, PERCENTAGE)


def describe(terms: Sequence[Term], limit: int = 200) -> str:
    """A short phrase of the clause's own terms, for a reason a lawyer reads:
    "obliges Supplier; in favour of Buyer; $50,000 per year; for ten (10) years; 60 days' prior written notice"."""
    phrases: list[str] = []
    for kind in _ORDER:
        for t in (t for t in terms if t.kind == kind):
            text = " ".join(t.text.split())
            if kind == ACTS:
                phrase = f"obliges {text}"
            elif kind == BENEFITS:
                phrase = f"in favour of {text}"
            elif kind == AMOUNT and t.period and t.period not in text:
                phrase = f"{text} {t.period}"
            elif kind == NOTICE and t.period == "notice":
                phrase = f"notice {text}"
            elif kind == CAP:
                phrase = f"liability capped at {text}" if t.period == "liability" else f"not to exceed {text}"
            elif kind == UNCAPPED:
                bare = text.lower().startswith(("unlimited", "uncapped"))
                phrase = "uncapped" if bare else f"uncapped: {text}"
            else:
                phrase = text
            if phrase.lower() not in (p.lower() for p in phrases):
                phrases.append(phrase)
    out = ""
    for p in phrases:
        nxt = f"{out}; {p}" if out else p
        if len(nxt) > limit:
            break
        out = nxt
    return out
