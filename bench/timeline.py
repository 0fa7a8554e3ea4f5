"""Where a profiled step's compute stream idles, from torch.profiler's Chrome trace.

The kernel totals of ``step_profile.profile_step`` say what the GPU spends its time on; they cannot say how
long it waits. A graphed 7B step with both offloads summed to ~530 ms of kernels in a ~563 ms step
(run 20261128T212854Z-stash3): ~30 ms of idling with no account of where. This reads the trace's GPU events
(kernels, memcpys, memsets), takes every kernel and memset as the compute chain (on any stream) and the
memcpys as the copy engines' work beside it, and lists the chain's gaps: where in the step (before the loss
kernel = forward, after = backward), between which kernels, and whether a copy ended just as the gap did
(the chain was waiting for that copy's event). Memcpy totals give the achieved PCIe bandwidth per direction.
"""

from __future__ import annotations

import json
from pathlib import Path

GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
MIN_GAP_US = 3.0  # shorter gaps are launch spacing inside a graph, not waits
COPY_WAIT_US = 25.0  # a gap ending this soon after a copy ends is counted as a wait for that copy


def gpu_events(trace: dict) -> list[dict]:
    """(name, cat, stream, start us, end us, bytes) of every GPU event, by start time."""
    out = []
    for e in trace.get("traceEvents", []):
        if e.get("cat") not in GPU_CATS or "dur" not in e or "ts" not in e:
            continue
        args = e.get("args") or {}
        ts = float(e["ts"])
        out.append({"name": e.get("name", "?"), "cat": e["cat"], "stream": args.get("stream"), "start": ts,
                    "end": ts + float(e["dur"]), "bytes": args.get("bytes")})
    return sorted(out, key=lambda x: x["start"])


def _copy_direction(name: str) -> str:
    low = name.lower()
    if "dtoh" in low or "device -> pinned" in low or "device -> pageable" in low:
        return "D2H"
    if "htod" in low or ("-> device" in low and "device ->" not in low):
        return "H2D"
    return "other"


def analyse(events: list[dict], loss_kernel: str = "cross_entropy", top: int = 15) -> dict:
    """Gaps of the compute stream and copy totals; times in ms from the step's first GPU event."""
    if not events:
        return {"error": "no GPU events in the trace"}
    # The compute chain is every kernel and memset, whatever stream the trace files it under: a replayed CUDA
    # graph runs its nodes on streams of the driver's choosing (the first version took the busiest stream
    # and saw half the kernels). Copies run on the copy engines beside it.
    work = [e for e in events if e["cat"] != "gpu_memcpy"]
    if not any(e["cat"] == "kernel" for e in work):
        return {"error": "no kernels in the trace"}
    t0 = events[0]["start"]
    t1 = max(e["end"] for e in events)
    losses = [e for e in work if loss_kernel in e["name"]]
    split = max(e["end"] for e in losses) if losses else None
    copy_ends = sorted(e["end"] for e in events if e["cat"] == "gpu_memcpy")

    def waited_for_copy(gap_end: float) -> bool:
        import bisect

        i = bisect.bisect_right(copy_ends, gap_end + 2.0)
        return i > 0 and gap_end - copy_ends[i - 1] <= COPY_WAIT_US

    gaps, busy, last_end, prev = [], 0.0, None, None
    for e in work:
        if last_end is not None and e["start"] - last_end >= MIN_GAP_US:
            gaps.append({"at_ms": (last_end - t0) / 1e3, "ms": (e["start"] - last_end) / 1e3,
                         "after": prev["name"][:70], "before": e["name"][:70],
                         "phase": "forward" if split is None or e["start"] <= split else "backward",
                         "copy_wait": waited_for_copy(e["start"])})
        # busy: the union of the intervals (a kernel overlapping the one before counts only past its end)
        busy += max(0.0, e["end"] - max(e["start"], last_end if last_end is not None else e["start"]))
        last_end = e["end"] if last_end is None else max(last_end, e["end"])
        prev = e
    copies: dict = {}
    for e in events:
        if e["cat"] != "gpu_memcpy":
            continue
        c = copies.setdefault(_copy_direction(e["name"]), {"n": 0, "ms": 0.0, "bytes": 0})
        c["n"] += 1
        c["ms"] += (e["end"] - e["start"]) / 1e3
        c["bytes"] += int(e["bytes"] or 0)
    for c in copies.values():
        c["GB_per_s"] = round(c["bytes"] / (c["ms"] * 1e6), 1) if c["ms"] and c["bytes"] else None
        c["ms"] = round(c["ms"], 2)

    def total(pred) -> float:
        return round(sum(g["ms"] for g in gaps if pred(g)), 2)

    return {
        "span_ms": round((t1 - t0) / 1e3, 2),
        "compute_busy_ms": round(busy / 1e3, 2),
        "forward_ms": round((split - t0) / 1e3, 2) if split is not None else None,
        "gaps": len(gaps),
        "gap_ms": total(lambda g: True),
        "gap_ms_forward": total(lambda g: g["phase"] == "forward"),
        "gap_ms_backward": total(lambda g: g["phase"] == "backward"),
        "gap_ms_copy_wait": total(lambda g: g["copy_wait"]),
        "copies": copies,
        "largest": sorted(gaps, key=lambda g: -g["ms"])[:top],
    }


def report(summary: dict) -> list[str]:
    if "error" in summary:
        return [f"timeline: {summary['error']}"]
    s = summary
    lines = [f"timeline: span {s['span_ms']:.1f} ms, compute stream busy {s['compute_busy_ms']:.1f} ms, "
             f"forward (to the loss kernel's end) {s['forward_ms']} ms; {s['gaps']} gaps of >= {MIN_GAP_US:g} us: "
             f"{s['gap_ms']:.1f} ms (forward {s['gap_ms_forward']:.1f}, backward {s['gap_ms_backward']:.1f}; "
             f"ending as a copy ended: {s['gap_ms_copy_wait']:.1f})"]
    for d, c in sorted(s["copies"].items()):
        lines.append(f"  copies {d}: {c['n']} in {c['ms']} ms, {c['bytes'] / 2**20:.0f} MiB, {c['GB_per_s']} GB/s")
    lines.append(f"  {'at ms':>8s} {'gap ms':>7s} {'phase':8s} {'copy?':5s}  after -> before")
    for g in s["largest"]:
        lines.append(f"  {g['at_ms']:8.2f} {g['ms']:7.3f} {g['phase']:8s} {'yes' if g['copy_wait'] else '':5s}  "
                     f"{g['after']} -> {g['before']}")
    return lines


def analyse_file(path: Path) -> dict:
    return analyse(gpu_events(json.loads(Path(path).read_text())))
