"""The rule pre-labeller on the worked examples of data/guidelines.md."""

import pytest

from contract_review.annotation.obligation import label_obligation
from contract_review.annotation.parties import Parties, contract_parties, extract_parties, terms_of_service

CONTRACT = Parties(
    first_party="Acme Corp.",
    second_party="Beta Distribution LLC",
    aliases={"first_party": ["Acme", "Customer", "Licensor"], "second_party": ["Beta", "Distributor", "Licensee"]},
)


@pytest.mark.parametrize(
    "clause, expected",
    [
        ("Distributor shall purchase a minimum of 1,000 units per quarter.", "second_party"),
        ("Neither party shall assign this Agreement without the prior written consent of the other.", "both"),
        ("This Agreement shall be governed by the laws of the State of New York.", "none"),
        ("All invoices shall be paid by Customer within thirty (30) days.", "first_party"),
        ("Acme may terminate this Agreement for convenience on 30 days' notice.", "none"),
        ("Licensor shall deliver the Software and Licensee shall pay the Fees.", "both"),
        ("Except as set forth in Section 2, Licensee shall not sublicense the Software.", "second_party"),
        ("IN NO EVENT SHALL EITHER PARTY BE LIABLE FOR CONSEQUENTIAL DAMAGES.", "none"),
        ('"Territory" shall mean the United States.', "none"),
    ],
)
def test_guideline_examples_for_contracts(clause, expected):
    assert label_obligation(clause, CONTRACT).party == expected


@pytest.mark.parametrize(
    "clause, expected",
    [
        ("You agree not to use the Service for any unlawful purpose.", "second_party"),
        ("We will notify you of any material change to these Terms.", "first_party"),
        ("By using the Services, you agree to be bound by these Terms.", "second_party"),
        ("We may remove any content at our sole discretion.", "none"),
    ],
)
def test_guideline_examples_for_terms_of_service(clause, expected):
    assert label_obligation(clause, terms_of_service("Airbnb")).party == expected


def test_parties_are_ordered_by_their_first_mention_with_aliases():
    text = (
        'This Agreement is made by and between Acme Corp., a Delaware corporation ("Acme"), and Beta '
        'Distribution LLC ("Distributor"). Acme appoints Distributor as its exclusive distributor.'
    )
    p = contract_parties(text, hints=["Beta Distribution LLC", "Acme Corp.", "Acme", "Distributor"]).roles()
    assert (p.first_party, p.second_party) == ("Acme Corp.", "Beta Distribution LLC")
    assert p.aliases["first_party"] == ["Acme"]
    assert p.aliases["second_party"] == ["Distributor"]
    q = extract_parties(text)
    assert q.first_party.startswith("Acme Corp") and q.second_party.startswith("Beta Distribution LLC")
    assert "Distributor" in q.aliases["second_party"]


def test_extract_parties_reads_lower_case_names_and_party_a_b_openings():
    p = extract_parties('This Agreement is made by and between iMine Corporation, a Nevada corporation ("iMine"), '
                        'and SUNWAI Technology Co., Ltd. ("Sunwai").')
    assert (p.first_party, p.second_party) == ("iMine Corporation", "SUNWAI Technology Co., Ltd.")
    assert p.aliases == {"first_party": ["iMine"], "second_party": ["Sunwai"]}
    q = extract_parties("Party A (Shipper): ZTO Express Co., Ltd.\nParty B (Carrier): Tonglu Logistics Ltd.\n")
    assert (q.first_party, q.second_party) == ("ZTO Express Co., Ltd.", "Tonglu Logistics Ltd.")
    r = extract_parties("甲方：上海某某有限公司\n乙方：北京某某科技有限公司\n")
    assert r.second_party == "北京某某科技有限公司" and "乙方" in r.aliases["second_party"]


def test_extract_parties_on_a_one_line_party_a_b_opening(cuad_dir):
    [path] = (cuad_dir / "full_contract_txt").glob("ZtoExpress*")
    p = extract_parties(path.read_text(encoding="utf-8"))
    assert (p.first_party, p.second_party) == ("ZTO Express Co., Ltd.", "Tonglu Tongze Logistics Ltd.")
