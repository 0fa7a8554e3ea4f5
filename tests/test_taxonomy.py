import csv

import pytest
import yaml

from contract_review.paths import TAXONOMY_FILE
from contract_review.taxonomy import TaxonomyError, load_taxonomy, parse_taxonomy


def test_taxonomy_covers_every_cuad_category_and_the_eight_unfair_terms(cuad_dir):
    tax = load_taxonomy()
    with open(cuad_dir / "master_clauses.csv", newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh))
    cuad_categories = {h for h in header if f"{h}-Answer" in header}
    assert len(cuad_categories) == 41
    assert set(tax.by_cuad()) == cuad_categories
    assert tax.claudette_codes == ("LTD", "TER", "CH", "CR", "USE", "J", "LAW", "A")
    assert "other" in tax.clause_type_ids
    # 41 + 8 - 2 merged + 7 first-pass checklist types + other
    assert len(tax.clause_types) == 55
    # CLAUDETTE's unilateral termination of a consumer service is its own type, not CUAD's
    assert tax.by_claudette()["TER"].id == "unilateral_termination"
    assert tax.by_cuad()["Termination for Convenience"].claudette is None


def test_the_first_pass_checklist_types_are_there_with_a_default_bearer_and_severity():
    tax = load_taxonomy()
    for tid in ("indemnification", "termination_for_cause", "force_majeure", "confidentiality",
                "warranty_disclaimer", "data_protection", "exclusive_remedy"):
        ct = tax.clause_type(tid)
        assert not ct.cuad and not ct.claudette
        assert ct.severity != "none" and ct.risk_to in ("obliged", "counterparty", "both")


def test_merged_types_say_why_and_every_row_has_a_legal_reason():
    tax = load_taxonomy()
    merged = [c for c in tax.clause_types if c.cuad and c.claudette]
    assert {c.claudette for c in merged} == {"LAW", "LTD"}
    assert all(len(c.merged) > 80 for c in merged)
    for c in tax.clause_types:
        assert c.reason.strip().endswith(".") and len(c.reason) > 20, c.id


def test_risk_clause_means_medium_or_high():
    tax = load_taxonomy()
    assert [lvl for lvl in tax.severity_levels if tax.is_risk_clause(lvl)] == ["medium", "high"]
    assert tax.risk_levels == tax.severity_levels  # `risk` is severity until its readers switch
    assert tax.parties == ("first_party", "second_party", "both", "none") == tax.risk_bearers
    assert tax.party_zh["first_party"] == "甲方"


def _raw():
    return yaml.safe_load(TAXONOMY_FILE.read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["clause_types"][0].update(severity="severe"), "severity 'severe' not in"),
        (lambda r: r["clause_types"][0].update(risk_to="buyer"), "risk_to 'buyer' is not a bearer rule"),
        (lambda r: r["clause_types"][0].update(risk_to="both"), "severity none goes with risk_to none"),
        (lambda r: r["clause_types"][4].update(risk_to="none"), "severity none goes with risk_to none"),
        (lambda r: r["clause_types"].append(dict(r["clause_types"][0])), "duplicate id"),
        (lambda r: r["clause_types"][0].update(colour="red"), "unknown keys ['colour']"),
        (lambda r: r["clause_types"][7].pop("merged"), "say why under 'merged'"),
        (lambda r: r["clause_types"].pop(), "'other' is required"),
    ],
)
def test_invalid_taxonomy_is_refused_with_the_entry_named(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(TaxonomyError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_taxonomy(raw)


def test_label_outside_taxonomy_names_the_valid_labels():
    with pytest.raises(TaxonomyError, match="party 'buyer' is not in the taxonomy; use one of: first_party"):
        load_taxonomy().check("party", "buyer")
