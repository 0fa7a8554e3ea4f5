"""bench/summary.py and the results table: SUMMARY.md is what the script makes of runs.jsonl, every row is
keyed by its run, the ratios compare only rows of one workload in one run."""

import json

import harness
import pytest
import summary

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_the_shipped_summary_is_generated_from_the_shipped_table(tmp_path):
    out = tmp_path / "SUMMARY.md"
    out.write_text(summary.document(harness.read_rows(harness.RESULTS), harness.RESULTS.parent))
    assert out.read_text() == (harness.RESULTS.parent / "SUMMARY.md").read_text(), \
        "bench/results/SUMMARY.md is stale: run python bench/summary.py"


def test_every_row_of_the_table_names_its_source_run_and_code():
    rows = harness.read_rows(harness.RESULTS)
    assert len(rows) >= 165  # the rows of every recorded device call, none dropped
    for r in rows:
        assert r["source"] in ("lora_step", "micro", "train") and r["run_id"]
        assert r.get("commit") or r.get("recorded_in_commit"), r.get("run_id")
    # rows that came from a call's own file keep it (and the commit that recorded it) beside their content
    old = [r for r in rows if r.get("recorded_in")]
    assert {r["recorded_in"].split("_")[0] for r in old} == {"lora", "micro", "train"}


def test_appending_a_calls_rows_skips_those_already_there(tmp_path):
    table, call = tmp_path / "runs.jsonl", tmp_path / "out.jsonl"
    a, b = {"source": "micro", "run_id": "A", "op": "rope"}, {"source": "micro", "run_id": "B", "op": "rope"}
    table.write_text(json.dumps(a) + "\n")
    call.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    assert summary.append_rows(call, table) == 1 and summary.append_rows(call, table) == 0
    assert [r["run_id"] for r in harness.read_rows(table)] == ["A", "B"]


def _row(backend, tok, peak=10.0, **kw):
    base = dict(source="lora_step", run_id="R", backend=backend, model="llama2-7b", micro_batch=4, seq_len=2048,
                lora_r=16, lora_alpha=32, targets=SEVEN, qlora=False, mem_cap_gib=None, offload_activations=False,
                name=backend + "7", step_s=8192 / tok, tokens_per_s=tok, peak_mem_gib=peak, peak_reserved_gib=peak + 1,
                mfu=0.5, loss_first=11.0, loss_last=9.8)
    base.update(kw)
    return base


def test_ratios_are_printed_for_matched_workloads_only():
    rows = [_row("hf", 6000.0, 18.0), _row("native", 12000.0, 16.0), _row("unsloth", 10000.0, 15.0),
            _row("native", 11000.0, 9.0, offload_activations=True, name="native7off"),
            _row("native", 13000.0, lora_r=32, lora_alpha=64, targets=["q_proj", "o_proj"], name="legal_native"),
            dict(_row("hf", 1.0, lora_r=32, lora_alpha=64, targets=["q_proj", "o_proj"], name="legal_hf"),
                 error="OOM: x")]
    text = "\n".join(summary.lora_step_lines(rows))
    assert "native/hf 2.00x" in text and "native/unsloth 1.20x" in text
    assert "native+offload/native 0.92x" in text and "native+offload/unsloth 1.10x" in text
    assert "legal_hf" in text and "ERROR OOM" in text
    assert len([x for x in text.splitlines() if "x tok/s" in x]) == 1  # the legal native row has no partner


def test_graphed_and_older_rows_keep_their_own_labels():
    rows = [_row("native", 12000.0), _row("unsloth", 10000.0),
            _row("native", 13200.0, cuda_graph=True, name="native7g"),
            _row("native", 14700.0, cuda_graph=True, offload_activations=True, offload_mlp=0.5, model="7b")]
    text = "\n".join(summary.lora_step_lines(rows))
    assert "native+graph/native 1.10x" in text and "native+graph/unsloth 1.32x" in text
    assert "native/unsloth 1.20x" in text  # the eager row is not overwritten by the graphed one
    # a row recorded before the presets named the shape ("7b") is the same workload as llama2-7b
    assert "native+offload+mlp0.5+graph/unsloth 1.47x" in text
    assert summary.label(dict(backend="native", trim_recompute=False)) == "native+fullrecompute"


@pytest.mark.parametrize("sha, short", [("0123456789abcdef0123", "0123456789ab"), ("0123456789abcdef+dirty", "0123456789ab+dirty"),
                                        (None, "?")])
def test_commits_are_shown_short(sha, short):
    assert summary._short(sha) == short


def test_the_fused_curve_is_compared_with_peft_s_curve():
    rows = [dict(source="train", curve=tag, loss=loss, strategy="single", gpus=1, backend=backend, run_id="r",
                 config="c.yaml", tokens_per_s=1.0) for tag, backend, loss in
            (("peft", "hf", [3.0, 2.5, 2.0]), ("fused", "native", [3.0, 2.6, 2.0]))]
    diffs = summary.curve_diffs(rows)
    assert set(diffs) == {"fused"} and diffs["fused"]["max"] == pytest.approx(0.1)
    assert any(line.startswith("loss curve fused vs peft: max |diff| 0.1000 at step 2") for line in summary.train_lines(rows))
