"""High-precision rule labeller for the first-pass checklist types neither corpus marks.

    rule_types("12. Indemnification. Supplier shall indemnify ...")  -> [("indemnification", "heading ...")]

CUAD's lawyers marked 41 categories; indemnification, termination for cause, force majeure,
confidentiality, warranty disclaimers, data protection and exclusive remedies are not among
them, so CUAD's clauses of those kinds are `other`. This labeller finds them by what a
lawyer's eye catches first, and only when it is unambiguous:

- the clause's own heading ("12. Indemnification.", "ARTICLE 9 FORCE MAJEURE", "Confidentiality:"),
  title-cased or upper-cased, at the start of the clause (the segmenter attaches headings);
- or an operative key phrase: a promise to indemnify ("shall indemnify, defend and hold
  harmless"), a right to terminate for breach or insolvency, "force majeure", a duty to keep
  information confidential, a disclaimer of implied warranties or "AS IS", duties on personal
  data, a "sole and exclusive remedy".

A mere mention does not count: "subject to Section 9 (Indemnification)", "except for a party's
indemnification obligations" name no duty and match neither a heading nor a key phrase. The
build applies it only to clauses the corpus left `other` (a CUAD lawyer's types always win) and
records it in `type_labeller`; its precision is measured on the graded set, not assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULE_TYPES = ("indemnification", "termination_for_cause", "force_majeure", "confidentiality",
              "warranty_disclaimer", "data_protection", "exclusive_remedy")

# a heading at the start of a clause: optional numbering, then a short title ending in "." / ":" / " -"
_HEADING = re.compile(
    r"^\s*(?:(?:ARTICLE|Article|SECTION|Section|Clause|CLAUSE)\s+[\dIVXLC]+(?:\.\d+)*\s*[.:\-–—]?\s*|"
    r"\d{1,3}(?:\.\d+)+\.?\s+|\(?[\dA-Za-z]{1,3}(?:\.\d+)*[.)]\s*)*"
    r"(?P<title>[A-Z][A-Za-z/&,'’\- ]{2,70}?)\s*(?:[.:]\s|\s[-–—]\s|\n|$)")
_SMALL = {"of", "and", "for", "or", "the", "to", "by", "in", "on", "upon", "a", "an", "with", "under", "from"}
_RULES: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    # type: (heading keywords, key phrases, exclusion: a phrase that turns a match into something else)
    "indemnification": (
        r"\bindemnif|\bhold\s+harmless",
        (r"\b(?:shall|will|agrees?\s+to|hereby\s+agrees?\s+to|undertakes?\s+to|must|covenants?\s+to)\s+"
         r"(?:\w+\s+){0,3}?(?:defend,?\s+(?:and\s+)?)?indemnif(?:y|ies)\b",
         r"\bindemnify,?\s+(?:defend|and\s+hold|hold)\b", r"\bhold\s+(?:\w+\s+){0,3}harmless\s+(?:from|against)\b"),
        None),
    "termination_for_cause": (
        r"termination\s+(?:for|upon|on|due\s+to)\s+(?:cause|breach|default|insolvency)|events?\s+of\s+default|"
        r"termination\s+by\s+\w+\s+for\s+(?:cause|breach)|breach\s+and\s+termination",
        (r"\bmay\s+(?:immediately\s+)?terminate\b[^.;]{0,220}?\b(?:material(?:ly)?\s+breach|breach(?:es|ed)?\s+(?:of\s+)?"
         r"(?:any|its|this|a|the)|fails?\s+to\s+(?:cure|perform|pay|comply)|insolven|bankrupt|receiver|"
         r"assignment\s+for\s+the\s+benefit\s+of\s+creditors|winding[- ]up|liquidat|for\s+cause)",
         r"\b(?:in\s+the\s+event|if|upon|should)\b[^.;]{0,220}?\b(?:material(?:ly)?\s+breach|breach(?:es|ed)?|default|"
         r"insolven|bankrupt)[^.;]{0,220}?\b(?:may|shall\s+have\s+the\s+right\s+to|is\s+entitled\s+to|"
         r"shall\s+be\s+entitled\s+to)\s+(?:immediately\s+)?terminate",
         r"\bterminate\s+this\s+agreement\s+for\s+cause\b"),
        r"\bfor\s+convenience\b|\bwithout\s+cause\b|\bfor\s+any\s+reason\s+or\s+no\s+reason\b"),
    "force_majeure": (
        r"force\s+majeure|excused\s+performance|acts?\s+of\s+god",
        (r"\bforce\s+majeure\b[^.]{0,250}?\b(?:excus|suspen|delay|fail|prevent|beyond|not\s+be\s+(?:liable|responsible)|"
         r"perform|control|means|include)|\b(?:excus|suspen|delay|fail|prevent|not\s+be\s+(?:liable|responsible))"
         r"[^.]{0,250}?\bforce\s+majeure\b",
         r"\bbeyond\s+(?:the|its|their|such\s+party'?s|[\w\s]{0,20}?)\s*reasonable\s+control\b[^.]{0,300}?"
         r"\b(?:not\s+be\s+(?:liable|responsible|deemed\s+in\s+breach)|excused|suspended)",
         r"\b(?:not\s+be\s+(?:liable|responsible)|excused)\b[^.]{0,300}?\bbeyond\s+(?:the|its|their|such\s+party'?s)?\s*"
         r"(?:reasonable\s+)?control\b"),
        None),
    "confidentiality": (
        # "Confidentiality", "Confidential Information"; a bare "CONFIDENTIAL" is a page banner of SEC exhibits
        r"\bconfidentiality\b|\bconfidential\s+information\b|non-?disclosure|proprietary\s+information|secrecy",
        (r"\b(?:shall|will|agrees?\s+to|must|undertakes?\s+to)\s+(?:\w+\s+){0,4}?(?:keep|hold|maintain|treat|preserve)\s+"
         r"(?:[\w,'’]+\s+){0,10}?(?:(?:strictly\s+)?confidential|in\s+(?:strict(?:est)?\s+)?confidence|secret)",
         r"\b(?:shall|will|agrees?|must)\s+not\s+(?:\w+ly\s+|use\s+or\s+|directly\s+or\s+indirectly\s+)?"
         r"(?:disclose|divulge|reveal)\b[^.;]{0,160}?"
         r"\b(?:confidential|proprietary|trade\s+secret)",
         r"[\"“]Confidential\s+Information[\"”]\s+(?:shall\s+)?means?\b"),
        None),
    "warranty_disclaimer": (
        r"disclaimer|no\s+other\s+warrant|warranty\s+disclaimer|disclaimer\s+of\s+warrant|limited\s+warranty",
        (r"\bAS\s+IS\b|[\"“]as\s+is[,\"”]",
         r"\bdisclaims?\s+(?:any\s+and\s+)?(?:all\s+)?(?:other\s+)?(?:express\s+(?:or|and)\s+implied\s+)?"
         r"(?:representations?\s+(?:and|or)\s+)?warrant",
         r"\b(?:makes?|gives?|provides?)\s+no\s+(?:other\s+)?(?:express\s+or\s+implied\s+)?(?:representations?\s+"
         r"(?:or|and)\s+)?warrant(?:y|ies)",
         r"\bimplied\s+warrant(?:y|ies)\s+(?:of\s+)?(?:merchantability|fitness)[^.]{0,200}?\b(?:disclaim|exclud|"
         r"in\s+lieu|waive)",
         r"\b(?:disclaim|exclud|in\s+lieu\s+of|waive)[^.]{0,200}?\bimplied\s+warrant(?:y|ies)"),
        None),
    "data_protection": (
        r"data\s+protection|\bprivacy\b|personal\s+(?:data|information)|data\s+security|\bHIPAA\b|protected\s+health",
        (r"\bpersonal(?:ly)?\s+(?:identifiable\s+)?(?:data|information)\b[^.;]{0,200}?\b(?:process|protect|secur|"
         r"safeguard|comply|complian|collect|disclos|transfer|store|breach|notif|encrypt|privacy|confidential|"
         r"segregat|access|destroy|return)|\b(?:process|protect|secur|safeguard|comply|collect|disclos|transfer|store|"
         r"breach|notif|encrypt|segregat|destroy|return)\w*\s+(?:[\w,'’]+\s+){0,8}?personal(?:ly)?\s+"
         r"(?:identifiable\s+)?(?:data|information)\b",
         r"\bdata\s+protection\s+(?:law|legislation|act|regulation|directive)",
         r"\bGDPR\b|\bHIPAA\b|\bprotected\s+health\s+information\b|\bprivacy\s+(?:law|act|rule|regulation|legislation)s?\b",
         r"\bGramm[- ]Leach[- ]Bliley\b|\bnon-?public\s+personal\s+information\b"),
        r"^[\s\d.()a-z]*[\"“](?!(?:[^\"”]*(?:personal|data|privacy|information)))[^\"”]{2,40}[\"”]\s+(?:shall\s+)?(?:means?|has)\b"),
    "exclusive_remedy": (
        r"exclusive\s+remed|sole\s+remed|limitation\s+of\s+remedies",
        (r"\b(?:sole|exclusive)\s+(?:and\s+exclusive\s+)?remed(?:y|ies)\b[^.;]{0,80}?\b(?:shall\s+be|is|will\s+be|are|"
         r"shall\s+consist|lies|shall\s+lie)\b",
         r"\bas\s+(?:its|their|the|his|her|your|such\s+party'?s)\s+(?:sole|exclusive)\s+(?:and\s+exclusive\s+)?remed"),
        r"\bnot\s+(?:be\s+|constitute\s+)?(?:the\s+|an?\s+)?(?:sole|exclusive)\s+(?:and\s+exclusive\s+)?remed|"
        r"independent\s+of\s+any\s+exclusive|in\s+addition\s+to\s+(?:any|all)\s+other\s+remed|\bcumulative\b"),
}
_COMPILED = {t: (re.compile(h, re.IGNORECASE),
                 tuple(re.compile(p) if t == "warranty_disclaimer" and "AS" in p else re.compile(p, re.IGNORECASE)
                       for p in phrases),
                 re.compile(x, re.IGNORECASE) if x else None)
             for t, (h, phrases, x) in _RULES.items()}


# words one of which every key phrase of a type contains: a cheap test before the regular expressions
_QUICK = {
    "indemnification": ("indemn", "harmless"), "termination_for_cause": ("terminat",),
    "force_majeure": ("majeure", "control"), "confidentiality": ("confiden", "secret", "disclos"),
    "warranty_disclaimer": ("warrant", "as is"), "exclusive_remedy": ("remed",),
    "data_protection": ("personal", "data protection", "gdpr", "hipaa", "health information", "privacy", "gramm"),
}


@dataclass(frozen=True)
class RuleMatch:
    type_id: str
    evidence: str  # "heading: Indemnification" or "phrase: shall indemnify"


def clause_heading(text: str) -> str:
    """The title a clause starts with, if it has one that reads as a heading (title or upper case)."""
    m = _HEADING.match(text)
    if not m:
        return ""
    title = m.group("title").strip(" ,-")
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'’\-]*", title)]
    if not words or len(words) > 8:
        return ""
    if all(w[0].isupper() or w.lower() in _SMALL for w in words):
        return title
    return ""


# a table of contents, or a definition that only points elsewhere, is no clause of any type
_NOT_A_CLAUSE = re.compile(r"\bTABLE\s+OF\s+CONTENTS?\b|^[^.]{0,80}\bshall\s+have\s+the\s+meaning\b|"
                           r"^[^.]{0,80}\bhas\s+the\s+meaning\s+(?:set\s+forth|given|stated|ascribed)", re.IGNORECASE)


def rule_types(text: str) -> list[RuleMatch]:
    """The checklist types the clause is, by its heading or an operative key phrase; [] when none."""
    flat = " ".join(text.split())
    if _NOT_A_CLAUSE.search(flat) or len(re.findall(r"\b\d+(?:\.\d+)+\s+[A-Z]", flat)) >= 6:
        return []
    heading = clause_heading(text)
    low = flat.lower()
    out = []
    for type_id in RULE_TYPES:
        head_re, phrases, exclude = _COMPILED[type_id]
        if not heading and not any(w in low for w in _QUICK[type_id]):
            continue
        if heading and head_re.search(heading) and not (exclude and exclude.search(flat)):
            out.append(RuleMatch(type_id, f"heading: {heading}"))
            continue
        for p in phrases:
            m = p.search(flat)
            if m and not (exclude and exclude.search(flat)):
                out.append(RuleMatch(type_id, f"phrase: {m.group(0)[:80]}"))
                break
    return out
