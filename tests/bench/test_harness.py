"""bench/harness.py: what every row records, the table it goes to, and the rows of what left none."""

import os
import re
import subprocess
import sys

import harness
import pytest


def test_a_row_records_the_code_the_machine_and_the_command(results, monkeypatch):
    monkeypatch.setenv("BENCH_NAME", "native7")
    row = harness.record("lora_step", ["bench/lora_step.py", "--config", "configs/x.yaml", "backend=hf"])
    assert row["source"] == "lora_step" and row["name"] == "native7" and row["run_id"] == "R1"
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", row["commit"])  # this checkout's HEAD
    assert row["card"] == "cpu" and row["versions"]["torch"] and row["versions"]["transformers"]
    assert row["command"] == "bench/lora_step.py --config configs/x.yaml backend=hf"
    monkeypatch.setenv("BENCH_COMMIT", "0123abc")  # a machine without the git history is told the commit
    assert harness.record("micro")["commit"] == "0123abc"


def test_rows_are_appended_and_read_back_a_cut_line_skipped(results):
    harness.append({"source": "micro", "op": "rope"})
    harness.append({"source": "micro", "op": "swiglu"})
    with results.open("a") as fh:
        fh.write('{"source": "micro", "op": "rms')  # a process killed mid-line
    assert [r["op"] for r in harness.read_rows()] == ["rope", "swiglu"]


def test_a_command_that_left_no_row_gets_one(results):
    cmd = [sys.executable, "bench/harness.py", "missing", "--why", "killed at its cap", "--",
           "python3", "bench/lora_step.py", "--config", "c.yaml"]
    subprocess.run(cmd, check=True, cwd=harness.ROOT, capture_output=True)
    (row,) = harness.read_rows()
    assert row["source"] == "lora_step" and row["error"] == "killed at its cap" and row["run_id"] == "R1"
    assert row["command"] == "python3 bench/lora_step.py --config c.yaml"
    env_name = {"BENCH_NAME": "other"}
    has = [sys.executable, "bench/harness.py", "has-row"]
    assert subprocess.run(has, cwd=harness.ROOT, env={**os.environ, **env_name}).returncode == 1
    harness.append({"source": "micro", "name": "other", "run_id": "R1"})
    assert subprocess.run(has, cwd=harness.ROOT, env={**os.environ, **env_name}).returncode == 0


def test_sigterm_writes_the_running_row_with_its_stage(results, monkeypatch):
    exits = []
    monkeypatch.setattr(harness.os, "_exit", lambda code: exits.append(code))
    live = harness.Live()
    live.row = {"source": "lora_step", "micro_batch": 4}
    live.stage = "micro_batch 4 step 2/10"
    live._on_sigterm(15, None)
    (row,) = harness.read_rows()
    assert row["error"] == "timeout: SIGTERM during micro_batch 4 step 2/10" and exits == [124]


def test_timed_steps_leave_out_the_warmup():
    calls = []
    times, values, host = harness.timed_steps(lambda: calls.append(1) or float(len(calls)), warmup=2, steps=3)
    assert len(calls) == 5 and values == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(times) == len(host) == 3 and all(h <= t for h, t in zip(host, times))


@pytest.mark.parametrize("command, source", [
    (["python3", "bench/micro.py"], "micro"), (["python3", "bench/train.py", "run"], "train"),
    (["python3", "-m", "pytest", "tests/kernels"], None)])
def test_the_source_of_a_command(command, source):
    assert harness.source_of(command) == source
