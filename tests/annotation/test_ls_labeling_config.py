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
    for name in ("clause_types", "party", "risk", "risk_category", "reason"):
        assert f'name="{name}"' in config


def test_prediction_result_reads_back_as_the_same_labels():
    answer = Answer(("cap_on_liability", "uncapped_liability"), "both", "high", "liability", "Caps damages.")
    labels = labels_from_result(result_from_labels(answer))
    assert labels.clause_types == answer.clause_types
    assert (labels.party, labels.risk, labels.risk_category, labels.reason) == ("both", "high", "liability", "Caps damages.")


def test_a_label_outside_the_taxonomy_is_refused_by_name():
    result = [{"from_name": "party", "to_name": "clause", "type": "choices", "value": {"choices": ["third_party"]}}]
    with pytest.raises(TaxonomyError, match="third_party"):
        labels_from_result(result)
