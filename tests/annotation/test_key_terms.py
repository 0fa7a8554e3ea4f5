"""Key terms quoted from real CUAD clauses (train contracts) and from clauses written to trip
the extractor: numbers that are not amounts, liability that is not uncapped."""

import pytest

from contract_review.annotation.key_terms import (ACTS, AMOUNT, BENEFITS, CAP, DURATION, NOTICE, PERCENTAGE, UNCAPPED,
                                                   describe, extract, number)
from contract_review.annotation.segment import segment


def _clause(cuad_dir, prefix, words):
    """The clause segment of a shipped contract that holds `words`."""
    path = next(p for p in (cuad_dir / "full_contract_txt").glob("*.txt") if p.name.startswith(prefix))
    segs = [s for s in segment(path.read_text(encoding="utf-8-sig")) if words in s.clean]
    assert len(segs) == 1, (prefix, words, len(segs))
    return segs[0].clean


def _kinds(terms):
    return [(t.kind, t.text) for t in terms]


def test_every_term_keeps_its_span_in_the_clause(cuad_dir):
    clause = _clause(cuad_dir, "AgapeAtpCorp", "AUS $1.00 per book")
    terms = extract(clause)
    assert terms and all(clause[t.start:t.end] == t.text for t in terms)


def test_a_price_per_unit_and_a_renewal_notice_from_a_real_supply_agreement(cuad_dir):
    book = extract(_clause(cuad_dir, "AgapeAtpCorp", "AUS $1.00 per book"))
    (amount,) = [t for t in book if t.kind == AMOUNT]
    assert (amount.text, amount.value, amount.unit, amount.period) == ("AUS $1.00 per book", 1.0, "AUS $", "per book")
    renewal = extract(_clause(cuad_dir, "AgapeAtpCorp", "A six (6) months notice must be given"))
    assert (NOTICE, "six (6) months notice") in _kinds(renewal)
    assert [(t.text, t.value) for t in renewal if t.kind == DURATION] == [("ten (10) year", 10.0)] * 2
    payment = extract(_clause(cuad_dir, "AgapeAtpCorp", "50% of the Total Order Cost"))
    assert [(t.text, t.value) for t in payment if t.kind == PERCENTAGE] == [("50%", 50.0), ("50%", 50.0)]


def test_a_termination_notice_and_who_may_terminate(cuad_dir):
    clause = _clause(cuad_dir, "AimmuneTherapeuticsInc", "upon sixty (60) days' prior written notice to Xencor")
    notice = [t for t in extract(clause) if t.kind == NOTICE]
    assert [(t.text, t.value, t.unit) for t in notice] == [("sixty (60) days' prior written notice", 60.0, "days")]


def test_a_cap_on_liability_is_quoted_with_what_it_is_measured_by(cuad_dir):
    clause = _clause(cuad_dir, "CybergyHoldingsInc", "liability shall not exceed the fees that MA has paid")
    (cap,) = [t for t in extract(clause) if t.kind == CAP]
    assert cap.text.startswith("the fees that MA has paid under this Agreement") and cap.period == "liability"
    assert "liability capped at the fees that MA has paid" in describe(extract(clause))


def test_an_annual_amount_written_in_words_and_figures_is_one_amount(cuad_dir):
    clause = _clause(cuad_dir, "AlliedEsportsEntertainmentInc", "($3,000,000) per year")
    amounts = [t for t in extract(clause) if t.kind == AMOUNT and t.value == 3_000_000]
    assert len(amounts) == 1 and amounts[0].period == "per year" and amounts[0].text.endswith("($3,000,000) per year")


