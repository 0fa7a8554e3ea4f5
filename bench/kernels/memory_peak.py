"""What is alive on the GPU at a step's memory peak, from the caching allocator's recorded history.

``peak_mem_gib`` says how high a step's memory goes, not what is there. With a graphed step the peak is
the capture's (replays allocate nothing), so the history is recorded over the warm-up and capture steps:
``torch.cuda.memory._record_memory_history`` keeps every allocation and free with its Python stack. This
replays them in order, finds the moment allocated memory is highest, and groups the blocks alive then by
the innermost frame outside torch itself (``kernels/lora.py:205 projection_forward``): which tensors make
the peak, and so what a change must remove to lower it.
"""

from __future__ import annotations

import os

_TORCH = os.sep + "torch" + os.sep


def _site(frames: list[dict], depth: int = 2) -> str:
    """The innermost ``depth`` frames outside torch's own files, innermost first."""
    out = []
    for f in frames or ():
        name = f.get("filename", "?")
        if _TORCH in name or name.startswith("<"):
            continue
        out.append(f"{'/'.join(name.split(os.sep)[-2:])}:{f.get('line')} {f.get('name')}")
        if len(out) == depth:
            break
    return " < ".join(out) or "(torch internals)"


def peak(trace: list[dict], baseline: int = 0) -> dict:
    """Replays one device's trace entries: the peak's bytes (``baseline``: allocated before recording began)
    and the blocks alive at it, grouped by allocation site."""
    free_action = "free_completed" if any(e.get("action") == "free_completed" for e in trace) else "free_requested"
    live: dict[int, dict] = {}
    cur = best = 0
    best_live: list[dict] = []
    best_at = -1
    for i, e in enumerate(trace):
        act = e.get("action")
        if act == "alloc":
            live[e["addr"]] = e
            cur += e["size"]
            if cur > best:
                best, best_at = cur, i
                best_live = list(live.values())
        elif act == free_action and e.get("addr") in live:
            cur -= live.pop(e["addr"])["size"]
    sites: dict[str, list] = {}
    for e in best_live:
        s = sites.setdefault(_site(e.get("frames")), [0, 0])
        s[0] += e["size"]
        s[1] += 1
    return {"peak_bytes": baseline + best, "baseline_bytes": baseline, "entry": best_at, "entries": len(trace),
            "sites": sorted(((k, v[0], v[1]) for k, v in sites.items()), key=lambda x: -x[1])}


def report(p: dict, top: int = 25) -> list[str]:
    gib = 2.0 ** 30
    lines = [f"memory peak: {p['peak_bytes'] / gib:.3f} GiB allocated at trace entry {p['entry']} of {p['entries']} "
             f"({p['baseline_bytes'] / gib:.3f} GiB allocated before recording: weights, adapters, optimizer state)",
             f"  {'MiB':>9s} {'blocks':>6s}  allocated at (innermost frames outside torch)"]
    lines += [f"  {b / 2**20:9.1f} {n:6d}  {site[:160]}" for site, b, n in p["sites"][:top]]
    return lines
