"""Exports of a review: a DOCX or PDF report for people, CSV and JSON for tools.

    write_exports(review, out_dir, formats=("docx", "pdf", "csv", "json"))  # -> {format: path}

- JSON: `Review.to_dict()`, the same object the app's API returns; every clause with its
  offsets, labels, confidence and text.
- CSV: one row per clause (UTF-8 with a byte-order mark, so Excel shows quotes and accents).
- DOCX / PDF report: parties, counts by risk, usual clauses that are missing, then every
  finding (high, medium, then low risk) with its type, obligated party, reason, confidence
  and the clause quoted in full. Clauses with no risk are left to the CSV/JSON.

The PDF uses DejaVu Sans from matplotlib's data (a dependency already) because contracts are
full of typographic quotes and accents that PDF's built-in fonts cannot show.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from contract_review.taxonomy import load_taxonomy

from .review import Finding, Review
from .summary import risk_order

FORMATS = ("docx", "pdf", "csv", "json")
DISCLAIMER = ("Machine-generated first pass for a lawyer's review, not legal advice: check every finding "
              "against the contract.")
RISK_RGB = {"high": (180, 20, 20), "medium": (190, 100, 0), "low": (40, 90, 160), "none": (90, 90, 90)}
CSV_COLUMNS = ("index", "start", "end", "risk", "risk_category", "clause_types", "type_names", "party",
               "party_name", "confidence", "reason", "corrected", "error", "clause")


def report_stem(review: Review) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(review.contract["name"]).stem).strip("_") or "contract"
    return f"{stem[:80]}.review"


def write_exports(review: Review, out_dir: str | Path, formats: Iterable[str] = FORMATS,
                  stem: str | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or report_stem(review)
    paths = {}
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
        path = out / f"{stem}.{fmt}"
        path.write_bytes(render(review, fmt))
        paths[fmt] = path
    return paths


def render(review: Review, fmt: str) -> bytes:
    return {"json": to_json, "csv": to_csv, "docx": to_docx, "pdf": to_pdf}[fmt](review)


def to_json(review: Review) -> bytes:
    return (json.dumps(review.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def to_csv(review: Review) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for f in review.findings:
        w.writerow([f.index, f.start, f.end, f.risk, f.risk_category, ";".join(f.clause_types),
                    "; ".join(f.type_names), f.party, f.party_name, f"{f.confidence:.4f}", f.reason,
                    "yes" if f.corrected else "", f.error or "", f.text])
    return buf.getvalue().encode("utf-8-sig")


# -- the report's content, shared by DOCX and PDF --------------------------------------------------

def report_findings(review: Review) -> list[Finding]:
    """What the report lists: every clause with some risk, highest first."""
    tax = load_taxonomy()
    return [f for f in risk_order(review.findings, tax) if f.risk != "none"]


def _meta_lines(review: Review) -> list[str]:
    c, m = review.contract, review.model
    pages = f", {c['pages']} pages" if c.get("pages") else ""
    return [f"File: {c['name']} ({c['kind']}{pages}, {c['chars']:,} characters, {c['clauses']} clauses)",
            f"Reviewed: {review.created_at} with {m['name']} ({m['model_version']})",
            DISCLAIMER]


def _party_lines(review: Review) -> list[str]:
    out = []
    for p in review.summary["parties"]:
        aliases = ' (also "' + '", "'.join(p["aliases"]) + '")' if p["aliases"] else ""
        out.append(f"{p['role'].replace('_', ' ').capitalize()}: {p['name']}{aliases}")
    return out or ["No parties were found in the contract's opening."]


def _finding_head(f: Finding) -> str:
    mark = " (corrected by reviewer)" if f.corrected else ""
    return (f"Clause {f.index}: {f.risk.upper()} risk, {', '.join(f.type_names)}{mark}")


def _finding_lines(f: Finding) -> list[str]:
    return [f"Obliges: {f.party_name}.  Confidence: {f.confidence:.0%}.  Characters {f.start}-{f.end}.",
            f"Why: {f.reason}"]


def _counts_line(review: Review) -> str:
    counts = review.summary["risk_counts"]
    return ", ".join(f"{n} {level}" for level, n in counts.items())


def _no_risk_note(review: Review, listed: int) -> str:
    rest = len(review.findings) - listed
    return (f"{rest} further clauses carry no risk label; the CSV and JSON exports list every clause "
            "with its labels.") if rest else ""


def to_docx(review: Review) -> bytes:
    from docx import Document
    from docx.shared import Pt, RGBColor

    doc = Document()
    doc.core_properties.title = f"Contract review: {review.contract['name']}"
    doc.core_properties.author = "contract-review"
    doc.add_heading(f"Contract review: {review.contract['name']}", level=0)
    for line in _meta_lines(review):
        doc.add_paragraph(line)

    doc.add_heading("Summary", level=1)
    doc.add_paragraph(f"Clauses by risk: {_counts_line(review)}.")
    doc.add_heading("Parties", level=2)
    for line in _party_lines(review):
        doc.add_paragraph(line, style="List Bullet")
    doc.add_heading("Usual clauses not found", level=2)
    if review.summary["missing"]:
        for m in review.summary["missing"]:
            p = doc.add_paragraph(style="List Bullet")
            p.add_run(f"{m['clause']}: ").bold = True
            p.add_run(m["why"])
    else:
        doc.add_paragraph("Every usual clause was found.")

    findings = report_findings(review)
    doc.add_heading("Findings", level=1)
    if not findings:
        doc.add_paragraph("No clause was labelled with a risk.")
    for f in findings:
        h = doc.add_paragraph()
        run = h.add_run(_finding_head(f))
        run.bold = True
        run.font.color.rgb = RGBColor(*RISK_RGB.get(f.risk, (0, 0, 0)))
        for line in _finding_lines(f):
            doc.add_paragraph(line)
        q = doc.add_paragraph(style="Intense Quote")
        q.add_run(f.text).font.size = Pt(9.5)
    note = _no_risk_note(review, len(findings))
    if note:
        doc.add_paragraph(note)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _dejavu() -> tuple[Path, Path] | None:
    try:
        import matplotlib

        root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None
    regular, bold = root / "DejaVuSans.ttf", root / "DejaVuSans-Bold.ttf"
    return (regular, bold) if regular.exists() and bold.exists() else None


def to_pdf(review: Review) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(f"Contract review: {review.contract['name']}")
    pdf.set_creator("contract-review")
    fonts = _dejavu()
    if fonts:
        pdf.add_font("DejaVu", "", str(fonts[0]))
        pdf.add_font("DejaVu", "B", str(fonts[1]))
        family = "DejaVu"

        def clean(s: str) -> str:
            return s
    else:  # built-in fonts: Latin-1 only
        family = "Helvetica"

        def clean(s: str) -> str:
            s = s.translate(str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "..."}))
            return s.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()

    def text(s: str, size: float = 10, bold: bool = False, rgb=(0, 0, 0), h: float = 5, fill: bool = False,
             indent: float = 0) -> None:
        pdf.set_font(family, "B" if bold else "", size)
        pdf.set_text_color(*rgb)
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(pdf.epw - indent, h, clean(s), fill=fill, new_x="LMARGIN", new_y="NEXT")

    text(f"Contract review: {review.contract['name']}", size=16, bold=True, h=8)
    for line in _meta_lines(review):
        text(line, size=9, rgb=(70, 70, 70))
    pdf.ln(3)
    text("Summary", size=13, bold=True, h=7)
    text(f"Clauses by risk: {_counts_line(review)}.")
    pdf.ln(1)
    text("Parties", size=11, bold=True, h=6)
    for line in _party_lines(review):
        text(f"• {line}", indent=3)
    pdf.ln(1)
    text("Usual clauses not found", size=11, bold=True, h=6)
    for m in review.summary["missing"] or [{"clause": "None", "why": "every usual clause was found."}]:
        text(f"• {m['clause']}: {m['why']}", indent=3)
    pdf.ln(3)
    text("Findings", size=13, bold=True, h=7)
    findings = report_findings(review)
    if not findings:
        text("No clause was labelled with a risk.")
    pdf.set_fill_color(243, 243, 243)
    for f in findings:
        pdf.ln(2)
        text(_finding_head(f), size=10.5, bold=True, rgb=RISK_RGB.get(f.risk, (0, 0, 0)))
        for line in _finding_lines(f):
            text(line, size=9.5)
        text(" ".join(f.text.split()), size=9, rgb=(40, 40, 40), fill=True, indent=4, h=4.5)
    note = _no_risk_note(review, len(findings))
    if note:
        pdf.ln(3)
        text(note, size=9, rgb=(70, 70, 70))
    return bytes(pdf.output())
