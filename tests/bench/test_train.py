"""bench/train.py's rows from run folders as the recipe writes them (median after the warm-up, MFU, per-rank
peak memory, error rows), and what summary.py derives across the rows of a run (scaling efficiency, step-1
loss against hf, loss curves)."""

import json
from pathlib import Path

import pytest
import summary
import train

from contract_review.training.config import dump_config, load_config

ROOT = Path(__file__).resolve().parents[2]
H200 = 989.4e12
BENCH = ["model.config=llama2-7b", "lora.r=16", "lora.target_modules=all-linear", "data.max_length=2048",
         "optim.batch_size=4"]


def _run(tmp: Path, name: str, config: str, overrides: list[str], steps, stop, fpt: float = 4.0e10):
    """A run folder as the recipe writes it (steps: (loss, step_s, tokens)); returns (folder, its config)."""
    run = tmp / name
    run.mkdir(parents=True)
    cfg = load_config(ROOT / "configs" / config, overrides)
    (run / "config.yaml").write_text(dump_config(cfg))
    events = [{"event": "start", "step": 0, "backend": cfg.backend, "world_size": 1, "card": "NVIDIA H200",
               "flops_per_token": fpt, "peak_flops": H200, "train_rows": 100, "attn_implementation": "sdpa"}]
    for i, (loss, dt, tok) in enumerate(steps or [], 1):
        events.append({"event": "step", "step": i, "loss": loss, "tokens": tok, "step_s": dt,
                       "tokens_per_s": tok / dt, "peak_mem_gib": 10.0})
    if stop is not None:
        events.append({"event": "stop", "step": len(steps or []), "reason": "max_steps", **stop})
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run, cfg.model_dump(mode="json")


def _row(tmp, name, config, overrides, steps, stop, gpus=1, warmup=2, rc=0, log=None, **base):
    run, cfg = _run(tmp, name, config, overrides, steps, stop)
    base = {"source": "train", "name": name, "run_id": "R1", **base}
    return train.build_row(base, cfg, run, gpus, warmup, rc, 100, log)


WARM = [(10.9, 5.0, 8192), (10.8, 2.0, 8192)]


def test_a_row_is_the_median_after_the_warmup_with_mfu_and_the_configs_fields(tmp_path):
    r = _row(tmp_path, "native", "llama2-7b_lora_1gpu.yaml", BENCH + ["backend=native"],
             WARM + [(10.7, 1.0, 8192), (10.6, 0.8, 8192), (10.5, 1.2, 8192)],
             {"peak_mem_gib": 16.1, "peak_mem_gib_per_rank": [16.1]})
    for key in ("backend", "strategy", "gpus", "tokens_per_s", "peak_mem_gib", "fast_path", "card", "model",
                "micro_batch", "seq_len", "lora_r", "mfu", "loss", "peak_mem_gib_per_rank", "kernels"):
        assert key in r, key
    assert (r["backend"], r["strategy"], r["model"], r["micro_batch"], r["seq_len"]) == ("native", "single",
                                                                                          "llama2-7b", 4, 2048)
    assert r["tokens_per_s"] == pytest.approx(8192) and r["n_timed"] == 3  # the warm-up steps are not counted
    assert r["mfu"] == pytest.approx(8192 * 4.0e10 / H200) and r["card"] == "NVIDIA H200"
    assert r["loss"] == [10.9, 10.8, 10.7, 10.6, 10.5] and r["fast_path"] is None and "error" not in r


def test_zero3_rows_name_their_stage_and_offload(tmp_path):
    z3 = ["distributed.strategy=deepspeed", "backend=native"]
    r = _row(tmp_path, "z3", "llama2-13b_lora_zero3.yaml", BENCH + z3, WARM + [(10.7, 1.0, 14746)],
             {"peak_mem_gib": 14.3, "peak_mem_gib_per_rank": [14.3, 14.2]}, gpus=2)
    assert r["strategy"] == "zero3" and r["zero"]["param_persistence_threshold"] == 1_000_000
    assert r["mfu"] == pytest.approx(14746 * 4.0e10 / (2 * H200)) and r["peak_mem_gib_per_rank"] == [14.3, 14.2]
    off = _row(tmp_path, "off", "llama2-13b_lora_zero3.yaml", BENCH + z3 + ["distributed.offload_params=true"],
               WARM, None)
    assert off["strategy"] == "zero3_offload"


