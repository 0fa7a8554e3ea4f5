"""One canonical party list per contract: the opening, hints, signature blocks, cleaning, blanks."""

import pytest

from contract_review.annotation.parties import (
    clean_name, contract_parties, is_blank, same_party, signature_names, terms_of_service_list,
)


def _names(plist):
    return [(p.name, list(p.aliases)) for p in plist.parties]


def test_the_opening_gives_names_in_order_with_the_aliases_defined_beside_them():
    text = ('SUPPLY AGREEMENT\n\nThis Supply Agreement is made by and between Beta Components LLC, a Delaware limited '
            'liability company ("Beta" or "Supplier"), and ACME Corp., a New York corporation ("ACME"). '
            'WHEREAS Supplier makes parts.\n')
    plist = contract_parties(text)
    assert _names(plist) == [("Beta Components LLC", ["Beta", "Supplier"]), ("ACME Corp.", ["ACME"])]
    assert plist.names() == {"first_party": "Beta Components LLC", "second_party": "ACME Corp."}
    assert plist.roles().terms("first_party") == ["Beta Components LLC", "Supplier", "Beta"]


def test_the_defining_sentence_wins_over_a_title_in_another_order():
    text = ("AGREEMENT BY AND BETWEEN PFIZER INC. AND EXACT SCIENCES CORPORATION\n\nTABLE OF CONTENTS 1. Definitions 2\n\n"
            'This Agreement is entered into by and between Exact Sciences Corporation ("Exact"), a Delaware corporation, '
            'and Pfizer Inc. ("Pfizer"), a Delaware corporation.\n')
    assert [p.name for p in contract_parties(text).parties] == ["Exact Sciences Corporation", "Pfizer Inc."]


def test_hints_complete_a_truncated_name_and_fill_a_party_the_opening_only_refers_to():
    text = ('This Agreement is entered into by and between Rise, a Nevada corporation ("Rise"), and the above-named '
            'Supplier, a corporation. Company Name: Cardinal Parts, Inc.\n')
    plist = contract_parties(text, hints=["Rise Inc.", "Cardinal Parts, Inc.", "Supplier"])
    assert _names(plist) == [("Rise Inc.", ["Rise"]), ("Cardinal Parts, Inc.", ["Supplier"])]
    assert plist.parties[1].found_in == ("opening", "hints")


def test_stray_quotes_and_layout_are_cleaned_and_blanks_are_flagged_not_invented():
    assert clean_name("''Employee") == "Employee"
    assert clean_name("  AFSALA  Bancorp,  Inc. ,") == "AFSALA Bancorp, Inc."
    assert clean_name("Reed's, Inc.") == "Reed's, Inc."
    assert is_blank("[•]") and is_blank("_______") and is_blank("[Name of Licensee]") and not is_blank("Acme Corp.")
    text = 'This Agreement is made between [•], a [•] corporation ("Licensee"), and Acme Corp. ("Licensor").\n'
    plist = contract_parties(text)
    first, second = plist.parties
    assert first.blank and first.name == "[•]" and first.aliases == ("Licensee",)
    assert plist.names()["first_party"] == "[•] [blank in the contract] (called 'Licensee')"
    assert plist.roles().first_party == "" and "Licensee" in plist.roles().terms("first_party")
    assert second.name == "Acme Corp." and not second.blank


def test_a_side_the_text_never_names_is_kept_as_not_identified():
    plist = contract_parties("This Agreement is made by Solo Holdings, Inc. for its own account.\n")
    assert len(plist.parties) == 2 and plist.parties[1].found_in == ("not_found",)
    assert plist.names()["second_party"] == "[not identified]"


def test_party_a_and_b_openings_and_signature_blocks():
    plist = contract_parties("Party A (Shipper): ZTO Express Co., Ltd.\nParty B (Carrier): Tonglu Logistics Ltd.\n")
    assert [p.name for p in plist.parties] == ["ZTO Express Co., Ltd.", "Tonglu Logistics Ltd."]
    assert "Party B" in plist.parties[1].aliases
    text = ("IN WITNESS WHEREOF, the parties have executed this Agreement.\n\nRISE INC.\n\nBy: /s/ J. Doe\nName: J. Doe\n\n"
            "CARDINAL PARTS, INC.\nBy: ______\n")
    assert signature_names(text) == ["RISE INC.", "CARDINAL PARTS, INC."]
    opening = 'This Agreement is made between Rise ("Rise") and Cardinal Parts, Inc. ("Cardinal").\n\n' + text
    assert contract_parties(opening).parties[0].name == "RISE INC."  # the signature completes the legal name


@pytest.mark.parametrize("a, b, same", [
    ("WATER NOW, INC.", "Water Now", True), ("Rise", "Rise Inc.", True), ("NETWORK 1", "NETWORK 1 FINANCIAL, INC.", True),
    ("THE HERTZ CORPORATION", "HERTZ SYSTEM, INC.", False),
    ("Emerald Health Sciences Inc.", "Emerald Health Nutraceuticals Inc.", False),
])
def test_same_party_tells_spellings_of_one_name_from_two_names(a, b, same):
    assert same_party(a, b) is same


def test_terms_of_service_parties():
    plist = terms_of_service_list("Airbnb")
    assert plist.kind == "terms_of_service"
    assert plist.names() == {"first_party": "Airbnb", "second_party": "the user"}
    assert "you" in plist.roles().terms("second_party")


def test_a_chinese_opening_with_full_width_brackets_names_both_parties_and_only_the_role_words_it_uses():
    from contract_review.annotation.parties import contract_parties

    text = ("采购合同\n\n甲方（买方）：上海华信贸易有限公司\n乙方（卖方）：深圳明达电子科技有限公司\n\n"
            "第一条 乙方向甲方供应电子元器件。")
    got = [(p["name"], p["aliases"]) for p in contract_parties(text).as_dict()["parties"]]
    assert got == [("上海华信贸易有限公司", ["甲方"]), ("深圳明达电子科技有限公司", ["乙方"])]
