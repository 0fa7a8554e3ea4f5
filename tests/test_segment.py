"""Segmentation: what a lawyer reads as one clause is one segment, with its number, heading and
context; page furniture, addresses, signatures and bank details are never glued to a clause."""

import pytest

from contract_review.annotation.furniture import find_furniture
from contract_review.annotation.segment import normalize, segment

LONG_LIST = """6.02. Termination. This Agreement may be terminated only:

(a) by mutual written agreement of the parties, signed by an authorised officer of each of them and stating the date on which the termination takes effect;

(b) by either party upon sixty (60) days' prior written notice if the other party undergoes a change of control, including any merger, acquisition of a majority of its voting shares or sale of all or substantially all of its assets to a competitor of the terminating party; or

(c) by Buyer for convenience at any time upon ninety (90) days' prior written notice to Supplier, provided that Buyer pays the termination fee set out in Schedule 2 within thirty days of such notice.
"""


def _texts(text):
    return [s.clean for s in segment(text)]


def _contract(cuad_dir, prefix):
    path = next(p for p in (cuad_dir / "full_contract_txt").glob("*.txt") if p.name.startswith(prefix))
    return path.read_text(encoding="utf-8-sig")


def test_offsets_point_at_the_clause_text_on_every_shipped_contract(cuad_dir):
    files = sorted((cuad_dir / "full_contract_txt").glob("*.txt"))
    assert len(files) == 450
    for path in files[::30]:
        text = path.read_text(encoding="utf-8")
        segs = segment(text, furniture=True)
        assert segs, path.name
        for s in segs:
            assert text[s.start : s.end] == s.text
            assert all(s.start <= a < b <= s.end for a, b in s.gaps)
        assert all(a.end <= b.start for a, b in zip(segs, segs[1:])), "segments overlap"


def test_a_sub_clause_of_a_long_list_carries_its_heading_and_the_lead_in():
    segs = segment(LONG_LIST)
    lead, b = segs[0], next(s for s in segs if s.clean.startswith("(b)"))
    # the lead-in says nothing alone: it is the heading of its items, not a clause to label
    assert lead.kind == "heading" and lead.number == "6.02" and lead.heading == "Termination"
    assert b.kind == "clause"
    assert (b.number, b.heading, b.ref) == ("6.02(b)", "Termination", "6.02(b) Termination")
    assert b.context == "6.02. Termination. This Agreement may be terminated only:"
    assert b.fragment and b.model_text == b.context + "\n" + b.clean
    assert [s.number for s in segs] == ["6.02", "6.02(a)", "6.02(b)", "6.02(c)"]


def test_short_lists_stay_whole_with_their_lead_in():
    short = "The business shall include: (a) the purchase of Products; (b) the sale of Products."
    assert _texts(short) == [short]
    lines = "7.3 Termination. Either party may terminate this Agreement:\n(a) on a material breach;\n(b) on insolvency.\n"
    (seg,) = segment(lines)
    assert seg.number == "7.3" and seg.kind == "clause" and seg.clean.endswith("(b) on insolvency.")


def test_headings_become_the_heading_and_context_of_the_clauses_under_them():
    text = (
        "ARTICLE 5\nTERMINATION\n\n"
        "5.1 Term. This Agreement shall remain in force for three (3) years.\n"
        "5.2 Termination for Convenience. Either party may terminate this Agreement on ninety days' notice.\n"
        "\nPERFORMANCE\n\n"
        "Section 1.04 The Supplier shall perform the Services with due care and skill.\n"
    )
    segs = segment(text)
    assert [(s.kind, s.number, s.heading) for s in segs] == [
        ("heading", "ARTICLE 5", "TERMINATION"),
        ("clause", "5.1", "Term"),
        ("clause", "5.2", "Termination for Convenience"),
        ("heading", None, "PERFORMANCE"),
        ("clause", "Section 1.04", "PERFORMANCE"),
    ]
    assert segs[1].context == "ARTICLE 5 TERMINATION" and segs[4].context == "PERFORMANCE"
    assert segs[4].ref == "Section 1.04 PERFORMANCE"
    assert not segs[1].fragment and segs[1].model_text == segs[1].clean  # a numbered clause reads alone


