"""Backends: malformed model output, the TF-IDF baseline, packed option scoring, load_predictor."""

from __future__ import annotations

import pytest
import torch

from contract_review.eval.predict import load_predictor
from contract_review.predictor import ClauseInput, PredictorError
from contract_review.eval.zero_shot import parse_prediction
from contract_review.training.models import default_model_dir

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


def test_tfidf_baseline_gives_valid_answers_with_scores(tiny_train, small_records, tmp_path, monkeypatch):
    import contract_review.eval.baselines as baselines

    monkeypatch.setattr(baselines, "cache_dir", lambda: tmp_path)
    p = load_predictor("tfidf", tfidf_train=str(tiny_train), progress=False)
    preds = p.predict([ClauseInput(r.text, r.party_names) for r in small_records])
    assert len(preds) == len(small_records) and all(x.answer is not None for x in preds)
    assert all(abs(sum(x.scores["risk"].values()) - 1) < 1e-3 for x in preds)
    assert list(tmp_path.glob("eval/tfidf-*.pkl"))  # cached: the second load does not refit
    again = load_predictor("tfidf", tfidf_train=str(tiny_train), progress=False)
    assert again.fitted["train_sha"] == p.fitted["train_sha"]


def test_missing_model_or_adapter_is_named(tmp_path):
    from contract_review.training.models import ModelError

    with pytest.raises(ModelError, match="does not exist"):
        load_predictor(str(tmp_path / "no-such-model"))
    with pytest.raises(PredictorError, match="does not exist"):
        load_predictor("default", adapter=str(tmp_path / "no-such-adapter"))
    with pytest.raises(PredictorError, match="decode"):
        load_predictor("zero-shot", decode="beam")


needs_model = pytest.mark.skipif(not (default_model_dir() / "model.safetensors").exists(),
                                 reason="the default model is not converted on this machine "
                                        "(`contract-review doctor` or any training run converts it)")


@pytest.fixture(scope="module")
def small_lm():
    from contract_review.eval.zero_shot import load_causal_lm

    return load_causal_lm("default")


@needs_model
def test_packed_option_scores_equal_one_forward_per_option(small_lm):
    from contract_review.eval.zero_shot import ScoringPredictor, _render

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


@needs_model
def test_free_generation_counts_truncated_json_as_invalid(small_lm):
    from contract_review.eval.zero_shot import GenerativePredictor

    model, tok = small_lm
    gen = GenerativePredictor(model, tok, "test", batch_size=2, max_new_tokens=8)  # too short for the JSON
    preds = gen.predict([ClauseInput("We may suspend your account at any time."),
                         ClauseInput("This Agreement is governed by the laws of Delaware.")])
    assert len(preds) == 2
    for p in preds:
        assert p.raw is not None and (p.answer is None) == (p.error is not None)
        assert p.error in (None, "invalid_json", "missing_key", "unknown_label")
