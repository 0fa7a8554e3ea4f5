"""The page's views of a review as HTML and tables: plain functions, tested without a browser.

Every piece of text that comes from a contract or a model is escaped here; nothing else
builds HTML for the page.
"""

from __future__ import annotations

import html

import pandas as pd

from contract_review.taxonomy import load_taxonomy

from .jobs import Job
from .review import Review, party_display
from .summary import FOUND, MENTIONED, NOT_FOUND, quote, risk_order

ALL = "All"
SORTS = ("Position in contract", "Risk (highest first)", "Confidence (lowest first)", "Clause type", "Risk borne by")
TABLE_COLUMNS = ["#", "Section", "Risk", "Clause type", "Borne by", "Obliges", "Reason", "Clause"]
RISK_LABEL = {"high": "HIGH", "medium": "MEDIUM", "low": "low", "none": "none"}
CONTEXT_CHARS = 450
NEUTRAL = "neutral"  # the represent choice for "no party": the summary lists risks for nobody in particular

CSS = """
.clause.risk-high {background:#fde2e2; border-bottom:2px solid #c81e1e; color:#111;}
.clause.risk-medium {background:#fff1dc; border-bottom:2px solid #d97706; color:#111;}
.clause.risk-low {background:#e8f0fd; color:#111;}
.clause.focus {outline:3px solid #1c64f2; outline-offset:1px;}
#contract-view {white-space:pre-wrap; font-family:Georgia,'Times New Roman',serif; line-height:1.55;
  max-height:75vh; overflow-y:auto; padding:12px; border:1px solid #ddd; border-radius:6px; background:#fff; color:#111;}
#context-view .ctx {white-space:pre-wrap; font-family:Georgia,serif; line-height:1.5; color:#333;
  background:#fff; padding:10px; border:1px solid #ddd; border-radius:6px;}
.badge {display:inline-block; padding:1px 8px; border-radius:10px; font-weight:600; font-size:0.85em; color:#fff;}
.badge.risk-high {background:#c81e1e;} .badge.risk-medium {background:#d97706;}
.badge.risk-low {background:#3f83f8;} .badge.risk-none {background:#6b7280;}
.cr-summary {color:#111; background:#fff; border:1px solid #ddd; border-radius:8px; padding:12px 16px;}
.cr-summary h3 {margin:6px 0 6px 0;}
.cr-counts {display:flex; gap:10px; flex-wrap:wrap; margin-bottom:8px;}
.cr-count {border-radius:8px; padding:6px 14px; min-width:90px; text-align:center; color:#fff;}
.cr-count b {font-size:1.5em; display:block;}
.cr-count.risk-high {background:#c81e1e;} .cr-count.risk-medium {background:#d97706;}
.cr-count.risk-low {background:#3f83f8;} .cr-count.risk-none {background:#6b7280;}
.cr-cols {display:flex; gap:24px; flex-wrap:wrap;} .cr-cols > div {flex:1; min-width:260px;}
.cr-summary li {margin-bottom:4px;} .cr-muted {color:#555; font-size:0.9em;}
.cr-warning {background:#fff4e5; border-left:4px solid #c81e1e; color:#111; padding:8px 12px; margin:8px 0;}
.cr-progress progress {width:100%; height:14px;}
#status {min-height:1.5em;}
#clause-table, #clause-table * {font-family:ui-sans-serif,system-ui,sans-serif !important;}
"""


def badge(risk: str) -> str:
    return f'<span class="badge risk-{html.escape(risk)}">{html.escape(RISK_LABEL.get(risk, risk))}</span>'


def warnings_html(warnings: list[str]) -> str:
    return "".join(f'<div class="cr-warning" role="alert">{html.escape(w)}</div>' for w in warnings)


def _risk_items(rows: list[dict], empty: str) -> str:
    esc = html.escape
    return "".join(
        f'<li>{badge(t["risk"])} <b>{esc(t["where"])}</b>: {esc(t["type"])} &middot; borne by '
        f'<b>{esc(t["risk_to_name"])}</b>'
        f'<br><span class="cr-muted">{esc(t["reason"])}</span></li>' for t in rows[:6]) or f"<li>{esc(empty)}</li>"


def _usual_html(usual: list[dict]) -> str:
    esc, out = html.escape, []
    for u in usual:
        if u["status"] == FOUND:
            detail = "found: " + "; ".join(u["where"])
        elif u["status"] == MENTIONED:
            detail = f"mentioned in {'; '.join(u['where'])}, but no clause was labelled as such: check it"
        elif u["status"] == NOT_FOUND:
            detail = f"not found. {u['why']}"
        else:
            detail = "not checked: the review could not judge this text"
        out.append(f'<li data-status="{esc(u["status"])}"><b>{esc(u["clause"])}</b>: {esc(detail)}</li>')
    return "".join(out)


