"""The checklist rule labeller: headings and operative phrases, never a mere mention."""

import pytest

from contract_review.annotation.type_rules import RULE_TYPES, clause_heading, rule_types
from contract_review.taxonomy import load_taxonomy


def _types(text):
    return [m.type_id for m in rule_types(text)]


@pytest.mark.parametrize("text, expected", [
    ("12. Indemnification. Supplier shall defend, indemnify and hold harmless Customer from third-party claims.",
     ["indemnification"]),
    ("Licensee agrees to indemnify Licensor against any loss arising from its breach.", ["indemnification"]),
    ("Either party may terminate this Agreement if the other party materially breaches it and fails to cure within "
     "thirty (30) days.", ["termination_for_cause"]),
    ("ARTICLE 14 FORCE MAJEURE. Neither party shall be liable for delay caused by events beyond its reasonable "
     "control.", ["force_majeure"]),
    ("The Receiving Party shall hold the Disclosing Party's information in strict confidence and shall not disclose "
     "it to any third party.", ["confidentiality"]),
    ("THE SOFTWARE IS PROVIDED \"AS IS\" AND LICENSOR DISCLAIMS ALL IMPLIED WARRANTIES OF MERCHANTABILITY.",
     ["warranty_disclaimer"]),
    ("Processor shall process Personal Data only on documented instructions and shall notify Controller of any breach.",
     ["data_protection"]),
    ("Customer's sole and exclusive remedy for any defect shall be repair or replacement of the Product.",
     ["exclusive_remedy"]),
])
def test_each_checklist_type_is_found_by_heading_or_operative_phrase(text, expected):
    assert _types(text) == expected


@pytest.mark.parametrize("text", [
    "Except for a party's indemnification obligations under Section 9, neither party's liability shall exceed the fees.",
    "The termination rights in this Section shall not constitute the exclusive remedy of the non-defaulting party.",
    "Either party may terminate this Agreement for convenience upon ninety days' notice.",
    '"Force Majeure Event" shall have the meaning set forth in Section 16.3.',
    "Confidential Treatment Requested by Achaogen, Inc. Omitted portions are marked [***].",
    "CONFIDENTIAL\nc) Excite's goal is to deliver clickthroughs to the Client Site during the fourth month.",
    "TABLE OF CONTENTS 1.1 Definitions 2 1.2 Term 3 2.1 Services 4 2.2 Fees 5 3.1 Warranty 6 3.2 Indemnity 7",
    "Payments are due within thirty (30) days of the invoice date.",
])
def test_a_mention_a_convenience_termination_or_a_table_of_contents_is_not_a_checklist_clause(text):
    assert _types(text) == []


def test_headings_are_title_or_upper_case_only():
    assert clause_heading("8.1 Confidentiality Obligations. Each Party agrees to keep ...") == "Confidentiality Obligations"
    assert clause_heading("Company shall indemnify Customer against claims.") == ""


def test_every_rule_type_is_in_the_taxonomy_and_in_no_corpus():
    tax = load_taxonomy()
    for t in RULE_TYPES:
        assert not tax.clause_type(t).cuad and not tax.clause_type(t).claudette
