"""Rule pre-labeller for the risk of a clause: who bears it (`risk_to`) and how severe it is for
that party (`severity`), with the reason, following data/guidelines.md section 3.

    label = label_risk(text, ["termination_for_convenience"], parties)
    label.risk_to, label.severity, label.reason
        -> "second_party", "medium", "Termination for Convenience: Acme Corp. may end the contract on 90
           days' notice; payment for work done is not stated. Medium for Beta LLC."

1. Start from each clause type's default in data/taxonomy.yaml (`severity`, `risk_to` rule).
2. Find the bearer with the type's rule: `obliged` -> the party the clause obliges or restricts
   (annotation/obligation.py, plus "X hereby assigns", "X's liability"); `counterparty` -> the
   other side of the party holding the right or protection ("Acme may terminate", "in no event
   shall Acme be liable", "Acme disclaims", "at Acme's option"). "Either party" / "each party" /
   "neither party" make it `both`. In a Terms of Service, CLAUDETTE's categories fall on the user.
3. Move the severity with the written criteria the text lets a rule check: notice periods,
   payment for work done, the cap against the fees, carve-outs, mutuality, post-term duration,
   cure periods, "AS IS", "sole and exclusive remedy" with or without a refund.
   What a rule cannot check (the deal's economics, the rest of the contract) is left to the
   graded annotation; the reason says which criterion decided.
4. A clause of several types takes the most severe label among them.
CLAUDETTE's expert fairness level, when given, sets the severity (1 -> low, 2 -> medium, 3 -> high);
the rules then only find the bearer. Every record it labels says `risk_labeller: "rules"` (or
"claudette+rules").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contract_review.taxonomy import Taxonomy, load_taxonomy

from .obligation import label_obligation, role_in
from .parties import Parties

LEVELS = ("none", "low", "medium", "high")
FAIRNESS_SEVERITY = {1: "low", 2: "medium", 3: "high"}
_FLIP = {"first_party": "second_party", "second_party": "first_party", "both": "both"}


@dataclass(frozen=True)
class RiskLabel:
    risk_to: str  # first_party | second_party | both | none
    severity: str  # none | low | medium | high
    reason: str  # one sentence a lawyer can read: the criterion that decided, with the bearer's name
    criterion: str = ""  # which criterion and bearer rule decided (for reports)
    type_id: str = "other"  # the clause type whose risk this is (the most severe of the clause's types)


# -- what the text says --------------------------------------------------------------------------------
_NUM_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
              "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45,
              "forty five": 45, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "a": 1, "an": 1}
_UNIT_DAYS = {"day": 1, "business day": 1.4, "week": 7, "month": 30, "year": 365}
_DURATION = re.compile(
    r"(?:(?P<word>one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty[- ]five|forty|fifty|sixty|ninety|a|an)\s*)?(?:\(\s*(?P<paren>\d+)\s*\)|(?P<num>\d+))?\s*"
    r"(?P<unit>business\s+days?|days?|weeks?|months?|years?)\b", re.IGNORECASE)


def _durations(text: str) -> list[tuple[int, float]]:
    """(position, days) of every stated period ("thirty (30) days", "90 days", "six months", "one year")."""
    out = []
    for m in _DURATION.finditer(text):
        n = m.group("paren") or m.group("num")
        value = int(n) if n else _NUM_WORDS.get((m.group("word") or "").lower().replace("-", " "))
        if not value:
            continue
        unit = re.sub(r"s$", "", " ".join(m.group("unit").lower().split()))
        out.append((m.start(), value * _UNIT_DAYS[unit]))
    return out


def notice_days(text: str) -> float | None:
    """The notice a clause requires, in days: 0 for "immediately" / "without notice", None when it says none."""
    if re.search(r"\bwithout\s+(?:prior\s+)?notice\b|\bimmediately\b|\bwith\s+immediate\s+effect\b|\bat\s+any\s+time\s+"
                 r"without\b", text, re.IGNORECASE) and not re.search(r"\bnotice\b[^.]{0,40}\b\d", text, re.IGNORECASE):
        return 0.0
    notices = [m.start() for m in re.finditer(r"\bnotice|\bnotif", text, re.IGNORECASE)]
    near = [d for pos, d in _durations(text) if any(abs(pos - n) < 90 for n in notices)]
    return min(near) if near else None


def _after_term_days(text: str) -> float | None:
    """How long a restriction lasts after the contract ends, in days (a very large number for "perpetual")."""
    if re.search(r"\bperpetu|\bin\s+perpetuity\b|\bindefinitely\b|\bforever\b|\bat\s+any\s+time\s+thereafter", text, re.I):
        return 1e6
    after = [m.start() for m in re.finditer(r"\b(?:after|following|beyond|post)\b[^.;]{0,40}\b(?:termination|"
                                              r"expiration|expiry|end)\b|\bafter\s+the\s+(?:term|agreement)\b|"
                                              r"\bthereafter\b|\b(?:years?|months?)\s+after\b", text, re.IGNORECASE)]
    near = [d for pos, d in _durations(text) if any(-120 < a - pos < 120 for a in after)]
    if near:
        return max(near)
    return 1.0 if after else None


_PAYMENT = re.compile(
    r"\bpa(?:y|id|yment)\b[^.;]{0,80}\b(?:services?|work|goods|products?|deliverables?|fees?|amounts?|costs?|expenses?)"
    r"\b[^.;]{0,60}\b(?:performed|rendered|delivered|provided|completed|accrued|earned|incurred|prior\s+to|through|up\s+to)|"
    r"\brefund\b|\bpro[- ]?rat(?:a|ed)\b|\breimburse\b|\btermination\s+(?:fee|payment|charge)|\bwind[- ]?down\s+costs|"
    r"\bnon-?cancell?able\s+(?:orders?|commitments?)|\bcompensat\w+\s+(?:for|in\s+respect\s+of)", re.IGNORECASE)
_NO_PAYMENT = re.compile(r"\bwithout\s+(?:any\s+)?(?:liability|compensation|penalty|obligation\s+to\s+pay|payment|refund)"
                         r"|\bno\s+(?:refund|compensation)\b|\bnon-?refundable\b", re.IGNORECASE)
_MUTUAL = re.compile(r"\b(?:either|each|neither)\s+(?:of\s+the\s+)?part(?:y|ies)\b|\beach\s+of\s+(?:us|them)\b|"
                     r"\b(?:receiving|disclosing)\s+party\b", re.IGNORECASE)
_CARVE_OUT = re.compile(
    r"\b(?:except|excluding|other\s+than|save\s+for|shall\s+not\s+apply|does\s+not\s+apply|will\s+not\s+apply|not\s+limit|"
    r"exclusions?|notwithstanding|provided\s+(?:that|however))\b[^.]{0,300}?\b(?:gross(?:ly)?\s+negligen|wil+ful|"
    r"fraud|indemnif|confidential|infring|death|bodily|personal\s+injury|intellectual\s+property|data|intentional)",
    re.IGNORECASE)
_FEES = re.compile(
    r"\b(?:fees?|amounts?|sums?|charges?|compensation|price|royalt(?:y|ies)|consideration|payments?)\s+(?:actually\s+)?"
    r"(?:paid|payable|received|due)|\bpurchase\s+price\b|\bprice\s+(?:paid|of\s+the)|\bamount\s+of\s+(?:the\s+)?"
    r"(?:fees|payments?|invoice)|\$\s?\d|\bdollars\b|\b(?:US|U\.S\.)\s?\$|\bEUR\b|\b€", re.IGNORECASE)
_MULTIPLE = re.compile(r"\b(?:two|three|four|five|ten|\d+(?:\.\d+)?)\s*(?:\(\d+(?:\.\d+)?\)\s*)?(?:times|x)\b|"
                       r"\b(?:twice|double|triple)\b", re.IGNORECASE)
_CAP = re.compile(r"\bshall\s+not\s+exceed|\bnot\s+to\s+exceed|\bin\s+excess\s+of|\blimited\s+to\b|\bmaximum\b|"
                  r"\baggregate\s+liability|\bcap\b|\bexceed\b", re.IGNORECASE)
_CONSEQUENTIAL = re.compile(r"\b(?:consequential|indirect|incidental|special|punitive|exemplary)\b|\blost\s+profits?\b|"
                            r"\bloss\s+of\s+(?:profits?|revenue|business|data|goodwill)", re.IGNORECASE)
_BROAD_SCOPE = re.compile(r"\bany\s+and\s+all\b[^.]{0,160}\b(?:arising\s+(?:out\s+of|from|under)|relating\s+to|in\s+"
                          r"connection\s+with)|\barising\s+out\s+of\s+or\s+(?:relating|in\s+connection)\s+(?:to|with)\s+"
                          r"(?:this\s+agreement|the\s+(?:services|agreement))", re.IGNORECASE)


def _has(pattern: str, text: str) -> bool:
    return bool(re.search(pattern, text, re.IGNORECASE))


# -- who holds the right, who is obliged -----------------------------------------------------------------
# the words that state a right or a protection; the holder is the party named just before them
# (or inside them: "at Acme's option", "grants to Beta a licence")
_HOLDER_AFTER = re.compile(
    r"\b(?:may|can|shall\s+(?:have|be\s+entitled\s+to)|has|will\s+have|is\s+entitled\s+to|reserves?)\b(?:\s+\w+){0,3}?\s+"
    r"(?:terminat|cancel|end|suspend|right|option|elect|audit|inspect|chang|modif|amend|remov|delet|discontinu|refuse|"
    r"use|sublicens|withhold|assign|purchase|acquire|match|offer|renew|extend)|"
    r"\b(?:shall|will)\s+(?:not|in\s+no\s+event)\s+be\s+(?:liable|responsible)|"
    r"(?:'s|’s)?\s*\b(?:total|aggregate|entire|cumulative|maximum)?\s*liability\b|"
    r"\b(?:disclaims?|makes?\s+no|gives?\s+no)\b|\bprovides?\s+(?:[\w\s]{0,40}?)[\"“]?as\s+is\b|"
    r"\b(?:shall|will)\s+(?:be\s+)?(?:excused|not\s+be\s+(?:deemed\s+)?in\s+(?:breach|default))|"
    r"\b(?:shall|will)\s+(?:own|retain|be\s+the\s+(?:sole\s+)?owner)", re.IGNORECASE)
_HOLDER_WITHIN = (
    re.compile(r"\bat\s+(?:the\s+)?(?P<s>[\w.,&' -]{2,60}?)(?:'s|’s|s')\s+(?:sole\s+|absolute\s+|reasonable\s+)*"
               r"(?:option|discretion|election|request)", re.IGNORECASE),
    re.compile(r"\bin\s+no\s+event\s+(?:shall|will)\s+(?P<s>[^.;]{2,80}?)\s+be\s+(?:liable|responsible)", re.IGNORECASE),
    re.compile(r"\b(?:grants?|granted)\s+(?:to\s+)?(?P<s>[^.;]{2,60}?)\s+(?:an?|the)\s+(?:\w+[\s,-]+){0,8}?"
               r"(?:licen[cs]e|right)", re.IGNORECASE),
)


def _subject_before(text: str, pos: int, reach: int = 80) -> str:
    """The words just before `pos`, back to the last sentence or clause break."""
    before = text[max(0, pos - reach) : pos]
    cut = max(before.rfind("."), before.rfind(";"), before.rfind(":"))
    return before[cut + 1 :] if cut >= 0 else before


def right_holder(text: str, parties: Parties) -> str | None:
    """Who holds the right or protection the clause gives: a role, "both", or None when no party is named."""
    flat = " ".join(text.split())
    hits: list[tuple[int, str]] = []
    for pat in _HOLDER_WITHIN:
        for m in pat.finditer(flat):
            role = role_in(m.group("s"), parties)
            if role:
                hits.append((m.start(), role))
    for m in _HOLDER_AFTER.finditer(flat):
        role = role_in(_subject_before(flat, m.start()), parties)
        if role:
            hits.append((m.start(), role))
    if not hits:
        return None
    roles = [r for _, r in sorted(hits)]
    return "both" if "both" in roles else roles[0]  # the first right the clause states is its subject


_OBLIGED_AFTER = re.compile(r"\bhereby\s+(?:irrevocably\s+)?(?:assigns?|transfers?|conveys?|waives?|releases?|grants?|"
                            r"agrees?)|(?:'s|’s)\s+(?:obligations?|liability|indemnit)", re.IGNORECASE)
_LIABILITY_OF = re.compile(r"\bliability\s+of\s+(?P<s>[^.;]{2,60}?)\s+(?:for|under|shall|arising)", re.IGNORECASE)


def _obliged(text: str, parties: Parties) -> str | None:
    party = label_obligation(text, parties).party
    if party != "none":
        return party
    flat = " ".join(text.split())
    for m in _OBLIGED_AFTER.finditer(flat):
        role = role_in(_subject_before(flat, m.start(), 60), parties)
        if role:
            return role
    for m in _LIABILITY_OF.finditer(flat):
        role = role_in(m.group("s"), parties)
        if role:
            return role
    return None


# -- criteria per clause type ---------------------------------------------------------------------------------
@dataclass
class _Ctx:
    text: str
    parties: Parties
    holder: str | None
    bearer: str
    mutual: bool


Criterion = Callable[[_Ctx], tuple[str, str] | None]  # -> (severity, why) or None to keep the default


def _termination_for_convenience(c: _Ctx):
    days = notice_days(c.text)
    paid = bool(_PAYMENT.search(c.text)) and not _NO_PAYMENT.search(c.text)
    if days is None or days < 30 or _NO_PAYMENT.search(c.text):
        what = ("without notice" if not days else f"on {days:.0f} days' notice") if days is not None else \
            "with no notice period stated"
        return "high", f"ends the contract {what}" + ("" if paid else ", with no payment for work done stated")
    if paid and days >= 90:
        return "low", f"ends it only on {days:.0f} days' notice and with payment for work done"
    if paid:
        return "medium", f"ends it on {days:.0f} days' notice with payment for work done"
    return "medium", f"ends it on {days:.0f} days' notice; payment for work done is not stated"


def _termination_for_cause(c: _Ctx):
    cure = [d for pos, d in _durations(c.text) if _has(r"\bcure|\bremed|\bcorrect", c.text)]
    material = _has(r"\bmaterial(?:ly)?\b", c.text)
    insolvency_only = _has(r"insolven|bankrupt|receiver|liquidat|winding", c.text) and not _has(r"\bbreach", c.text)
    if not material and not cure and not insolvency_only and _has(r"\bbreach|\bdefault|\bfails?\b", c.text):
        return "high", "any breach ends the contract, with no cure period"
    if cure and min(cure) >= 30 and material:
        return ("low" if c.mutual else "medium"), f"only a material breach left uncured for {min(cure):.0f} days ends it"
    if insolvency_only:
        return "medium", "insolvency or bankruptcy of the other party ends it"
    return None


def _cap_on_liability(c: _Ctx):
    carve = bool(_CARVE_OUT.search(c.text))
    if _CAP.search(c.text) and (_FEES.search(c.text) or _MULTIPLE.search(c.text)):
        above = bool(_MULTIPLE.search(c.text))
        if not above and not carve:
            return "high", "caps liability at or below the fees (or a fixed sum) with no carve-outs"
        if above and carve:
            return "low", "caps liability above the fees, with carve-outs"
        return "medium", ("caps liability above the fees, with no carve-outs" if above
                          else "caps liability at the fees, with carve-outs")
    if _CONSEQUENTIAL.search(c.text) or _has(r"\bin\s+no\s+event\b|\bnot\s+be\s+liable", c.text):
        if not _CONSEQUENTIAL.search(c.text) and not carve:
            return "high", "excludes liability for any damages, with no carve-outs"
        if c.mutual and carve:
            return "low", "excludes indirect and consequential loss for both sides, with carve-outs"
        if c.mutual or carve:
            return "medium", "excludes indirect and consequential loss" + (" for both sides" if c.mutual else
                                                                            ", with carve-outs")
        return "medium", "excludes indirect and consequential loss for one side only"
    days = [d for _, d in _durations(c.text)]
    if _has(r"\b(?:claim|action|suit|proceeding)s?\b", c.text) and days:
        return ("medium" if min(days) < 365 else "low"), f"claims must be brought within {min(days):.0f} days"
    return None


def _uncapped_liability(c: _Ctx):
    narrow = _has(r"gross(?:ly)?\s+negligen|wil+ful\s+misconduct|fraud|death|bodily|personal\s+injury", c.text)
    broad = _has(r"indemnif|infring|confidential|breach\s+of\s+(?:this\s+agreement|its\s+obligations)|data", c.text)
    if narrow and not broad:
        return "medium", "liability is uncapped only for fraud, gross negligence, wilful misconduct or injury"
    return None


def _liquidated_damages(c: _Ctx):
    if _has(r"service\s+(?:level\s+)?credit|\bcredits?\b", c.text) or (_CAP.search(c.text) and _has(r"%|percent", c.text)):
        return "medium", "a capped or credit-based payment"
    return None


def _restriction(default_days: float = 365):
    def crit(c: _Ctx):
        after = _after_term_days(c.text)
        worldwide = _has(r"\bworldwide\b|\banywhere\s+in\s+the\s+world\b|\bthroughout\s+the\s+world\b", c.text)
        if after and after >= 1e6:
            return "high", "the restriction is perpetual"
        if (after and after >= default_days) or worldwide:
            span = f"lasts {after:.0f} days after the contract ends" if after and after > 1 else "applies worldwide"
            return "high", f"the restriction {span}"
        if after is None:
            return "medium", "the restriction lasts only while the contract runs"
        return None
    return crit


def _non_solicit(c: _Ctx):
    after = _after_term_days(c.text)
    general = _has(r"general\s+(?:solicitation|advertis)|not\s+(?:specifically\s+)?(?:directed|targeted)", c.text)
    if after and after >= 730:
        return "high", f"the restriction lasts {after:.0f} days after the contract ends" if after < 1e6 else \
            "the restriction is perpetual"
    if c.mutual and (general or (after is not None and after <= 365)):
        return "low", "a mutual restriction, limited in time or excluding general advertising"
    return None


def _exclusivity(c: _Ctx):
    if _has(r"\bnon-?exclusive\b|\bbecome\s+non-?exclusive|\bconvert", c.text):
        return "medium", "exclusivity can lapse or become non-exclusive"
    if _has(r"\ball\s+(?:of\s+)?(?:its|their)\s+requirements|\bexclusively\s+from\b", c.text):
        return "high", "all requirements must be bought from one source"
    return None


def _assignment(c: _Ctx):
    if _has(r"not\s+(?:to\s+)?be\s+unreasonably\s+withheld|without\s+(?:such\s+)?consent\s+to\s+(?:an?\s+)?(?:affiliate|"
            r"successor)|\bmerger\b|\bacquir|\bsale\s+of\s+(?:all|substantially)", c.text):
        return "low", "consent may not be unreasonably withheld, or a sale or merger is allowed"
    if not c.mutual and _has(r"sole\s+discretion|absolute\s+discretion", c.text):
        return "medium", "consent is at the other party's sole discretion"
    return None


def _change_of_control(c: _Ctx):
    if _has(r"\bterminat", c.text) and (_has(r"\bimmediately\b|without\s+(?:further\s+)?(?:liability|notice)", c.text)
                                         or _has(r"\bpay|\bfee\b|accelerat", c.text)):
        return "high", "a change of control lets the other side end the contract at once or triggers payment"
    if _has(r"\bnotice\b|\bnotify\b", c.text) and not _has(r"\bterminat|\bconsent", c.text):
        return "low", "a change of control only has to be notified"
    return None


def _minimum_commitment(c: _Ctx):
    if _has(r"non-?binding|reasonable\s+(?:commercial\s+)?efforts|\bforecast", c.text) and not _has(r"\bshall\s+pay\b|"
                                                                                                    r"shortfall", c.text):
        return "low", "the minimum is a forecast or an efforts obligation"
    if _has(r"\bnon-?exclusive|lose\s+(?:its\s+)?exclusiv|terminate\s+(?:the\s+)?exclusiv", c.text) and \
            not _has(r"shortfall\s+(?:payment|fee)|pay\s+the\s+(?:difference|shortfall)", c.text):
        return "medium", "missing the minimum costs exclusivity, not a payment"
    return None


def _ip_assignment(c: _Ctx):
    if _has(r"licen[cs]e\s+back|grants?\s+(?:back\s+)?to\s+\w+[^.]{0,40}licen[cs]e|pre-?existing|background\s+ip", c.text):
        return "medium", "pre-existing IP is kept or licensed back"
    return None





def _post_termination(c: _Ctx):
    days = [d for _, d in _durations(c.text)]
    if _has(r"\bat\s+no\s+(?:additional\s+)?(?:cost|charge)|free\s+of\s+charge|without\s+(?:additional\s+)?charge", c.text):
        return "high", "services continue after the end at no charge"
    if days and max(days) <= 180 and _has(r"\bfees?\b|\brates?\b|\bpaid\b|\bcompensat", c.text):
        return "low", "paid transition services for at most six months"
    return None


def _audit(c: _Ctx):
    if _has(r"\bat\s+any\s+time\b|\bunlimited\b|\bas\s+often\b", c.text) and not _has(r"once\s+(?:per|a|in\s+any)", c.text):
        return "medium", "audits at any time, with no limit on frequency"
    return None


def _insurance(c: _Ctx):
    amounts = [float(a.replace(",", "")) for a in re.findall(r"\$\s?(\d[\d,]{5,})", c.text)]
    if _has(r"\$\s?\d+(?:\.\d+)?\s*million", c.text):
        amounts += [float(x) * 1e6 for x in re.findall(r"\$\s?(\d+(?:\.\d+)?)\s*million", c.text, re.IGNORECASE)]
    if amounts and max(amounts) >= 5_000_000:
        return "medium", f"cover of at least ${max(amounts):,.0f} must be kept"
    return None



def _warranty_duration(c: _Ctx):
    days = [d for _, d in _durations(c.text)]
    if days and min(days) < 90:
        return "medium", f"the warranty lasts only {min(days):.0f} days"
    return None


def _renewal(c: _Ctx):
    if _has(r"\bautomatic|\bshall\s+(?:be\s+)?(?:automatically\s+)?(?:renew|extend)|\bevergreen", c.text):
        return "medium", "renews automatically unless a party acts"
    if _has(r"mutual(?:ly)?\s+(?:written\s+)?agree|by\s+written\s+agreement|upon\s+agreement", c.text):
        return "low", "renews only if both parties agree"
    if c.holder in ("first_party", "second_party"):
        return "medium", "one party alone may renew"
    return None


def _notice_to_terminate_renewal(c: _Ctx):
    days = notice_days(c.text)
    if days is not None and days >= 180:
        return "high", f"non-renewal needs {days:.0f} days' notice"
    if days is not None and days <= 30:
        return "low", f"non-renewal needs only {days:.0f} days' notice"
    return None


def _indemnification(c: _Ctx):
    third_party = _has(r"third[- ]part(?:y|ies)", c.text)
    own_fault = _has(r"(?:negligence|breach|misconduct|infringement)\s+of\s+(?:the\s+)?indemnif|whether\s+or\s+not\s+"
                     r"caused\s+by|regardless\s+of\s+(?:whether|the\s+negligence)|even\s+if\s+caused", c.text)
    if (_BROAD_SCOPE.search(c.text) or own_fault) and not c.mutual:
        return "high", "covers any claim arising from the contract (or the other side's own fault), one way only"
    if c.mutual and third_party:
        return "low", "mutual, and limited to third-party claims"
    return None


def _force_majeure(c: _Ctx):
    payment = _has(r"\bpay(?:ment)?\s+obligations?\b|\bobligations?\s+to\s+pay\b|\bpayment\s+of\s+(?:money|fees|amounts)",
                   c.text)
    excludes_payment = _has(r"except\s+(?:for\s+)?(?:the\s+)?(?:payment|obligations?\s+to\s+pay)|other\s+than\s+(?:the\s+)?"
                            r"(?:payment|obligations?\s+to\s+pay)|(?:payment|obligations?\s+to\s+pay)[^.]{0,40}\bnot\s+be\s+"
                            r"excused", c.text)
    if c.mutual:
        return "low", "either party is excused alike" + (", payment excepted" if excludes_payment else "")
    if payment and not excludes_payment:
        return "high", "one side is excused, even from paying"
    return "medium", "only one side is excused"


def _confidentiality(c: _Ctx):
    forever = _has(r"\bperpetu|\bindefinite|\bin\s+perpetuity|\bsurvive\b[^.]{0,60}\bindefinitely", c.text)
    if c.mutual and not forever:
        return "low", "mutual confidentiality"
    if not c.mutual and forever:
        return "medium", "one-sided confidentiality with no end date"
    return ("medium", "one-sided confidentiality") if not c.mutual else ("low", "mutual confidentiality with no end date")


def _warranty_disclaimer(c: _Ctx):
    express_kept = _has(r"except\s+as\s+(?:expressly|otherwise|specifically)\s+(?:set\s+forth|provided|stated)|other\s+than\s+"
                        r"(?:the\s+)?(?:express\s+)?warrant|in\s+lieu\s+of", c.text)
    if c.mutual or (express_kept and not _has(r"\bAS\s+IS\b", c.text)):
        return "low", "implied warranties give way to the express ones" + (" on both sides" if c.mutual else "")
    if _has(r"\bAS\s+IS\b|[\"“]as\s+is[\"”,]", c.text) and not express_kept:
        return "high", "everything is provided AS IS, with no warranty at all"
    return None


def _data_protection(c: _Ctx):
    if _has(r"\b(?:24|twenty-four|48|forty-eight|72|seventy-two)\s*(?:\(\d+\)\s*)?hours?\b", c.text) or \
            _has(r"unlimited|without\s+limit", c.text):
        return "high", "tight breach-notification deadlines or unlimited liability for data"
    if c.mutual and _has(r"comply\s+with\s+(?:all\s+)?applicable", c.text):
        return "low", "each side only has to comply with the applicable privacy law"
    return None


def _exclusive_remedy(c: _Ctx):
    if _has(r"\brefund|\bcredit|\brepay|\breturn\s+of\s+(?:the\s+)?(?:fees|price|amounts)", c.text):
        return "low", "the remedy includes a refund or credits"
    if _has(r"repair|replace|re-?perform|correct", c.text):
        return "high", "repair, replacement or re-performance is the only remedy, with no refund"
    return None






def _phrases(*rules: tuple[str, str | None, str, str]) -> Criterion:
    """A criterion that is a list of (phrase, unless-phrase, severity, why): the first phrase the clause has,
    without its unless-phrase, decides."""
    compiled = [(re.compile(p, re.IGNORECASE), re.compile(u, re.IGNORECASE) if u else None, sev, why)
                for p, u, sev, why in rules]

    def crit(c: _Ctx):
        for pat, unless, sev, why in compiled:
            if pat.search(c.text) and not (unless and unless.search(c.text)):
                return sev, why
        return None
    return crit


CRITERIA: dict[str, Criterion] = {
    "termination_for_convenience": _termination_for_convenience,
    "termination_for_cause": _termination_for_cause,
    "cap_on_liability": _cap_on_liability,
    "uncapped_liability": _uncapped_liability,
    "liquidated_damages": _liquidated_damages,
    "non_compete": _restriction(),
    "no_solicit_of_customers": _non_solicit,
    "no_solicit_of_employees": _non_solicit,
    "exclusivity": _exclusivity,
    "anti_assignment": _assignment,
    "change_of_control": _change_of_control,
    "minimum_commitment": _minimum_commitment,
    "ip_ownership_assignment": _ip_assignment,
    "license_grant": _phrases(
        (r"\bexclusive\b", r"non-?exclusive", "medium", "an exclusive licence"),
        (r"\bsublicens|\bworldwide\b[^.]{0,80}royalty-?free|irrevocab|perpetual", None, "medium",
         "a sublicensable, royalty-free worldwide or perpetual licence")),
    "irrevocable_or_perpetual_license": _phrases(
        (r"terminat\w*\s+(?:for|upon|in\s+the\s+event\s+of)\s+(?:\w+\s+){0,3}breach|subject\s+to\s+(?:the\s+)?payment",
         None, "medium", "the licence can still end for breach or depends on payment")),
    "source_code_escrow": _phrases(
        (r"change\s+of\s+control|cease[sd]?\s+to\s+(?:support|maintain|do\s+business)|discontinu|any\s+breach", None,
         "medium", "broad release events (change of control, end of support, any breach)")),
    "post_termination_services": _post_termination,
    "audit_rights": _audit,
    "insurance": _insurance,
    "covenant_not_to_sue": _phrases(
        (r"\bcontest|\bchallenge|\bvalidity", r"\brelease|\bwaive", "medium",
         "a no-challenge of the licensed rights, not a release of claims")),
    "warranty_duration": _warranty_duration,
    "renewal_term": _renewal,
    "notice_period_to_terminate_renewal": _notice_to_terminate_renewal,
    "indemnification": _indemnification,
    "force_majeure": _force_majeure,
    "confidentiality": _confidentiality,
    "warranty_disclaimer": _warranty_disclaimer,
    "data_protection": _data_protection,
    "exclusive_remedy": _exclusive_remedy,
    "most_favored_nation": _phrases(
        (r"retroactive|refund\s+the\s+difference|credit\s+the\s+difference|pay\s+the\s+difference", None, "high",
         "better terms given to others must be applied retroactively"),
        (r"similarly\s+situated|comparable\s+(?:volume|terms|quantit)|like\s+quantit", None, "low",
         "limited to similarly situated customers buying comparable volumes")),
    "price_restrictions": _phrases(
        (r"\bCPI\b|consumer\s+price\s+index|adjust|increase[^.]{0,40}\b(?:no\s+more\s+than|not\s+(?:to\s+)?exceed)",
         None, "low", "prices may still be adjusted within limits")),
    "rofr_rofo_rofn": _phrases(
        (r"first\s+negotiat", r"first\s+refusal", "low", "only a right to negotiate first"),
        (r"\bequity\b|\bshares\b|\bstock\b|all\s+or\s+substantially\s+all|sale\s+of\s+(?:the\s+)?(?:company|business)",
         None, "high", "the first right covers a sale of the business or its equity")),
    "third_party_beneficiary": _phrases(
        (r"indemnif|affiliates?|officers|directors|employees", None, "low",
         "only indemnified persons or affiliates may enforce it")),
}


# -- the labeller ---------------------------------------------------------------------------------------------
def _bearer(rule: str, text: str, parties: Parties, holder: str | None) -> tuple[str, str]:
    """(bearer, how it was found) for a type's bearer rule."""
    if rule in ("both", "none"):
        return rule, "the type's default"
    if rule == "counterparty":
        if holder:
            return _FLIP[holder], "the other side of the party holding the right"
        obliged = _obliged(text, parties)
        if obliged:
            return obliged, "the party the clause obliges"
    else:
        obliged = _obliged(text, parties)
        if obliged:
            return obliged, "the party the clause obliges"
        if holder:
            return _FLIP[holder], "the other side of the party holding the right"
    return "both", "no party is named, so both"