def summary_html(review: Review) -> str:
    s, esc = review.summary, html.escape
    counts = "".join(f'<div class="cr-count risk-{lvl}"><b>{n}</b>{"no" if lvl == "none" else esc(lvl)} risk</div>'
                     for lvl, n in s["risk_counts"].items())
    assessed = s.get("assessed", True)
    empty = "No medium or high risk clause was found." if assessed else "Not assessed: see the warning above."
    mine = ""
    if s.get("represent"):
        name, rep = s["represent"]["name"], s["for_represented"]
        unknown = (f'<div class="cr-muted">{rep["bearer_not_assessed"]} flagged clause(s) have no assessed bearer: '
                   "read them to know whom they burden.</div>") if rep["bearer_not_assessed"] else ""
        mine = (f'<h3 id="represented">Highest risks for {esc(name)} (the party you act for)</h3>'
                f'<ol>{_risk_items(rep["top_risks"], f"No medium or high risk borne by {name} was found.")}</ol>'
                + unknown)
    parties = "".join(
        f'<li><b>{esc(p["name"])}</b> ({esc(p["role"].replace("_", " "))})'
        + (f' &middot; also &ldquo;{esc("”, “".join(p["aliases"]))}&rdquo;' if p["aliases"] else "") + "</li>"
        for p in s["parties"]) or "<li>No parties found in the opening.</li>"
    extra = []
    if s.get("unlabelled"):
        extra.append(f'{s["unlabelled"]} clauses could not be labelled by the model: review them by hand.')
    if s.get("corrected"):
        extra.append(f'{s["corrected"]} label(s) corrected by a reviewer.')
    c = review.contract
    pages = f'{c["pages"]} pages, ' if c.get("pages") else ""
    return (
        f'<div class="cr-summary" id="summary-view"><h3>{esc(c["name"])}</h3>'
        + warnings_html(review.warnings)
        + f'<div class="cr-muted">{c["clauses"]} clauses, {pages}{c["chars"]:,} characters &middot; reviewed in '
        f'{review.seconds.get("total", 0):.1f} s &middot; a first pass for a lawyer, not legal advice</div>'
        f'<div class="cr-counts">{counts}</div>'
        + (f'<div class="cr-muted">{esc(" ".join(extra))}</div>' if extra else "")
        + f'<div class="cr-cols"><div>{mine}<h3>Highest risks</h3><ol id="top-risks">{_risk_items(s["top_risks"], empty)}'
        f'</ol></div><div><h3>Parties</h3><ul>{parties}</ul><h3>Usual clauses</h3>'
        f'<ul id="usual-list">{_usual_html(s.get("usual", []))}</ul></div></div></div>'
    )


def contract_html(review: Review, focus: int | None = None) -> str:
    """The whole contract, each clause a span (`clause-N`) coloured by its risk level."""
    out, pos, text = [], 0, review.text
    for f in review.findings:
        out.append(html.escape(text[pos : f.start]))
        classes = f"clause risk-{f.risk}" + (" focus" if f.index == focus else "")
        title = f"{f.where}: {f.risk} risk, {', '.join(f.type_names)}; borne by {f.risk_to_name}"
        out.append(f'<span class="{classes}" id="clause-{f.index}" title="{html.escape(title)}">'
                   f"{html.escape(text[f.start:f.end])}</span>")
        pos = f.end
    out.append(html.escape(text[pos:]))
    legend = (f'<div class="cr-muted" style="margin-bottom:6px">Highlighted: {badge("high")} {badge("medium")} '
              f'{badge("low")} risk. Hover a clause for its labels.</div>')
    return legend + f'<div id="contract-view">{"".join(out)}</div>'