def test_a_heading_line_is_joined_to_the_paragraph_it_heads():
    (seg,) = segment("10. GOVERNING LAW\nThis Agreement shall be governed by the laws of the State of New York.\n")
    assert (seg.kind, seg.number, seg.heading, seg.context) == ("clause", "10", "GOVERNING LAW", "")
    assert seg.clean.startswith("10. GOVERNING LAW This Agreement")


def test_inline_numbering_of_a_one_line_contract_is_split():
    text = (
        "NOW, THEREFORE, the Parties agree as follows: 1. All capitalized terms shall have the meaning set out "
        "in the Agreement. 2. The supply terms set forth in Section 1 of Amendment #2 are hereby deleted. "
        "3. Sanofi shall be entitled to terminate this Agreement upon written notice."
    )
    got = _texts(text)
    assert [g[:2] for g in got[1:]] == ["1.", "2.", "3."]
    assert "Section 1 of Amendment" in got[2]  # "Section 1" mid-sentence is not a break


def test_a_wrapped_reference_to_a_section_does_not_start_a_clause():
    text = ("11.6 No Consequential Damages. EXCEPT FOR A BREACH OF ARTICLE 10 (CONFIDENTIALITY) OR UNDER ARTICLE\n"
            "12 (INDEMNIFICATION), NEITHER PARTY SHALL BE LIABLE FOR INDIRECT DAMAGES.\n")
    (seg,) = segment(text)
    assert seg.number == "11.6" and seg.clean.endswith("INDIRECT DAMAGES.")


def test_page_furniture_is_cut_out_and_a_sentence_cut_by_a_page_break_is_one_clause():
    text = (
        "4. Indemnity. Each party shall indemnify the other against all claims arising from its\n\n"
        "Initialed ______ Page 2 of 6 Source: ACME WIDGETS CORP, 8-K/A, 3/1/2021\n\n"
        "negligence or wilful misconduct, without limit.\n\n"
        "5. Delivery. Seller shall deliver the Goods to the Buyer's warehouse.\n"
    )
    segs = segment(text)
    assert [s.clean for s in segs] == [
        "4. Indemnity. Each party shall indemnify the other against all claims arising from its negligence or "
        "wilful misconduct, without limit.",
        "5. Delivery. Seller shall deliver the Goods to the Buyer's warehouse.",
    ]
    (gap,) = segs[0].gaps  # offsets stay into the original; the furniture is a gap in the clause
    assert text[gap[0]:gap[1]] == "Initialed ______ Page 2 of 6 Source: ACME WIDGETS CORP, 8-K/A, 3/1/2021"
    standalone = segment("1. Payment. Buyer shall pay the Price within thirty days.\n\n- 2 -\n\n"
                         "2. Delivery. Seller shall deliver the Goods.\n", furniture=True)
    assert [(s.kind, s.text) for s in standalone if s.kind == "furniture"] == [("furniture", "- 2 -")]


def test_edgar_artefacts_are_dropped():
    text = (
        "Source: ACME CORP, 10-K, 3/1/2001\n\n"
        "1. Payment. Buyer shall pay the Price within thirty days of invoice.\n\n"
        "-2-\n\nPage 3 of 9\n\n______________\n\n[***]\n\n"
        "2. Delivery. Seller shall deliver the Goods to the Buyer's warehouse.\n"
    )
    assert _texts(text) == [
        "1. Payment. Buyer shall pay the Price within thirty days of invoice.",
        "2. Delivery. Seller shall deliver the Goods to the Buyer's warehouse.",
    ]


def test_a_real_running_footer_and_edgar_banners_never_reach_a_clause(cuad_dir):
    text = _contract(cuad_dir, "AgapeAtpCorp")
    segs = segment(text)
    for s in segs:
        assert "ODM Supply Agreement" not in s.clean and "Source:" not in s.clean, s.ref
    # the page footer sat inside clause 3.5(a); it is cut out, the clause kept whole
    a = next(s for s in segs if s.clean.startswith("3.5 (a)"))
    assert a.clean.endswith("The Manufacturer indemnifies the Customer for the same.")
    b = next(s for s in segs if s.number == "7.3(b)")
    assert b.heading == "Rights to termination" and b.context.endswith("terminate this Agreement:")
    arbitration = next(s for s in segs if s.number == "8.1")
    assert arbitration.context == "8. ARBITRATION" and "Arbitration" in arbitration.clean


