"""bench/timeline.py: the compute stream's gaps in a profiled step, read from a Chrome trace."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "timeline.py"
_spec = importlib.util.spec_from_file_location("bench_timeline", SCRIPT)
tl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tl)


def _ev(name, cat, stream, ts, dur, nbytes=None):
    args = {"stream": stream, "device": 0}
    if nbytes is not None:
        args["bytes"] = nbytes
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


def _trace():
    # compute stream 7 (and 9, as a replayed graph files some kernels): gemm, a 500 us gap that ends as the
    # copy on stream 20 ends (a wait), the loss kernel, then a 100 us gap with no copy near its end, then a
    # backward gemm; a CPU op that must be ignored
    return {"traceEvents": [
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 5000, "args": {}},
        _ev("nvjet_gemm_a", "kernel", 7, 1000, 1000),
        _ev("Memcpy DtoH (Device -> Pinned)", "gpu_memcpy", 20, 1100, 1390, nbytes=64 * 2**20),
        _ev("_cross_entropy_kernel", "kernel", 7, 2500, 200),
        _ev("nvjet_gemm_b", "kernel", 7, 2800, 1000),
        _ev("Memcpy HtoD (Pinned -> Device)", "gpu_memcpy", 20, 2900, 700, nbytes=32 * 2**20),
        _ev("elementwise", "kernel", 9, 3801, 10),  # 1 us apart: launch spacing, not a gap; a graph's other stream
    ]}


def test_gaps_are_found_placed_and_attributed(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(_trace()))
    s = tl.analyse_file(path)
    assert s["gaps"] == 2
    assert s["span_ms"] == 2.81 and s["compute_busy_ms"] == 2.21
    assert s["forward_ms"] == 1.7  # to the loss kernel's end
    first, second = sorted(s["largest"], key=lambda g: g["at_ms"])
    assert (first["ms"], first["phase"], first["copy_wait"]) == (0.5, "forward", True)
    assert first["after"] == "nvjet_gemm_a" and first["before"] == "_cross_entropy_kernel"
    assert (second["ms"], second["phase"], second["copy_wait"]) == (0.1, "backward", False)
    assert s["gap_ms_copy_wait"] == 0.5 and s["gap_ms_forward"] == 0.5 and s["gap_ms_backward"] == 0.1
    d2h, h2d = s["copies"]["D2H"], s["copies"]["H2D"]
    assert d2h["n"] == 1 and d2h["bytes"] == 64 * 2**20 and abs(d2h["GB_per_s"] - 48.3) < 0.1
    assert h2d["n"] == 1 and abs(h2d["GB_per_s"] - 47.9) < 0.1
    text = "\n".join(tl.report(s))
    assert "2 gaps" in text and "copies D2H: 1 in 1.39 ms, 64 MiB, 48.3 GB/s" in text


def test_a_trace_without_gpu_events_says_so():
    s = tl.analyse(tl.gpu_events({"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "x", "ts": 0, "dur": 1}]}))
    assert s == {"error": "no GPU events in the trace"}
    assert tl.report(s) == ["timeline: no GPU events in the trace"]

