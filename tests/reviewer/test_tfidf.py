"""The TF-IDF baseline as a predictor: valid answers with scores, fitted once and cached."""

from __future__ import annotations

from contract_review.predictor import ClauseInput
from contract_review.reviewer.tfidf import load_tfidf


def test_tfidf_baseline_gives_valid_answers_with_scores(tiny_train, small_records, tfidf_cache):
    p = load_tfidf(tiny_train, progress=False)
    preds = p.predict([ClauseInput(r.text, r.party_names) for r in small_records])
    assert len(preds) == len(small_records) and all(x.answer is not None for x in preds)
    assert all(abs(sum(x.scores["risk"].values()) - 1) < 1e-3 for x in preds)
    assert list(tfidf_cache.glob("eval/tfidf-*.pkl"))  # cached: the second load does not refit
    again = load_tfidf(tiny_train, progress=False)
    assert again.fitted["train_sha"] == p.fitted["train_sha"]
