"""What the DOCX and PDF reports say, as a list of blocks both renderers draw the same way.

    blocks = report_blocks(review, notice=None)    # -> [Block("title", ...), Block("heading", ...), ...]

The report a lawyer forwards to a client, top to bottom: title and file; the disclaimer and
any warning (another language, not a contract, characters the PDF cannot show); the summary
(counts, the highest risks for the party represented, the highest risks overall); the parties;
the usual clauses (found where, mentioned where, not found, or not checked); every finding with
some risk, highest first, under a heading that cites the contract ("Section 9.2 Limitation of
Liability, page 7"), with its risk, who bears it, who it obliges, why, and the clause quoted;
what was checked (every clause type by area, found or not); and an appendix with how the review
was made (model, versions, times), which is the only place model ids appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract_review.taxonomy import load_taxonomy

from .review import Finding, Review
from .summary import FOUND, MENTIONED, NOT_CHECKED, NOT_FOUND, risk_order

DISCLAIMER = ("Machine-generated first pass for a lawyer's review, not legal advice: check every finding "
              "against the contract.")
RISK_RGB = {"high": (180, 20, 20), "medium": (190, 100, 0), "low": (40, 90, 160), "none": (90, 90, 90)}
AREA_NAMES = {"none": "General information", "liability": "Liability", "termination": "Termination",
              "term_renewal": "Term and renewal", "dispute_resolution": "Disputes", "competition": "Competition",
              "financial": "Money", "intellectual_property": "Intellectual property",
              "assignment_control": "Assignment and control", "unilateral_change": "Unilateral changes",
              "content_removal": "Content removal", "consent_by_use": "Consent by use", "compliance": "Compliance",
              "information": "Information and data"}


@dataclass
class Block:
    kind: str  # title | heading | para | note | warning | bullet | finding | risk | quote | table
    text: str = ""
    level: int = 1  # headings: 1 or 2
    rows: list[list[str]] = field(default_factory=list)  # tables: the first row is the header
    risk: str = "none"  # risk lines and finding headings: the colour
    widths: tuple[float, ...] = ()  # tables: column shares


def header_text(review: Review) -> str:
    return f"Contract review: {review.contract['name']}"


def footer_text() -> str:
    return "First-pass review for a lawyer, not legal advice"


def report_findings(review: Review) -> list[Finding]:
    """What the report details: every clause with some risk, highest first."""
    return [f for f in risk_order(review.findings, load_taxonomy()) if f.risk != "none"]


def risk_line(f: Finding) -> str:
    severity = f.severity or "not assessed"
    mark = " Corrected by a reviewer." if f.corrected else ""
    return (f"{f.risk.upper()} risk. Borne by: {f.risk_to_name} (severity for them: {severity}). "
            f"Obliges: {f.party_name}. Model confidence {f.confidence:.0%}.{mark}")


def finding_heading(f: Finding) -> str:
    return f"{f.where}: {', '.join(f.type_names)}"


def _top_bullets(rows: list[dict]) -> list[Block]:
    out = []
    for t in rows[:6]:
        bearer = t["risk_to_name"] if t.get("risk_to") is not None else "bearer not assessed"
        out.append(Block("bullet", f"{t['where']} ({t['type']}): {t['risk'].upper()}, borne by {bearer}. "
                                   f"{t['reason']}", risk=t["risk"]))
    return out


def _usual_rows(review: Review) -> list[list[str]]:
    rows = [["Clause", "Status", "Where, or why it matters"]]
    for u in review.summary.get("usual", []):
        if u["status"] == FOUND:
            detail = "; ".join(u["where"])
        elif u["status"] == MENTIONED:
            detail = f"Mentioned in {'; '.join(u['where'])}, but no clause was labelled as such: check it."
        elif u["status"] == NOT_FOUND:
            detail = u["why"]
        else:
            detail = "The review could not judge this contract (see the warning above)."
        rows.append([u["clause"], u["status"], detail])
    return rows


def _checked_rows(review: Review) -> list[list[str]]:
    rows = [["Area", "Found (where, highest risk)", "Checked, not found"]]
    for area in review.summary.get("checked", []):
        found = [f"{t['name']}: {'; '.join(t['found'])}{' …' if t['count'] > len(t['found']) else ''} ({t['risk']})"
                 for t in area["types"] if t["found"]]
        absent = [t["name"] for t in area["types"] if not t["found"]]
        rows.append([AREA_NAMES.get(area["area"], area["area"]), "\n".join(found) or "-", ", ".join(absent) or "-"])
    return rows


def _summary(review: Review) -> list[Block]:
    s = review.summary
    counts = ", ".join(f"{n} {level}" for level, n in s["risk_counts"].items())
    out = [Block("heading", "Summary"), Block("para", f"Clauses by risk: {counts}.")]
    if not s.get("assessed", True):
        why = (s.get("not_assessed_why") or "see the warnings above").rstrip(". ")
        out.append(Block("warning", f"Not assessed: {why}. "
                                    "The labels below are not a review of this contract."))
    if s.get("represent"):
        name, mine = s["represent"]["name"], s["for_represented"]
        out.append(Block("heading", f"Highest risks for {name}, the party we act for", level=2))
        out += _top_bullets(mine["top_risks"]) or [Block("para", f"No medium or high risk borne by {name} was "
                                                                  "labelled in the clauses reviewed.")]
        if mine["bearer_not_assessed"]:
            out.append(Block("note", f"{mine['bearer_not_assessed']} flagged clause(s) have no assessed bearer: "
                                     "read them to know whom they burden."))
    out.append(Block("heading", "Highest risks", level=2))
    empty = ("No clause was labelled medium or high risk." if s.get("assessed", True)
             else "Not assessed (see above).")
    out += _top_bullets(s["top_risks"]) or [Block("para", empty)]
    out.append(Block("heading", "Parties", level=2))
    for p in s["parties"]:
        aliases = ' (also "' + '", "'.join(p["aliases"]) + '")' if p["aliases"] else ""
        out.append(Block("bullet", f"{p['role'].replace('_', ' ').capitalize()}: {p['name']}{aliases}"))
    out.append(Block("heading", "Usual clauses", level=2))
    out.append(Block("table", rows=_usual_rows(review), widths=(0.25, 0.15, 0.6)))
    return out


def _findings(review: Review) -> list[Block]:
    findings = report_findings(review)
    out = [Block("heading", "Findings")]
    if not findings:
        out.append(Block("para", "No clause was labelled with a risk."))
    for f in findings:
        out.append(Block("finding", finding_heading(f), level=2, risk=f.risk))
        out.append(Block("risk", risk_line(f), risk=f.risk))
        out.append(Block("para", f"Why: {f.reason}"))
        out.append(Block("quote", f.text))
    rest = len(review.findings) - len(findings)
    if rest:
        out.append(Block("note", f"{rest} further clauses carry no risk label; the CSV and JSON exports list every "
                                 "clause with its labels, and the table below every type that was checked."))
    return out


def _appendix(review: Review) -> list[Block]:
    c, m, secs = review.contract, review.model, review.seconds
    kinds: dict[str, int] = {}
    for seg in review.segments:
        kinds[seg["kind"]] = kinds.get(seg["kind"], 0) + 1
    not_labelled = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items())) or "none"
    return [
        Block("heading", "Appendix: how this review was made"),
        Block("para", f"Model: {m['name']} ({m['model_version']}); chosen as {m['choice']}."),
        Block("para", f"Reviewed {review.created_at}: {c['clauses']} clauses in {secs.get('total', 0):.1f} s "
                      f"(segmenting {secs.get('segment', 0):.1f} s, labelling {secs.get('predict', 0):.1f} s)."),
        Block("para", f"Passages kept as they are, not labelled as clauses: {not_labelled}."),
        Block("para", "Each clause's type, obliged party, risk, bearer and reason come from the model; the figures "
                      "quoted in a reason are read from the clause's own words; the usual clauses are claimed "
                      "missing only when the contract is in English, reads like a contract and none of their words "
                      "appear in it."),
    ]


def report_blocks(review: Review, notice: str | None = None) -> list[Block]:
    c = review.contract
    pages = f", {c['pages']} pages" if c.get("pages") else ""
    out = [Block("title", f"Contract review: {c['name']}"),
           Block("para", f"File: {c['name']} ({c['kind']}{pages}, {c['chars']:,} characters, {c['clauses']} "
                         f"clauses). Reviewed {review.created_at[:10]}."),
           Block("note", DISCLAIMER)]
    out += [Block("warning", w) for w in review.warnings]
    if notice:
        out.append(Block("warning", notice))
    out += _summary(review) + _findings(review)
    out += [Block("heading", "What was checked"),
            Block("para", "Every clause type the review looks for, by area: where it was found with its highest "
                          "risk, and the types not found."),
            Block("table", rows=_checked_rows(review), widths=(0.2, 0.45, 0.35))]
    out += _appendix(review)
    return out


__all__ = ["Block", "DISCLAIMER", "NOT_CHECKED", "RISK_RGB", "footer_text", "header_text", "report_blocks",
           "report_findings"]
