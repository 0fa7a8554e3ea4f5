"""The ensemble of the reviewer and the TF-IDF models: calibration, mixing, tuning, its file, and a
real run (the shipped reviewer, a real TF-IDF fit, LexGLUE's SVM) through `contract-review eval`."""

from __future__ import annotations

import json
import shutil

from contract_review.eval import ensemble as E
from contract_review.reviewer.heads import DEFAULT_ADAPTER_DIR
from contract_review.taxonomy import load_taxonomy
from contract_review.training.reviewer_model import Labels

TAX = load_taxonomy()
LABELS = Labels.from_taxonomy(TAX)
T = len(LABELS.clause_type)
SHIPPED = DEFAULT_ADAPTER_DIR / E.ENSEMBLE_FILE


def test_real_ensemble_tuned_and_run_through_the_eval_command(small_records, data_file, tiny_train, claudette_dir,
                                                              tmp_path, tfidf_cache):
    """The shipped reviewer's real head probabilities and a real TF-IDF fit on 30 real records: tune,
    write the file into an adapter folder, evaluate with `--model ensemble`; the live predictor gives
    the same answers as the tuning path."""
    from contract_review.cli import main
    from contract_review.reviewer.tfidf import load_tfidf, load_unfair_tos_tfidf
    from contract_review.eval.items import from_record
    from contract_review.reviewer.heads import load_reviewer_predictor
    from contract_review.training.reviewer_model import predict_probs

    adapter = tmp_path / "adapter"
    shutil.copytree(DEFAULT_ADAPTER_DIR, adapter, ignore=shutil.ignore_patterns(E.ENSEMBLE_FILE, "*.png", "*.gz"))
    items = [from_record(r, TAX) for r in small_records]
    reviewer = load_reviewer_predictor(adapter)
    probs = predict_probs(reviewer.model, reviewer.tokenizer, [r.input for r in small_records], reviewer.max_length)
    tfidf = load_tfidf(tiny_train, progress=False)
    unfair = load_unfair_tos_tfidf(claudette_dir, progress=False)
    scores = E.split_scores({"ids": [it.id for it in items], **probs}, items, reviewer.labels, tfidf, unfair, TAX)
    prints = {"reviewer": E.reviewer_fingerprint(adapter), "tfidf": E.tfidf_fingerprint(tfidf),
              "unfair_tos": E.unfair_fingerprint(unfair)}
    cfg = E.tune(scores, items, reviewer.labels, prints, E.TuneSettings(min_positives=2), TAX)
    E.write_config(cfg, adapter / E.ENSEMBLE_FILE)
    offline = E.decide(cfg, reviewer.labels, scores, TAX)

    live = E.EnsemblePredictor(reviewer, tfidf, unfair, cfg, prints["reviewer"]).predict(
        [it.clause_input() for it in items])
    assert [p.answer for p in live] == [p.answer for p in offline]

    out = tmp_path / "run"
    rc = main(["eval", "--data", str(data_file), "--model", "ensemble", "--adapter", str(adapter), "--tfidf-train",
               str(tiny_train), "--baselines", "tfidf", "--resamples", "50", "--no-report", "--out", str(out), "-q"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"]["name"] == "ensemble" and m["data"]["records"] == 30 and m["errors"]["invalid"] == 0
    assert m["risk.f1"]["value"] is not None and "tfidf" in m["baselines"]
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [tuple(r["pred"]["clause_types"]) for r in rows] == [p.answer.clause_types for p in offline]
