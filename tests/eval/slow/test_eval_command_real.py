"""`contract-review eval` end to end: real data, real models, bad input, run comparison."""

from __future__ import annotations

import json

from contract_review.cli import main
from contract_review.eval.metrics import STABLE_KEYS


def _stable(metrics: dict) -> None:
    for key in STABLE_KEYS:
        assert set(metrics[key]) == {"value", "ci"}, key


def test_real_zero_shot_evaluation_of_the_small_model(data_file, tmp_path, default_model):
    """The real SmolLM2 base model, zero-shot by option scoring, on 8 real records."""
    out = tmp_path / "zs"
    rc = main(["eval", "--data", str(data_file), "--model", "zero-shot", "--limit", "8", "--baselines", "none",
               "--resamples", "100", "--out", str(out), "-q"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    _stable(m)
    assert m["data"]["records"] == 8 and m["errors"]["invalid"] == 0  # scoring always gives valid labels
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(abs(sum(r["scores"]["party"].values()) - 1) < 1e-3 for r in rows)
    assert (out / "report.html").exists()


def test_claudette_runs_carry_lexglue_tfidf_svm_baseline(claudette_dir, tmp_path, data_file, capsys):
    """With --claudette the published baseline (TF-IDF + one LinearSVC per category, fit on LexGLUE's
    train companies) joins the report by default; on the real validation companies it lands near
    LexGLUE's published TF-IDF + SVM figure (75.0 m-F1 on test)."""
    out = tmp_path / "c"
    rc = main(["eval", "--claudette", str(claudette_dir), "--split", "validation", "--model", "tfidf-unfair-tos",
               "--baselines", "none", "--resamples", "0", "--no-report", "--out", str(out), "-q"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"]["name"] == "tfidf-unfair-tos"
    assert 0.6 < m["unfair_tos.macro_f1_8"]["value"] < 0.9
    capsys.readouterr()
    rc = main(["eval", "--data", str(data_file), "--baselines", "tfidf-unfair-tos", "--out", str(tmp_path / "d")])
    assert rc != 0 and "only CLAUDETTE" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_the_lexglue_baseline_as_the_model_is_not_also_added_as_its_own_baseline(claudette_dir, tmp_path):
    out = tmp_path / "m"
    assert main(["eval", "--claudette", str(claudette_dir), "--model", "tfidf-unfair-tos", "--limit", "200",
                 "--resamples", "0", "--no-report", "--out", str(out), "-q"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    # the model is not its own baseline; tfidf and the risk baselines (type oracle, type defaults) stay beside it
    assert m["model"]["name"] == "tfidf-unfair-tos" and "tfidf-unfair-tos" not in m["baselines"]
    assert set(m["baselines"]) == {"tfidf", "type-oracle (gold types, type defaults)", "type-defaults (the model's types)"}