def test_the_lawyers_example_reads_as_its_own_terms():
    clause = ("Supplier shall pay Buyer a service credit of $50,000 per year for ten (10) years, and either party may "
              "terminate this Agreement upon sixty (60) days' prior written notice. Supplier's aggregate liability "
              "shall not exceed the fees paid in the twelve (12) months preceding the claim.")
    terms = extract(clause)
    assert _kinds(terms)[:4] == [(ACTS, "Supplier"), (BENEFITS, "Buyer"), (AMOUNT, "$50,000 per year"),
                                 (DURATION, "for ten (10) years")]
    assert describe(terms) == ("obliges Supplier; in favour of Buyer; $50,000 per year; for ten (10) years; "
                               "sixty (60) days' prior written notice; liability capped at the fees paid in the "
                               "twelve (12) months preceding the claim")
    # the twelve months are part of the cap, not a term of their own
    assert not [t for t in terms if t.kind == DURATION and "twelve" in t.text]


def test_uncapped_liability_and_carve_outs_from_a_cap():
    carve = extract("The limitations set forth in this Section 11 shall not apply to a Party's indemnification "
                    "obligations or its gross negligence or willful misconduct.")
    assert [t.kind for t in carve] == [UNCAPPED] and carve[0].text.endswith("willful misconduct")
    indemnity = extract("Supplier shall indemnify, defend and hold harmless Buyer from all claims, without limitation "
                        "as to amount.")
    assert _kinds(indemnity) == [(ACTS, "Supplier"), (BENEFITS, "Buyer"),
                                 (UNCAPPED, "without limitation as to amount")]
    assert describe(indemnity) == "obliges Supplier; in favour of Buyer; uncapped: without limitation as to amount"
    assert [t.kind for t in extract("The Indemnifying Party's liability shall be unlimited.")] == [UNCAPPED]


def test_an_unlimited_liability_company_is_no_uncapped_liability(cuad_dir):
    clause = _clause(cuad_dir, "ALLISONTRANSMISSION", "unlimited liability company")
    assert not [t for t in extract(clause) if t.kind == UNCAPPED]


@pytest.mark.parametrize("text", [
    "Notices shall be sent to Acme Corp., 123 Main Street, Suite 400, New York, NY 10001, telephone (212) 555-0100.",
    "As provided in Section 5.2 and Article 12 of the Agreement dated January 5, 2021, under Rule 406 of the 1933 Act.",
    "Account Number: 483043584155 ABA Routing Number: 026009593",
    "The Products listed in Schedule 3, items 1 through 14, version 2.0.",
])
def test_numbers_that_are_not_amounts_durations_or_percentages(text):
    assert extract(text) == []


def test_notices_and_numbers_of_a_real_endorsement_agreement_are_no_amounts(cuad_dir):
    path = next(p for p in (cuad_dir / "full_contract_txt").glob("*.txt") if p.name.startswith("PapaJohns"))
    blocks = [s for s in segment(path.read_text(encoding="utf-8-sig")) if s.kind in ("address", "payment_details")]
    assert {s.kind for s in blocks} == {"address", "payment_details"}
    for s in blocks:
        assert not [t for t in extract(s.clean) if t.kind in (AMOUNT, DURATION, PERCENTAGE)], s.clean


def test_redacted_and_written_out_numbers():
    assert number("ninety (90)") == 90 and number("twenty-one") == 21 and number("one hundred and twenty") == 120
    assert number("[***]") is None
    (redacted,) = extract("Payment shall be made within [***] ([***]) days of invoice.")
    assert (redacted.kind, redacted.text, redacted.value) == (DURATION, "within [***] ([***]) days", None)
    (pair,) = [t for t in extract("the Company shall pay Two Million Dollars ($2,000,000)") if t.kind == AMOUNT]
    assert (pair.text, pair.value) == ("Two Million Dollars ($2,000,000)", 2_000_000)
    both = extract("Licensor and Licensee shall each bear their own costs.")
    assert _kinds(both) == [(ACTS, "Licensor and Licensee")]


def test_party_names_as_written_in_the_contract_are_recognised():
    terms = extract("ArTara will provide thirty thousand dollars (US $30,000) per year in funding to the University.",
                    parties=["ArTara", "the University"])
    assert _kinds(terms) == [(ACTS, "ArTara"), (AMOUNT, "thirty thousand dollars (US $30,000) per year")]
    assert extract("NFLA's liability to Company shall not exceed the remuneration paid.")[0].kind == CAP
