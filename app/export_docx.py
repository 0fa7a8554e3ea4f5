"""The Word report: `app.report`'s blocks as a document a partner can forward.

Headings are Word's own styles (Heading 1 for sections, Heading 2 for each finding, so the
navigation pane lists the findings), the header names the contract, the footer carries the
disclaimer and "Page N of M" as Word fields (Word fills them in when it lays the pages out),
tables use the built-in grid style, and East Asian text is given a CJK font name so Word
shows Chinese, Japanese and Korean clauses with the reader's fonts.
"""

from __future__ import annotations

import io

from .report import RISK_RGB, Block, footer_text, header_text, report_blocks
from .review import Review

EAST_ASIAN_FONT = "SimSun"  # Word substitutes the reader's CJK font when this one is absent


def _field(paragraph, instruction: str) -> None:
    """A Word field (PAGE, NUMPAGES) in a paragraph; Word computes its value when it lays out the pages."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    run = paragraph.add_run()
    for kind, text in (("begin", None), (None, instruction), ("separate", None), (None, "1"), ("end", None)):
        if kind:
            el = OxmlElement("w:fldChar")
            el.set(qn("w:fldCharType"), kind)
        elif text == instruction:
            el = OxmlElement("w:instrText")
            el.set(qn("xml:space"), "preserve")
            el.text = f" {instruction} "
        else:
            el = OxmlElement("w:t")
            el.text = text
        run._r.append(el)


def _east_asian(doc) -> None:
    from docx.oxml.ns import qn

    for name in ("Normal", "Heading 1", "Heading 2", "Title", "Intense Quote"):
        rpr = doc.styles[name].element.get_or_add_rPr()
        rfonts = rpr.find(qn("w:rFonts"))
        if rfonts is None:
            rfonts = rpr.makeelement(qn("w:rFonts"), {})
            rpr.append(rfonts)
        rfonts.set(qn("w:eastAsia"), EAST_ASIAN_FONT)


def _table(doc, block: Block) -> None:
    from docx.shared import Pt

    table = doc.add_table(rows=0, cols=len(block.rows[0]))
    table.style = "Table Grid"
    for i, row in enumerate(block.rows):
        cells = table.add_row().cells
        for cell, value in zip(cells, row):
            cell.text = ""
            lines = str(value).split("\n")
            para = cell.paragraphs[0]
            for k, line in enumerate(lines):
                run = para.add_run(line)
                run.font.size = Pt(9)
                run.bold = i == 0
                if k < len(lines) - 1:
                    run.add_break()
    doc.add_paragraph()


def to_docx(review: Review) -> bytes:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt, RGBColor

    doc = Document()
    doc.core_properties.title = header_text(review)
    doc.core_properties.author = "contract-review"
    _east_asian(doc)
    section = doc.sections[0]
    head = section.header.paragraphs[0]
    head.text = f"{header_text(review)} · confidential"
    head.runs[0].font.size = Pt(8)
    foot = section.footer.paragraphs[0]
    foot.alignment = WD_ALIGN_PARAGRAPH.CENTER
    foot.add_run(f"{footer_text()} · Page ").font.size = Pt(8)
    _field(foot, "PAGE")
    foot.add_run(" of ").font.size = Pt(8)
    _field(foot, "NUMPAGES")

    for block in report_blocks(review):
        if block.kind == "title":
            doc.add_heading(block.text, level=0)
        elif block.kind in ("heading", "finding"):
            h = doc.add_heading(block.text, level=block.level)
            if block.kind == "finding":
                for run in h.runs:
                    run.font.color.rgb = RGBColor(*RISK_RGB.get(block.risk, (0, 0, 0)))
        elif block.kind == "bullet":
            doc.add_paragraph(block.text, style="List Bullet")
        elif block.kind == "risk":
            p = doc.add_paragraph()
            run = p.add_run(block.text)
            run.bold = True
            run.font.color.rgb = RGBColor(*RISK_RGB.get(block.risk, (0, 0, 0)))
        elif block.kind == "quote":
            q = doc.add_paragraph(style="Intense Quote")
            q.add_run(block.text).font.size = Pt(9.5)
        elif block.kind in ("note", "warning"):
            p = doc.add_paragraph()
            run = p.add_run(("Warning: " if block.kind == "warning" else "") + block.text)
            run.italic = block.kind == "note"
            run.bold = block.kind == "warning"
            run.font.size = Pt(9.5)
            if block.kind == "warning":
                run.font.color.rgb = RGBColor(*RISK_RGB["high"])
        elif block.kind == "table":
            _table(doc, block)
        else:
            doc.add_paragraph(block.text)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
