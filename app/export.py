"""Exports of a review: a DOCX or PDF report for people, CSV and JSON for tools.

    write_exports(review, out_dir, formats=("docx", "pdf", "csv", "json"))  # -> {format: path}
    export_warnings(review, "pdf")                                          # what the user must be told

- JSON: `Review.to_dict()`, the same object the app's API returns; every clause with its
  offsets, citation, labels, bearer, key terms, confidence and text.
- CSV: one row per clause (UTF-8 with a byte-order mark, so Excel shows quotes and accents).
- DOCX / PDF report (`app.report`, drawn by `export_docx` and `export_pdf`): what a client
  reads, with a header, a footer and page numbers; model ids only in its appendix.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from .export_docx import to_docx
from .export_pdf import pdf_notice, to_pdf
from .report import report_findings
from .review import Review

FORMATS = ("docx", "pdf", "csv", "json")
CSV_COLUMNS = ("index", "ref", "page", "start", "end", "risk", "risk_to", "risk_to_name", "severity", "risk_category",
               "clause_types", "type_names", "party", "party_name", "confidence", "reason", "corrected", "error",
               "clause")


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


def export_warnings(review: Review, fmt: str) -> list[str]:
    """What the user must know about an export of this format (characters a PDF cannot show)."""
    if fmt == "pdf":
        notice = pdf_notice(review)
        return [notice] if notice else []
    return []


def render(review: Review, fmt: str) -> bytes:
    return {"json": to_json, "csv": to_csv, "docx": to_docx, "pdf": to_pdf}[fmt](review)


def to_json(review: Review) -> bytes:
    return (json.dumps(review.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def to_csv(review: Review) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for f in review.findings:
        w.writerow([f.index, f.ref, f.page or "", f.start, f.end, f.risk, f.risk_to or "", f.risk_to_name,
                    f.severity or "", f.risk_category, ";".join(f.clause_types), "; ".join(f.type_names), f.party,
                    f.party_name, f"{f.confidence:.4f}", f.reason, "yes" if f.corrected else "", f.error or "", f.text])
    return buf.getvalue().encode("utf-8-sig")


__all__ = ["FORMATS", "export_warnings", "render", "report_findings", "to_csv", "to_docx", "to_json", "to_pdf",
           "write_exports"]
