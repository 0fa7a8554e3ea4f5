"""The benchmarks' tests: the scripts in bench/ import their siblings (harness, step_profile, timeline) by name,
as `python bench/<script>.py` does; bench/ goes on the path here. Nothing here needs a GPU."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch) -> Path:
    """A results table of each test's own (the harness's BENCH_RESULTS), and a run id: no test writes to
    bench/results/runs.jsonl."""
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv("BENCH_RESULTS", str(path))
    monkeypatch.setenv("RUN_ID", "R1")
    monkeypatch.delenv("BENCH_NAME", raising=False)
    monkeypatch.delenv("BENCH_COMMIT", raising=False)
    return path
