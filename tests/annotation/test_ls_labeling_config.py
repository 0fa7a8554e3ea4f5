import pytest

from contract_review.annotation.labeling_config import labeling_config, labels_from_result, result_from_labels
from contract_review.prompt import Answer
from contract_review.taxonomy import TaxonomyError, load_taxonomy


def test_config_offers_every_taxonomy_label_and_shows_the_parties():
    tax = load_taxonomy()
    config = labeling_config(tax)
    for ids in (tax.clause_type_ids, tax.parties, tax.risk_levels, tax.risk_categories):
        for label in ids:
            assert f'alias="{label}"' in config
    assert 'value="$parties"' in config and 'value="$text"' in config
    for name in ("clause_types", "party", "risk_to", "severity", "risk_category", "reason"):
        assert f'name="{name}"' in config
    assert 'value="$context"' in config


def test_the_graded_config_asks_bearer_severity_reason_and_types_and_nothing_else():
    from contract_review.annotation.labeling_config import graded_config

    config = graded_config()
    for name in ("risk_to", "severity", "reason", "clause_types"):
        assert f'name="{name}"' in config
    assert 'name="party"' not in config and 'name="risk_category"' not in config
    assert config.count('required="true"') == 4


def test_prediction_result_reads_back_as_the_same_labels():
    answer = Answer(("cap_on_liability", "uncapped_liability"), "both", "high", "liability", "Caps damages.",
                    risk_to="second_party")
    labels = labels_from_result(result_from_labels(answer))
    assert labels.clause_types == answer.clause_types
    assert (labels.party, labels.risk_to, labels.severity, labels.risk, labels.risk_category, labels.reason) == (
        "both", "second_party", "high", "high", "liability", "Caps damages.")


def test_an_annotation_from_before_the_bearer_reads_its_risk_as_severity():
    legacy = [{"from_name": "risk", "to_name": "clause", "type": "choices", "value": {"choices": ["medium"]}}]
    labels = labels_from_result(legacy)
    assert (labels.severity, labels.risk_to) == ("medium", None)


def test_a_label_outside_the_taxonomy_is_refused_by_name():
    result = [{"from_name": "party", "to_name": "clause", "type": "choices", "value": {"choices": ["third_party"]}}]
    with pytest.raises(TaxonomyError, match="third_party"):
        labels_from_result(result)