def context_html(review: Review, index: int) -> str:
    f = review.finding(index)
    text = review.text
    a = max(0, f.start - CONTEXT_CHARS)
    b = min(len(text), f.end + CONTEXT_CHARS)
    if a > 0:
        a = text.find(" ", a) + 1 or a
    if b < len(text):
        b = text.rfind(" ", f.end, b) if text.rfind(" ", f.end, b) > 0 else b
    esc = html.escape
    severity = f.severity or "not assessed"
    head = (f'<div><b data-index="{f.index}">{esc(f.where)}</b> {badge(f.risk)} {esc(", ".join(f.type_names))}'
            f' &middot; risk borne by <b>{esc(f.risk_to_name)}</b> (severity {esc(severity)}) &middot; obliges '
            f'<b>{esc(f.party_name)}</b> &middot; confidence {f.confidence:.0%}'
            + (" &middot; <i>corrected</i>" if f.corrected else "") + "</div>"
            f'<div class="cr-muted" style="margin:4px 0 8px 0">{esc(f.reason)}</div>')
    body = (("…" if a > 0 else "") + esc(text[a : f.start]) +
            f'<span class="clause risk-{f.risk} focus">{esc(text[f.start:f.end])}</span>' +
            esc(text[f.end : b]) + ("…" if b < len(text) else ""))
    return f'<div id="context-view">{head}<div class="ctx">{body}</div></div>'


def table(review: Review | None, risk: str = ALL, ctype: str = ALL, party: str = ALL,
          sort: str = SORTS[0]) -> pd.DataFrame:
    if review is None:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    tax = load_taxonomy()
    rows = [f for f in review.findings
            if (risk in (ALL, None) or f.risk == risk)
            and (ctype in (ALL, None) or ctype in f.type_names)
            and (party in (ALL, None) or f.risk_to_name == party)]
    if sort == SORTS[1]:
        rows = risk_order(rows, tax)
    elif sort == SORTS[2]:
        rows = sorted(rows, key=lambda f: (f.confidence, f.index))
    elif sort == SORTS[3]:
        rows = sorted(rows, key=lambda f: (", ".join(f.type_names), f.index))
    elif sort == SORTS[4]:
        rows = sorted(rows, key=lambda f: (f.risk_to_name, f.index))
    data = [[f.index, f.where, RISK_LABEL.get(f.risk, f.risk) + (" *" if f.corrected else ""), ", ".join(f.type_names),
             f.risk_to_name, f.party_name, f.reason, quote(f.text, 120)] for f in rows]
    return pd.DataFrame(data, columns=TABLE_COLUMNS)


RISK_CELL = {"HIGH": "background-color:#fde2e2;color:#9b1c1c;font-weight:600",
             "MEDIUM": "background-color:#fff1dc;color:#8a4b00;font-weight:600",
             "low": "background-color:#e8f0fd;color:#1e429f"}


def styled(df: pd.DataFrame):
    """The table with its Risk cells coloured like the highlights in the contract."""
    return df.style.map(lambda v: RISK_CELL.get(str(v).rstrip(" *"), ""), subset=["Risk"])


def party_choices(review: Review | None) -> list[tuple[str, str]]:
    """The party labels (obliged, bearer), named as in this contract."""
    parties = review.parties if review else {}
    return [(f"{party_display(p, parties)} ({p.replace('_', ' ')})" if p != "none" else "no one (none)", p)
            for p in load_taxonomy().parties]


def represent_choices(parties: dict | None) -> list[tuple[str, str]]:
    """Whom the user acts for: each of the two parties by name, or neither."""
    out = [("Neither: no party in particular", NEUTRAL)]
    for role in ("first_party", "second_party"):
        if parties and parties.get(role):
            out.append((f"{parties[role]} ({role.replace('_', ' ')})", role))
    return out


def filter_choices(review: Review | None) -> tuple[list[str], list[str], list[str]]:
    tax = load_taxonomy()
    if review is None:
        return [ALL], [ALL], [ALL]
    risks = [lvl for lvl in reversed(tax.risk_levels) if any(f.risk == lvl for f in review.findings)]
    types = sorted({n for f in review.findings for n in f.type_names})
    bearers = sorted({f.risk_to_name for f in review.findings})
    return [ALL, *risks], [ALL, *types], [ALL, *bearers]


def progress_html(job: Job, name: str, waiting_others: int = 0) -> str:
    """Where a running review is: reading, waiting for the model, clauses labelled of all, seconds."""
    esc = html.escape
    if job.stage == "labelling" and job.total:
        bar = f'<progress value="{job.done}" max="{job.total}"></progress>'
        what = f"Labelling clauses: {job.done} of {job.total}"
    elif job.stage == "waiting":
        bar = f'<progress value="{job.done}" max="{max(job.total, 1)}"></progress>'
        what = (f"Waiting for the model ({waiting_others} other review(s) ahead): {job.done} of {job.total} "
                "clauses labelled")
    else:
        bar, what = "<progress></progress>", "Reading the contract and finding its clauses"
    return (f'<div class="cr-progress" id="review-progress"><b>{esc(name)}</b>: <span id="progress-text">{esc(what)}'
            f'</span> &middot; {job.elapsed:.0f} s{bar}</div>')
