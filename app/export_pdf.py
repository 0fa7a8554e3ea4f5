"""The PDF report: `app.report`'s blocks on A4, with a header, a footer and "Page N of M".

Text is set flush left (never justified: a justified line with a long word spreads into wide
gaps), in DejaVu Sans with the fonts of `app.fonts` as fallbacks for Chinese, Japanese and
Korean, each embedded as a subset. When some characters of the contract have no font here,
the report says so on its first page (`pdf_notice`) instead of printing blanks silently.
"""

from __future__ import annotations

import logging

from fpdf import FPDF
from fpdf.fonts import FontFace

from .fonts import ReportFonts, report_fonts
from .report import RISK_RGB, footer_text, header_text, report_blocks
from .review import Review

# fontTools names every table it leaves out of a subset (DejaVu's TrueType hinting sources): not news; fpdf
# names the characters a font lacks, which are the contract's (never logged): `pdf_notice` says it instead
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
logging.getLogger("fpdf.output").setLevel(logging.ERROR)
_LATIN1 = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "...", "•": "-"})


def pdf_notice(review: Review, fonts: ReportFonts | None = None) -> str | None:
    """The sentence the PDF and the app show when some of the contract's characters cannot be printed."""
    fonts = fonts or report_fonts()
    return fonts.notice(review.text)


class _Report(FPDF):
    def __init__(self, review: Review, fonts: ReportFonts):
        super().__init__(format="A4")
        self.review = review
        self.family = "Helvetica"
        if fonts.base:
            self.add_font("DejaVu", "", str(fonts.base[0]))
            self.add_font("DejaVu", "B", str(fonts.base[1]))
            self.family = "DejaVu"
            fallbacks = []
            for f in fonts.needed(review.text):
                self.add_font(f.family, "", str(f.regular))
                if f.bold:  # without one, bold text falls back to the regular face (exact_match=False)
                    self.add_font(f.family, "B", str(f.bold))
                fallbacks.append(f.family)
            if fallbacks:
                self.set_fallback_fonts(fallbacks, exact_match=False)
        self.set_auto_page_break(auto=True, margin=18)
        self.set_title(header_text(review))
        self.set_creator("contract-review")

    def clean(self, s: str) -> str:
        if self.family == "DejaVu":
            return s
        return s.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")

    def header(self) -> None:
        self.set_font(self.family, "", 7.5)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, self.clean(f"{header_text(self.review)} · confidential"), new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, "", 7.5)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, self.clean(f"{footer_text()} · Page {self.page_no()} of {{nb}}"), align="C")

    def text_block(self, s: str, size: float = 10, bold: bool = False, rgb=(0, 0, 0), h: float = 5,
                   fill: bool = False, indent: float = 0) -> None:
        self.set_font(self.family, "B" if bold else "", size)
        self.set_text_color(*rgb)
        self.set_x(self.l_margin + indent)
        self.multi_cell(self.epw - indent, h, self.clean(s), fill=fill, align="L", new_x="LMARGIN", new_y="NEXT")

    def table_block(self, rows: list[list[str]], widths: tuple[float, ...]) -> None:
        self.set_font(self.family, "", 8.5)
        self.set_text_color(0, 0, 0)
        cols = tuple(w * self.epw for w in widths) if widths else None
        heading = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))
        with self.table(col_widths=cols, text_align="LEFT", line_height=4.2, headings_style=heading,
                        first_row_as_headings=True) as table:
            for row in rows:
                r = table.row()
                for value in row:
                    r.cell(self.clean(str(value)))
        self.ln(3)


def to_pdf(review: Review, fonts: ReportFonts | None = None) -> bytes:
    fonts = fonts or report_fonts()
    pdf = _Report(review, fonts)
    pdf.add_page()
    pdf.set_fill_color(243, 243, 243)
    for block in report_blocks(review, notice=pdf_notice(review, fonts)):
        if block.kind == "title":
            pdf.text_block(block.text, size=16, bold=True, h=8)
        elif block.kind == "heading":
            pdf.ln(3 if block.level == 1 else 1.5)
            pdf.text_block(block.text, size=13 if block.level == 1 else 11, bold=True, h=7 if block.level == 1 else 6)
        elif block.kind == "finding":
            pdf.ln(2)
            pdf.text_block(block.text, size=10.5, bold=True, rgb=RISK_RGB.get(block.risk, (0, 0, 0)))
        elif block.kind == "risk":
            pdf.text_block(block.text, size=9.5, bold=True, rgb=RISK_RGB.get(block.risk, (0, 0, 0)))
        elif block.kind == "bullet":
            pdf.text_block(f"• {block.text}", size=9.5, indent=3)
        elif block.kind == "quote":
            pdf.text_block(" ".join(block.text.split()), size=9, rgb=(40, 40, 40), fill=True, indent=4, h=4.5)
        elif block.kind == "note":
            pdf.text_block(block.text, size=9, rgb=(70, 70, 70))
        elif block.kind == "warning":
            pdf.text_block(f"Warning: {block.text}", size=9.5, bold=True, rgb=RISK_RGB["high"])
        elif block.kind == "table":
            pdf.table_block(block.rows, block.widths)
        else:
            pdf.text_block(block.text, size=9.5)
    return bytes(pdf.output())
