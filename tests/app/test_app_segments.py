"""Segmentation and language of the text layers the app reads: a PDF printed with running
headers and "Page N of M" footers, and DOCX files, made here with the libraries word
processors use."""

import warnings

from app_files import make_docx, make_paged_pdf

from contract_review.annotation.language import detect_language
from contract_review.annotation.segment import segment
from contract_review.app.ingest import read_bytes

HEADER = "Supply Agreement – Acme / Beta – CONFIDENTIAL"

CONTRACT = """SUPPLY AGREEMENT

This Supply Agreement (the "Agreement") is made as of January 5, 2021 between Acme Widgets Corp., a Delaware corporation ("Buyer"), and Beta Parts Ltd., an English company ("Supplier").

ARTICLE I
PERFORMANCE

Section 1.04 Supplier shall deliver the Products in accordance with the Specifications and shall pay Buyer $50,000 per year for 10 years as a service credit.

6.02. Termination. This Agreement may be terminated only:

(a) by mutual written agreement of the parties;

(b) by either party upon sixty (60) days' prior written notice if the other party undergoes a change of control, including any merger, acquisition of a majority of its voting shares or sale of all or substantially all of its assets to a competitor of the terminating party; or

(c) by Buyer for convenience at any time upon ninety (90) days' prior written notice to Supplier, provided that Buyer pays the termination fee set out in Schedule 2 within thirty days of such notice.

7. Notices. All notices under this Agreement shall be in writing and sent to:

Acme Widgets Corp.
123 Main Street, Suite 400
New York, NY 10001
Attention: General Counsel

8. Payment. All payments shall be made by wire transfer to the following account:

Bank: First National Bank
Account Number: 123456789
ABA Routing Number: 021000021
SWIFT: FNBAUS33

{covenants}

IN WITNESS WHEREOF, the parties have executed this Agreement as of the date first written above.

ACME WIDGETS CORP.
By: /s/ Jane Doe
Name: Jane Doe
Title: Chief Executive Officer
"""

COVENANTS = "\n\n".join(
    f"{9 + i}. Records {i + 1}. The Supplier shall keep complete and accurate records of every shipment made under "
    f"this Agreement and shall make them available to the Buyer during business hours on reasonable notice, "
    f"for {i + 2} years after the shipment concerned." for i in range(14))


def _pdf_text() -> tuple[str, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fpdf2 notes that it fixed the A5 size in a past release
        data = make_paged_pdf(CONTRACT.format(covenants=COVENANTS), HEADER, "Initialed ______")
    contract = read_bytes(data, "supply.pdf")
    return contract.text, contract.pages


def test_running_headers_and_page_footers_of_a_pdf_never_reach_a_clause():
    text, pages = _pdf_text()
    assert pages >= 4 and text.count(HEADER) == pages and text.count("Initialed ______") == pages
    segs = segment(text, furniture=True)
    for s in segs:
        if s.kind != "furniture":
            assert HEADER not in s.clean and "Page " not in s.clean and "Initialed" not in s.clean, s.ref
    assert sum(s.kind == "furniture" or bool(s.gaps) for s in segs) >= pages
    # a clause broken by a page break is one clause again, the page's furniture cut out of its words
    broken = [s for s in segs if s.kind != "furniture" and s.gaps]
    assert broken and all(HEADER in s.text for s in broken)
    records = [s for s in segs if s.clean.startswith(tuple(f"{9 + i}. Records" for i in range(14)))]
    assert len(records) == 14 and all(s.clean.endswith("after the shipment concerned.") for s in records)


def test_a_pdf_text_layer_keeps_numbers_headings_lead_ins_and_blocks():
    text, _ = _pdf_text()
    segs = [s for s in segment(text) if s.kind != "furniture"]
    by_number = {s.number: s for s in segs if s.kind == "clause"}
    assert by_number["Section 1.04"].ref == "Section 1.04 PERFORMANCE"
    b = by_number["6.02(b)"]
    assert b.context.endswith("This Agreement may be terminated only:") and "change of control" in b.clean
    kinds = [(s.kind, s.number) for s in segs if s.kind in ("address", "payment_details", "signature")]
    assert kinds == [("address", "7"), ("payment_details", "8"), ("signature", None)]
    assert by_number["8"].clean.endswith("to the following account:")


def test_a_docx_text_layer_segments_like_the_text():
    contract = read_bytes(make_docx(CONTRACT.format(covenants="")), "supply.docx")
    got = [(s.kind, s.number) for s in segment(contract.text)]
    assert got[:3] == [("clause", None), ("heading", "ARTICLE I"), ("clause", "Section 1.04")]
    assert ("address", "7") in got and ("payment_details", "8") in got and got[-1][0] == "signature"


def test_a_chinese_docx_reads_as_chinese_and_is_flagged():
    text = ("采购合同\n\n甲方（买方）：上海华信贸易有限公司\n乙方（卖方）：深圳明达电子科技有限公司\n\n"
            "第一条 乙方向甲方供应电子元器件，合同总金额为人民币伍拾万元整。\n\n"
            "第二条 乙方应于本合同签订之日起三十日内将全部货物交付至甲方指定地点。")
    report = detect_language(read_bytes(make_docx(text), "采购合同.docx").text)
    assert report.language == "zh" and not report.supported and "Chinese" in report.warning()
