"""The served model's mix end to end on real parts: the shipped reviewer's head probabilities saved by
`eval --save-probs`, a real TF-IDF fit and LexGLUE's SVM, tuned by `eval tune-ensemble`, reported by
`eval ensemble-report` and evaluated with `eval --model ensemble`."""

from __future__ import annotations

import json
import shutil

import torch

from contract_review.cli import main
from contract_review.eval.ensemble_tune import load_tuning_data
from contract_review.records import write_records
from contract_review.reviewer.ensemble import ENSEMBLE_FILE, Scores, baseline_scores, decide, read_config
from contract_review.reviewer.heads import load_reviewer_predictor
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR
from contract_review.taxonomy import load_taxonomy


def test_saved_probabilities_tune_and_report_the_mix_and_eval_runs_it_as_tuned(
        small_records, data_file, tiny_train, claudette_dir, tmp_path, tfidf_cache):
    adapter = tmp_path / "adapter"
    shutil.copytree(DEFAULT_ADAPTER_DIR, adapter, ignore=shutil.ignore_patterns(ENSEMBLE_FILE, "*.png", "*.gz"))
    dataset = tmp_path / "dataset"
    write_records(dataset / "validation.jsonl", small_records)
    probs = tmp_path / "probs.pt"
    parts = ["--adapter", str(adapter), "--dataset", str(dataset), "--tfidf-train", str(tiny_train),
             "--claudette", str(claudette_dir)]

    # 1. the head probabilities, rows in the split file's order
    assert main(["eval", "--save-probs", str(probs), "--adapter", str(adapter), "--dataset", str(dataset),
                 "--splits", "validation", "-q"]) == 0
    saved = torch.load(probs)
    assert list(saved) == ["validation"] and saved["validation"]["ids"] == [r.id for r in small_records]
    p = saved["validation"]
    # the shipped reviewer's four heads: every type of the taxonomy, who bears the risk and how severe
    types = load_taxonomy().clause_type_ids
    assert p["clause_type"].shape == (30, len(types)) and p["party"].shape == (30, 4)
    assert p["risk_to"].shape == (30, 4) and p["severity"].shape == (30, 4) and p["severity"].dtype == torch.float16
    assert torch.allclose(p["risk_to"].float().sum(1), torch.ones(30), atol=1e-2)
    assert torch.allclose(p["severity"].float().sum(1), torch.ones(30), atol=1e-2)

    # 2. tuned on them, 3. reported against its parts
    out = adapter / ENSEMBLE_FILE
    assert main(["eval", "tune-ensemble", "--probs", str(probs), *parts, "--min-positives", "2",
                 "--out", str(out)]) == 0
    cfg = read_config(out)
    assert cfg.tuned["split"] == "validation" and cfg.tuned["records"] == 30
    report = tmp_path / "report.json"
    assert main(["eval", "ensemble-report", "--probs", str(probs), *parts, "--config", str(out), "--crossfit", "2",
                 "--resamples", "20", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())
    models = {r["model"] for r in rows["runs"]}
    assert {"reviewer", "tfidf", "ensemble", "ensemble, 2-fold cross-fit"} <= models
    assert {r["model"] for r in rows["paired"]} == {"ensemble - reviewer", "ensemble, 2-fold cross-fit - reviewer"}

    # 4. `eval --model ensemble` runs the mix live and decides as the tuning path does on the same
    # (float32) probabilities
    data = load_tuning_data(probs, adapter=adapter, dataset=dataset, tfidf_train=tiny_train, claudette=claudette_dir)
    items, _ = data.splits["validation"]
    reviewer = load_reviewer_predictor(adapter)
    fp32 = Scores(reviewer.head_probs([it.clause_input() for it in items]),
                  *baseline_scores([it.text for it in items], reviewer.labels, data.tfidf, data.unfair))
    offline = decide(cfg, reviewer.labels, fp32)
    run = tmp_path / "run"
    assert main(["eval", "--data", str(data_file), "--model", "ensemble", "--adapter", str(adapter), "--tfidf-train",
                 str(tiny_train), "--baselines", "tfidf", "--resamples", "50", "--no-report", "--out", str(run),
                 "-q"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["model"]["name"] == "ensemble" and m["data"]["records"] == 30 and m["errors"]["invalid"] == 0
    assert m["risk.f1"]["value"] is not None and "tfidf" in m["baselines"]
    predicted = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in predicted] == [it.id for it in items]
    assert [tuple(r["pred"]["clause_types"]) for r in predicted] == [x.answer.clause_types for x in offline]
    assert [r["pred"]["risk"] for r in predicted] == [x.answer.risk for x in offline]