def test_a_page_break_inside_a_sentence_of_a_real_contract_is_joined(cuad_dir):
    text = _contract(cuad_dir, "HealthcentralCom")
    (seg,) = [s for s in segment(text) if "Canadian portal web site" in s.clean]
    assert "which offers products, tools and services to a broad base of Canadian end users." in seg.clean
    assert seg.gaps and "Source: HEALTHCENTRAL COM" in seg.text


def test_addresses_bank_details_and_signatures_are_segments_of_their_own(cuad_dir):
    segs = segment(_contract(cuad_dir, "PapaJohns"))
    wire = next(s for s in segs if s.clean.startswith("2. Wire Instructions"))
    assert wire.kind == "clause" and wire.clean.endswith("unless otherwise instructed by ABG:")
    bank = segs[segs.index(wire) + 1]
    assert bank.kind == "payment_details" and "Account Number" in bank.clean and bank.number == "2"
    notices = [s for s in segs if s.kind == "address"]
    assert notices and all("Notices" in (s.heading or "") for s in notices)
    assert any("1411 Broadway" in s.clean for s in notices)
    (signature,) = [s for s in segs if s.kind == "signature"]
    assert signature.clean.startswith("IN WITNESS WHEREOF")
    assert all("By:" not in s.clean for s in segs if s.kind == "clause")


def test_a_notice_clause_keeps_its_lead_in_and_the_addresses_are_split_off():
    text = (
        "12. Notices. All notices under this Agreement shall be in writing and sent to: Acme Widgets Corp., "
        "123 Main Street, Suite 400, New York, NY 10001, Attention: General Counsel, Facsimile: (212) 555-0100\n"
    )
    clause, address = segment(text)
    assert clause.kind == "clause" and clause.clean.endswith("sent to:")
    assert address.kind == "address" and address.clean.startswith("Acme Widgets Corp.")
    assert address.number == "12" and address.heading == "Notices"


def test_the_parties_clause_with_addresses_is_a_clause():
    text = ('This Agreement is made on 1 May 2020 BETWEEN: Organic Preparations Inc., 2nd Floor, Transpacific '
            'Haus, Port Vila, Vanuatu ("the Manufacturer") AND Agape Limited, Unit 05, 4F, Energy Plaza, '
            '92 Granville Road, Kowloon, Hong Kong ("the Customer").')
    assert [s.kind for s in segment(text)] == ["clause"]


def test_a_table_of_contents_is_not_read_as_clauses(cuad_dir):
    segs = segment(_contract(cuad_dir, "OTISWORLDWIDE"))
    contents = [s for s in segs if s.kind == "contents"]
    assert contents and contents[0].clean.startswith("TABLE OF CONTENTS ARTICLE I DEFINITIONS 2")
    assert all(s.clean.count(" 2.1 ") == 0 for s in segs if s.kind == "clause" and s.start < contents[-1].end)


def test_furniture_needs_its_page_numbers_in_sequence():
    # "... pursuant to Section 3" ending a page is text when the next page does not end with 4
    lines = ["Deliveries are made to the warehouse named in Section 3", "Invoices are payable as provided in Section 9",
             "Risk passes to the Buyer on delivery under Section 2", "Either party may audit the other under Section 7"]
    banner = "\n\nSource: ACME CORP, 10-K, 3/1/2001\n\n"
    text = banner.join(lines) + banner
    assert {text[a:b] for a, b in find_furniture(text)} == {"Source: ACME CORP, 10-K, 3/1/2001"}
    numbered = banner.join(f"{line}   {i + 1}" for i, line in enumerate(lines)) + banner
    assert {numbered[a:b] for a, b in find_furniture(numbered)} == {"1", "2", "3", "4", banner.strip()}


def test_overlong_passages_are_split_at_sentence_ends_and_keep_their_number():
    sentence = "The Licensee shall keep complete and accurate records of all sales of Licensed Products. "
    segs = segment("9.1 Records. " + sentence * 40, max_chars=600)
    assert len(segs) > 3
    assert all(len(s.text) <= 600 for s in segs)
    assert all(s.text.endswith(".") for s in segs)
    assert {s.number for s in segs} == {"9.1"} and all("9.1 Records" in s.context for s in segs[1:])


@pytest.mark.parametrize("text", ["", "   \n\n", "[***]\n\n-3-\n", "Page 1 of 2"])
def test_nothing_to_read_gives_no_segments(text):
    assert segment(text) == []
