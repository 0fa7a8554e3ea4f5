"""The base model as a zero-shot labeller: malformed output, packed option scoring, free generation."""

from __future__ import annotations

import pytest
import torch

from contract_review.predictor import ClauseInput
from contract_review.reviewer.zero_shot import GenerativePredictor, ScoringPredictor, _render, parse_prediction
from contract_review.training.models import load_causal_lm, load_tokenizer

GOOD = ('{"clause_types": ["cap_on_liability"], "party": "none", "risk": "medium", '
        '"risk_category": "liability", "reason": "caps damages"}')


@pytest.mark.parametrize("raw, kind", [
    ("", "invalid_json"),
    ("Sure! Here is the answer:", "invalid_json"),
    ('{"clause_types": ["cap_on_liability"], "party": "none",', "invalid_json"),
    ('{"clause_types": ["cap_on_liability"], "party": none}', "invalid_json"),
    ("[1, 2, 3]", "invalid_json"),
    ('{"clause_types": ["cap_on_liability"], "party": "none"}', "missing_key"),
    (GOOD.replace("cap_on_liability", "force_majeure_xx"), "unknown_label"),
    (GOOD.replace('"none"', '"the buyer"'), "unknown_label"),
    (GOOD.replace('"medium"', '"severe"'), "unknown_label"),
    (GOOD.replace('["cap_on_liability"]', "[]"), "unknown_label"),
    ("{" * 500 + "}" * 3, "invalid_json"),
])
def test_malformed_model_output_becomes_a_counted_error_not_a_crash(raw, kind):
    p = parse_prediction(raw)
    assert p.answer is None and p.error == kind and p.raw == raw


def test_valid_output_inside_chatter_is_parsed():
    p = parse_prediction(f"Here you go:\n```json\n{GOOD}\n```")
    assert p.error is None and p.answer.risk == "medium" and p.answer.clause_types == ("cap_on_liability",)


@pytest.fixture(scope="module")
def small_lm(default_model):
    return load_causal_lm("default").eval(), load_tokenizer("default")


def test_packed_option_scores_equal_one_forward_per_option(small_lm):
    model, tok = small_lm
    sp = ScoringPredictor(model, tok, "test", autocast=False)
    clauses = [ClauseInput("Either party may terminate this Agreement on 30 days' notice.",
                           {"first_party": "Acme Inc.", "second_party": "Beta LLC"}),
               ClauseInput("We may remove your content at any time.", {})]
    packed = sp.option_logprobs(clauses)
    for c, got in zip(clauses, packed):
        ctx = tok(_render(tok, c.text, c.party_names), add_special_tokens=False)["input_ids"]
        for field, k in [("party", 3), ("clause_type", 5)]:
            opt = sp.option_ids[field][k]
            seq = ctx + sp.prefix_ids[field] + opt
            with torch.inference_mode():
                lp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0].float(), -1)
            want = sum(float(lp[len(seq) - len(opt) - 1 + j, t]) for j, t in enumerate(opt))
            assert got[field][k] == pytest.approx(want, abs=1e-3)


def test_free_generation_counts_truncated_json_as_invalid(small_lm):
    model, tok = small_lm
    gen = GenerativePredictor(model, tok, "test", batch_size=2, max_new_tokens=8)  # too short for the JSON
    preds = gen.predict([ClauseInput("We may suspend your account at any time."),
                         ClauseInput("This Agreement is governed by the laws of Delaware.")])
    assert len(preds) == 2
    for p in preds:
        assert p.raw is not None and (p.answer is None) == (p.error is not None)
        assert p.error in (None, "invalid_json", "missing_key", "unknown_label")