def bearer_name(role: str, parties: Parties) -> str:
    """How a reason names the bearer: the party's name, "both parties", or its role when unnamed."""
    if role == "both":
        return "both parties"
    name = parties.first_party if role == "first_party" else parties.second_party
    return name or ("the first party" if role == "first_party" else "the second party")


def label_risk(text: str, types: Sequence[str], parties: Parties, *, terms_of_service: bool = False,
               fairness: int | None = None, tax: Taxonomy | None = None, criteria: bool = True) -> RiskLabel:
    """The bearer and severity of a clause of `types` (see the module docstring). `criteria=False`:
    each type's default severity only, its bearer rule still applied to the text (the type-oracle
    baseline of evaluation: what the types alone say)."""
    tax = tax or load_taxonomy()
    types = tax.order_types(types)
    typed = [tax.clause_type(t) for t in types if tax.clause_type(t).severity != "none"]
    if not typed:
        return RiskLabel("none", "none", tax.default_reason(types[0]), "no risk type", types[0])
    flat = " ".join(text.split())
    holder = right_holder(flat, parties)
    mutual = bool(_MUTUAL.search(flat)) and holder in (None, "both")
    best: RiskLabel | None = None
    for ct in typed:
        if terms_of_service and ct.claudette:
            bearer, how = tax.terms_of_service_bearer, "a Terms of Service term weighs on the user"
        else:
            bearer, how = _bearer(ct.risk_to, flat, parties, holder)
            if mutual and bearer != "none":
                bearer = "both"
        severity, why, criterion = ct.severity, ct.reason.rstrip("."), "type default"
        if not criteria:
            pass
        elif fairness in FAIRNESS_SEVERITY and ct.claudette:
            severity = FAIRNESS_SEVERITY[fairness]
            why = {1: "clearly fair", 2: "potentially unfair", 3: "clearly unfair"}[fairness] + \
                " in the CLAUDETTE experts' reading; " + why[0].lower() + why[1:]
            criterion = "claudette fairness"
        elif ct.id in CRITERIA:
            found = CRITERIA[ct.id](_Ctx(flat, parties, holder, bearer, mutual))
            if found:
                severity, why = found
                criterion = ct.id + ": " + why
        reason = f"{ct.name}: {why}. {severity.capitalize()} for {bearer_name(bearer, parties)}."
        label = RiskLabel(bearer, severity, reason, f"{criterion}; bearer: {how}", ct.id)
        if best is None or LEVELS.index(label.severity) > LEVELS.index(best.severity):
            best = label
    return best
