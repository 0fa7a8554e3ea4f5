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
    # 41 + 8 - 3 merged + other
    assert len(tax.clause_types) == 47


def test_merged_types_say_why_and_every_row_has_a_legal_reason():
    tax = load_taxonomy()
    merged = [c for c in tax.clause_types if c.cuad and c.claudette]
    assert {c.claudette for c in merged} == {"LAW", "LTD", "TER"}
    assert all(len(c.merged) > 80 for c in merged)
    for c in tax.clause_types:
        assert c.reason.strip().endswith(".") and len(c.reason) > 20, c.id


def test_risk_clause_means_medium_or_high():
    tax = load_taxonomy()
    assert [lvl for lvl in tax.risk_levels if tax.is_risk_clause(lvl)] == ["medium", "high"]
    assert tax.parties == ("first_party", "second_party", "both", "none")
    assert tax.party_zh["first_party"] == "甲方"


def _raw():
    return yaml.safe_load(TAXONOMY_FILE.read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["clause_types"][0].update(risk="severe"), "risk 'severe' not in"),
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