def test_a_killed_run_is_an_error_row_with_what_it_measured_and_the_logs_reason(tmp_path):
    log = tmp_path / "killed.log"
    log.write_text("step 3\n[rank0]: RuntimeError: NCCL timeout in all_gather\nChildFailedError:\n")
    r = _row(tmp_path, "killed", "llama2-13b_lora_zero3.yaml", BENCH + ["model.config=llama2-13b"],
             WARM + [(10.7, 4.0, 4096)], None, gpus=2, rc=124, log=log)
    assert r["error"].startswith("killed at the 100s time cap (rc 124)") and "NCCL timeout" in r["error"]
    assert r["tokens_per_s"] == pytest.approx(1024) and r["model"] == "llama2-13b"
    assert "rank 0 only" in r["peak_mem_note"]
    never = train.build_row({"source": "train"}, load_config(ROOT / "configs" / "llama2-7b_lora_1gpu.yaml").model_dump(
        mode="json"), tmp_path / "never", 1, 2, 1, 100, None)
    assert never["error"] == "exit status 1" and never["tokens_per_s"] is None


def test_the_summary_derives_scaling_loss_agreement_and_curves_within_a_run(tmp_path):
    single = _row(tmp_path, "s", "llama2-7b_lora_1gpu.yaml", BENCH + ["backend=native"],
                  WARM + [(10.7, 1.0, 8192)], {"peak_mem_gib": 16.0})
    hf = _row(tmp_path, "h", "llama2-7b_lora_1gpu.yaml", BENCH + ["backend=hf"],
              [(10.9, 5.0, 8192), (10.8, 2.0, 8192), (10.71, 2.0, 8192)], {"peak_mem_gib": 18.0})
    z1 = _row(tmp_path, "z1", "llama2-13b_lora_zero3.yaml", BENCH + ["backend=native"],
              WARM + [(10.7, 2.0, 8192)], {"peak_mem_gib": 19.0})
    z2 = _row(tmp_path, "z2", "llama2-13b_lora_zero3.yaml", BENCH + ["backend=native"],
              WARM + [(10.7, 1.0, 14746)], {"peak_mem_gib": 14.3, "peak_mem_gib_per_rank": [14.3, 14.3]}, gpus=2)
    rows = [single, hf, z1, z2]
    eff = summary.scaling(z2, rows)
    assert eff["vs_single_native"] == pytest.approx(14746 / (2 * 8192))
    assert eff["vs_same_strategy_1gpu"] == pytest.approx(14746 / (2 * 4096))
    assert summary.scaling(z1, rows) == {}  # one GPU: nothing to scale
    assert summary.loss_vs_hf(single, rows)["max"] == pytest.approx(0.01)
    assert summary.loss_vs_hf(single, rows)["first"] == pytest.approx(0)
    c1 = dict(single, curve="single", loss=[10.8, 9.0, 8.0])
    c2 = dict(z2, curve="zero3_2gpu", loss=[10.8, 9.05, 7.98])
    d = summary.curve_diffs([c1, c2])["zero3_2gpu"]
    assert d["max"] == pytest.approx(0.05) and d["max_at_step"] == 2 and d["first"] == 0
    text = "\n".join(summary.train_lines(rows + [c1, c2]))
    assert "scaling=0.90" in text and "|dloss| vs hf step1 0.0000" in text and "loss curve zero3_2gpu" in text
    png = summary.plot_curves([c1, c2], tmp_path / "curves.png")
    assert png.exists() and png.stat().st_size > 10_000
