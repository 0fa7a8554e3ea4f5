"""The reports a lawyer forwards: DOCX and PDF with headings, page numbers, header and footer,
what was checked, model ids only in the appendix; CSV and JSON for tools; fonts for every script."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from app_files import SAMPLE

from contract_review.app.export import export_warnings, report_findings, to_csv, to_docx, to_json, to_pdf, write_exports
from contract_review.app.fonts import ReportFonts, dejavu, report_fonts
from contract_review.app.ingest import read_text
from contract_review.app.predictors import load_predictor
from contract_review.app.review import Review, review_contract
from contract_review.predictor import parse_model
from contract_review.taxonomy import load_taxonomy

CHINESE = ("采购合同\n\n甲方（买方）：上海华信贸易有限公司\n乙方（卖方）：深圳明达电子科技有限公司\n\n"
           "第一条 乙方向甲方供应电子元器件，合同总金额为人民币伍拾万元整。\n\n"
           "第二条 乙方应于本合同签订之日起三十日内将全部货物交付至甲方指定地点。")


@pytest.fixture(scope="module")
def rules():
    return load_predictor(parse_model("rules"))


@pytest.fixture(scope="module")
def review(rules) -> Review:
    return review_contract(read_text(SAMPLE, "msa.txt"), rules, represent="Beta Logistics LLC")


def _pdf_text(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages]


def test_json_and_csv_carry_every_clause_with_its_citation_and_bearer(review):
    assert Review.from_dict(json.loads(to_json(review))).to_dict() == review.to_dict()
    rows = list(csv.DictReader(io.StringIO(to_csv(review).decode("utf-8-sig"))))
    assert [r["clause"] for r in rows] == [f.text for f in review.findings]
    assert [r["ref"] for r in rows] == [f.ref for f in review.findings]
    nc = next(r for r in rows if r["ref"] == "4 Non-Compete")
    assert (nc["risk_to_name"], nc["severity"]) == ("Beta Logistics LLC", "high")


def test_the_word_report_has_a_heading_per_finding_page_numbers_header_footer_and_what_was_checked(review):
    from docx import Document

    data = to_docx(review)
    doc = Document(io.BytesIO(data))
    headings = [p.text for p in doc.paragraphs if p.style.name == "Heading 2"]
    findings = report_findings(review)
    assert findings and all(f"{f.where}: {', '.join(f.type_names)}" in headings for f in findings)
    body = "\n".join(p.text for p in doc.paragraphs)
    for f in findings:
        assert f.text in body and f"Borne by: {f.risk_to_name}" in body
    assert "Highest risks for Beta Logistics LLC, the party we act for" in headings
    section = doc.sections[0]
    assert "Contract review: msa.txt" in section.header.paragraphs[0].text
    footer_xml = section.footer.paragraphs[0]._p.xml
    assert "PAGE" in footer_xml and "NUMPAGES" in footer_xml and "not legal advice" in section.footer.paragraphs[0].text
    # what was checked: every clause type by area, found or not
    cells = "\n".join(c.text for t in doc.tables for row in t.rows for c in row.cells)
    for ct in load_taxonomy().clause_types:
        if ct.id != "other":
            assert ct.name in cells, ct.name
    assert "Non-Compete: 4 Non-Compete (high)" in cells
    # model ids only in the appendix
    version = review.model["model_version"]
    appendix = body.index("Appendix: how this review was made")
    assert version in body[appendix:] and version not in body[:appendix]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert version not in z.read("word/header1.xml").decode() + z.read("word/footer1.xml").decode()


def test_the_pdf_report_has_header_page_numbers_and_the_same_content(review):
    pages = _pdf_text(to_pdf(review))
    n = len(pages)
    for i, page in enumerate(pages, start=1):
        assert page.startswith("Contract review: msa.txt · confidential") and f"Page {i} of {n}" in page
    text = " ".join(pages)
    for f in report_findings(review):
        assert f"{f.where}: {', '.join(f.type_names)}" in text
        assert " ".join(f.text.split())[:60] in text
    assert "What was checked" in text and "Highest risks for Beta Logistics LLC" in text
    version = review.model["model_version"]
    assert text.index(version) > text.index("Appendix: how this review was made")


def test_unicode_survives_the_pdf_report(rules):
    review = review_contract(read_text(SAMPLE.replace('("Beta")', "(\u201cBeta\u201d) \u2014 \u00a7 5 \u00e9"), "x.txt"),
                             rules)
    assert "Contract review" in " ".join(_pdf_text(to_pdf(review)))


def test_a_chinese_contract_prints_its_party_names_with_an_embedded_cjk_font(rules):
    fonts = report_fonts()
    if not any(f.family == "droid" for f in fonts.extra):
        pytest.skip("Debian's fonts-droid-fallback is not installed (`make fonts`)")
    review = review_contract(read_text(CHINESE, "采购合同.txt"), rules, anyway=True)
    data = to_pdf(review)
    text = " ".join(_pdf_text(data))
    assert "上海华信贸易有限公司" in text and "深圳明达电子科技有限公司" in text
    assert b"DroidSansFallback" in data and export_warnings(review, "pdf") == []


def test_without_a_cjk_font_the_pdf_and_the_app_say_which_characters_cannot_be_shown(rules, monkeypatch):
    review = review_contract(read_text(CHINESE, "采购合同.txt"), rules, anyway=True)
    bare = ReportFonts(dejavu(), (), (("droid", "Chinese and Japanese", "fonts-droid-fallback"),))
    notice = bare.notice(review.text)
    assert notice.startswith("This PDF cannot show") and "Han" in notice and "fonts-droid-fallback" in notice
    text = " ".join(_pdf_text(to_pdf(review, fonts=bare)))
    assert "Warning: This PDF cannot show" in text
    monkeypatch.setattr("contract_review.app.export_pdf.report_fonts", lambda: bare)
    assert export_warnings(review, "pdf") == [notice]


def test_write_exports_refuses_unknown_format(review, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        write_exports(review, tmp_path, ["xlsx"])
