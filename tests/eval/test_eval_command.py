"""`contract-review eval` end to end: real data, real models, bad input, run comparison."""

from __future__ import annotations

import json

import pytest
from eval_testing import TablePredictor, invalid, item, pred

from contract_review.cli import main
from contract_review.eval.compare import CompareError, compare_runs
from contract_review.eval.metrics import STABLE_KEYS
from contract_review.eval.runner import evaluate
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR, ENSEMBLE_FILE


def _stable(metrics: dict) -> None:
    for key in STABLE_KEYS:
        assert set(metrics[key]) == {"value", "ci"}, key


def test_tfidf_run_writes_metrics_predictions_report(data_file, tiny_train, tmp_path, tfidf_cache, capsys):
    out = tmp_path / "run"
    rc = main(["eval", "--data", str(data_file), "--model", "tfidf", "--tfidf-train", str(tiny_train),
               "--baselines", "none", "--resamples", "100", "--out", str(out), "-q"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    _stable(m)
    assert m["data"]["records"] == 30 and m["data"]["verified_records"] == 6
    assert m["party.accuracy"]["value"] is not None and m["risk.f1"]["ci"] is not None
    assert m["timing"]["clauses_per_second"] > 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 30
    for f in ("report.md", "report.html", "figures/confusion_risk.png", "figures/pr_risk.png",
              "figures/per_class_f1.png"):
        assert (out / f).stat().st_size > 0, f
    assert "Worst errors" in (out / "report.md").read_text()
    assert not list(tmp_path.glob(".run.tmp-*"))


def _expect_clean_failure(capsys, out, args, message):
    rc = main(args + ["--out", str(out), "-q", "--baselines", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_bad_input_gives_a_clear_message_and_no_output(tmp_path, data_file, capsys):
    lines = data_file.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[:3] + ['{"id": "oops", '] + lines[3:]) + "\n")
    _expect_clean_failure(capsys, tmp_path / "o1", ["eval", "--data", str(broken), "--model", "tfidf"],
                          "broken.jsonl:4: not valid JSON")
    unknown = tmp_path / "unknown.jsonl"
    rec = json.loads(lines[0])
    rec["risk"] = "catastrophic"
    unknown.write_text(json.dumps(rec) + "\n")
    _expect_clean_failure(capsys, tmp_path / "o2", ["eval", "--data", str(unknown), "--model", "tfidf"],
                          "risk 'catastrophic' is not in the taxonomy")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _expect_clean_failure(capsys, tmp_path / "o3", ["eval", "--data", str(empty)], "no records in file")
    _expect_clean_failure(capsys, tmp_path / "o4", ["eval", "--data", str(tmp_path / "nope.jsonl")],
                          "file not found")
    _expect_clean_failure(capsys, tmp_path / "o5",
                          ["eval", "--data", str(data_file), "--model", str(tmp_path / "no-model")],
                          "model folder does not exist")
    _expect_clean_failure(capsys, tmp_path / "o6",
                          ["eval", "--data", str(data_file), "--adapter", str(tmp_path / "no-adapter")],
                          "adapter folder does not exist")


def test_a_failure_during_prediction_leaves_no_partial_run(tmp_path):
    class Broken:
        name, model_version = "broken", "b"

        def predict(self, clauses, progress=False):
            raise RuntimeError("out of memory")

    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        evaluate([item(0)], [(Broken(), 0.0)], out, {"file": "x"}, resamples=10)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_compare_gives_paired_differences_and_refuses_unpaired_runs(tmp_path, capsys):
    items = [item(i, "high" if i % 3 == 0 else "none", ("non_compete",) if i % 3 == 0 else ("other",),
                  doc=f"d{i % 7}") for i in range(60)]
    good = TablePredictor({it.text: pred(it.risk, it.clause_types) for it in items}, "good")
    bad = TablePredictor({it.text: (invalid() if i % 5 == 0 else pred()) for i, it in enumerate(items)}, "bad")
    evaluate(items, [(good, 0.0)], tmp_path / "a", {"file": "x"}, resamples=50, make_report=False)
    evaluate(items, [(bad, 0.0), (good, 0.0)], tmp_path / "b", {"file": "x"}, resamples=50)
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert b["errors"]["invalid"] == 12 and b["baselines"]["good"]["risk.f1"]["value"] == 1.0
    result = compare_runs(tmp_path / "a", tmp_path / "b", resamples=200)
    r = result["metrics"]["risk.f1"]
    assert r["a"] == 1.0 and r["b"] == 0.0 and r["diff"] == 1.0 and r["ci"][0] > 0
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "50"]) == 0
    assert "risk.f1" in capsys.readouterr().out
    # the baseline sub-run of B is a run of its own: identical to A
    same = compare_runs(tmp_path / "a", tmp_path / "b" / "baselines" / "good", resamples=50)
    assert same["metrics"]["risk.f1"]["diff"] == 0
    evaluate(items[:30], [(good, 0.0)], tmp_path / "c", {"file": "x"}, resamples=10, make_report=False)
    with pytest.raises(CompareError, match="same records"):
        compare_runs(tmp_path / "a", tmp_path / "c")


def test_claudette_layout_gives_lexglue_labels_and_splits(claudette_dir):
    from contract_review.annotation.cuad import CorpusError
    from contract_review.eval.claudette_eval import load_claudette_items

    items = load_claudette_items(claudette_dir, "validation")
    assert len({it.doc_id for it in items}) == 10
    lines = (claudette_dir / "Labels_LTD" / "Nintendo.txt").read_text().split()
    nintendo = [it for it in items if it.doc_id == "claudette/Nintendo"]
    assert [("LTD" in it.unfair) for it in nintendo] == [v == "1" for v in lines][: len(nintendo)]
    with pytest.raises(CorpusError, match="no company of LexGLUE's test split"):
        load_claudette_items(claudette_dir, "test")


def test_the_ensemble_spec_refuses_a_tfidf_fit_it_was_not_tuned_with(tmp_path, tiny_train, tfidf_cache, capsys,
                                                                     data_file):
    """The shipped file was tuned against the full train split; a TF-IDF fit on another file is refused
    before the reviewer is loaded, with the command that re-tunes."""
    if not (DEFAULT_ADAPTER_DIR / ENSEMBLE_FILE).exists():
        pytest.skip("no shipped ensemble file")
    rc = main(["eval", "--data", str(data_file), "--model", "ensemble", "--tfidf-train", str(tiny_train),
               "--baselines", "none", "--out", str(tmp_path / "x"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match the models it would mix" in err and "tfidf: tuned with" in err
    assert "contract-review eval tune-ensemble" in err and not (tmp_path / "x").exists()
