"""The risk pre-labeller: who bears the risk and how severe it is, by the written criteria."""

import pytest

from contract_review.annotation.parties import Parties, terms_of_service
from contract_review.annotation.risk import label_risk, notice_days

ACME = Parties("Acme Corp.", "Beta LLC", {"first_party": ["Acme", "Licensor", "Supplier"],
                                          "second_party": ["Beta", "Licensee", "Customer"]})


def _label(text, *types):
    lab = label_risk(text, list(types), ACME)
    return lab.risk_to, lab.severity


@pytest.mark.parametrize("text, expected", [
    ("Acme may terminate this Agreement for convenience at any time without notice.", ("second_party", "high")),
    ("Acme may terminate this Agreement for convenience upon ninety (90) days' prior written notice, provided that "
     "Acme shall pay Beta for all services performed through the date of termination.", ("second_party", "low")),
    ("Acme may terminate this Agreement for convenience on sixty (60) days' notice.", ("second_party", "medium")),
    ("Either party may terminate this Agreement for convenience on 30 days' written notice.", ("both", "medium")),
    ("Beta may terminate this Agreement for convenience on ten days' notice.", ("first_party", "high")),
])
def test_termination_for_convenience_is_high_without_notice_or_payment_and_directed_at_the_terminated_side(text, expected):
    assert _label(text, "termination_for_convenience") == expected


@pytest.mark.parametrize("text, expected", [
    ("IN NO EVENT SHALL SUPPLIER'S AGGREGATE LIABILITY EXCEED THE FEES PAID BY CUSTOMER IN THE TWELVE MONTHS PRECEDING "
     "THE CLAIM.", ("second_party", "high")),
    ("Except for breaches of confidentiality or a party's indemnification obligations, neither party's liability shall "
     "exceed two times the fees paid.", ("both", "low")),
    ("Licensor's total liability shall not exceed the amounts paid hereunder, except for Licensor's gross negligence "
     "or wilful misconduct.", ("second_party", "medium")),
])
def test_a_cap_is_high_at_or_below_the_fees_with_no_carve_outs_and_falls_on_the_side_whose_claims_it_caps(text, expected):
    assert _label(text, "cap_on_liability") == expected


def test_obligations_fall_on_the_obliged_party_and_restrictions_after_the_term_are_high():
    assert _label("Beta shall not compete with Acme during the term and for five (5) years thereafter.",
                  "non_compete") == ("second_party", "high")
    assert _label("During the Term, Beta shall not sell competing products in the Territory.",
                  "non_compete") == ("second_party", "medium")
    assert _label("Licensee shall indemnify Licensor from any and all claims arising out of or relating to this "
                  "Agreement.", "indemnification") == ("second_party", "high")
    assert _label("Each party shall indemnify the other against third-party claims caused by its breach.",
                  "indemnification") == ("both", "low")


def test_no_risk_type_means_no_bearer_and_the_most_severe_type_wins():
    assert _label("Payments are due within 30 days.", "other") == ("none", "none")
    lab = label_risk("Acme may terminate for convenience without notice. This Agreement is governed by New York law.",
                     ["governing_law", "termination_for_convenience"], ACME)
    assert (lab.type_id, lab.severity, lab.risk_to) == ("termination_for_convenience", "high", "second_party")
    assert lab.reason.startswith("Termination for Convenience:") and lab.reason.endswith("High for Beta LLC.")


def test_terms_of_service_risk_falls_on_the_user_and_fairness_sets_severity():
    tos = terms_of_service("Airbnb")
    lab = label_risk("We may suspend your account at any time.", ["unilateral_termination"], tos,
                     terms_of_service=True, fairness=2)
    assert (lab.risk_to, lab.severity) == ("second_party", "medium")
    assert "potentially unfair" in lab.reason
    assert label_risk("You agree to indemnify Airbnb against all claims.", ["indemnification"], tos,
                      terms_of_service=True).risk_to == "second_party"


def test_notice_periods_are_read_in_days():
    assert notice_days("upon thirty (30) days' prior written notice") == 30
    assert notice_days("on six months' notice") == 180
    assert notice_days("may terminate immediately upon written notice") == 0
    assert notice_days("may terminate this Agreement") is None
