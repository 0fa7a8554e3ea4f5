"""Where one training step's time and memory go: the profiled step's kernels ranked (with the compute
stream's idle gaps, `timeline.py`), and the peak memory of each stretch of an eager step.

    profile_step(step, path)                 -> summary dict; the ranked table in `path`, the trace beside it
    MemorySegments(model).run(model, batch, path) -> where the step's memory peaks
"""

from __future__ import annotations

import functools
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import timeline


# kernel-name patterns -> category, first match wins (cuBLAS/CUTLASS GEMMs, attention, PyTorch's own
# elementwise/copy kernels, then Triton: ours are `_name_kernel`, Inductor's `triton_*`)
KERNEL_CATEGORIES = [
    ("attention", ("flash", "fmha", "attention", "sdpa", "flex")),
    ("gemm", ("gemm", "cutlass", "sm90_xmma", "nvjet", "cublas", "matmul", "splitk")),
    ("copy/cast", ("copy", "memcpy", "memset", "cast", "fill", "cat_", "catarray", "transpose", "contiguous")),
    ("elementwise", ("at::native", "elementwise", "vectorized", "reduce", "unrolled", "foreach", "multi_tensor")),
    ("triton", ("triton", "_kernel")),
]


def kernel_category(name: str) -> str:
    low = name.lower()
    for cat, keys in KERNEL_CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


class MemorySegments:
    """Peak allocated memory in each stretch of one eager training step: every decoder layer's forward, the
    final norm and loss, every layer's backward (recompute included; it ends when the gradient of the layer's
    input is made, which a hook on that tensor sees), to the step's end. It says where a step's memory peaks,
    hence which tensors can raise or lower it. (The allocator's recorded history would say what is alive too, but torch
    2.11 breaks non-reentrant checkpointing's early stop while it records: pytorch issue #179536.)"""

    def __init__(self, model):
        self.rows: list[tuple[str, float]] = []
        self.cur = "step start"
        layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
        self.hooks = [layer.register_forward_pre_hook(functools.partial(self._layer, i))
                      for i, layer in enumerate(layers)]
        self.n = len(layers)
        norm = next((m for n, m in model.named_modules() if n.endswith("model.norm")), None)
        if norm is not None:
            self.hooks.append(norm.register_forward_pre_hook(self._norm))

    def _layer(self, i, module, args):  # noqa: ARG002
        if torch._C._current_graph_task_id() != -1:
            return  # a checkpoint's recompute (transformers 5.17 reruns the module call): inside "backward i"
        self.mark(f"forward layer {i}")
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is not None and x.requires_grad:  # its gradient ends layer i's backward
            x.register_hook(lambda g: self.mark(f"backward layer {i - 1}" if i else "after the layers' backward"))

    def _norm(self, module, args):  # noqa: ARG002
        self.mark("final norm + loss (forward and backward)")
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is not None and x.requires_grad:
            x.register_hook(lambda g: self.mark(f"backward layer {self.n - 1}"))

    def mark(self, name: str) -> None:
        self.rows.append((self.cur, torch.cuda.max_memory_allocated() / 2**30))
        torch.cuda.reset_peak_memory_stats()
        self.cur = name

    def run(self, forward_backward, path: Path) -> dict:
        """Runs ``forward_backward()`` (one eager step's forward and backward, no optimizer) once, measured."""
        try:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            forward_backward()
            self.mark("end")
        finally:
            for h in self.hooks:
                h.remove()
        ranked = sorted(self.rows, key=lambda r: -r[1])
        peak = ranked[0]
        lines = [f"memory by stretch of one eager step: peak {peak[1]:.3f} GiB in '{peak[0]}'",
                 *(f"  {gib:7.3f}  {name}" for name, gib in self.rows)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        print("\n".join(lines[:1] + [f"  {g:7.3f}  {n}" for n, g in ranked[:8]]), flush=True)
        return {"peak_gib": round(peak[1], 3), "where": peak[0], "file": path.name,
                "top": [(n, round(g, 3)) for n, g in ranked[:6]]}


def profile_step(step, path: Path) -> dict:
    """One training step under torch.profiler: every CUDA kernel's total time and count, written ranked to
    ``path`` with a per-category summary; returns the summary (ms per category, kernel count, step wall)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        sync()
    wall = time.perf_counter() - t
    kernels: dict[str, list] = {}
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            k = kernels.setdefault(ev.name, [0.0, 0])
            k[0] += ev.device_time_total / 1e3  # us -> ms
            k[1] += 1
    cats: dict[str, float] = {}
    for name, (ms, _) in kernels.items():
        cats[kernel_category(name)] = cats.get(kernel_category(name), 0.0) + ms
    busy = sum(cats.values()) or 1e-9  # no CUDA kernels seen (a CPU run): avoid dividing by zero
    lines = [f"one step under the profiler: wall {wall * 1e3:.1f} ms (profiler overhead included), "
             f"GPU busy {busy:.1f} ms, {sum(c for _, c in kernels.values())} kernel launches"]
    lines += [f"  {c:12s} {ms:9.2f} ms  {100 * ms / busy:5.1f}%" for c, ms in sorted(cats.items(), key=lambda x: -x[1])]
    lines.append(f"{'ms':>9s} {'count':>6s} {'%':>5s}  category     kernel")
    for name, (ms, n) in sorted(kernels.items(), key=lambda x: -x[1][0])[:60]:
        lines.append(f"{ms:9.2f} {n:6d} {100 * ms / busy:5.1f}  {kernel_category(name):12s} {name[:150]}")
    # the host side: where the CPU's time goes (a step whose GPU idles between kernels is host-bound)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:30]
    lines.append(f"host: {'self ms':>9s} {'count':>6s}  op (self CPU time; total CPU "
                 f"{sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3:.1f} ms)")
    lines += [f"      {e.self_cpu_time_total / 1e3:9.2f} {e.count:6d}  {e.key[:120]}" for e in ops]
    # which ops launch the kernels (eager steps; a replayed graph shows cudaGraphLaunch only): device time
    # by kernel category and the chain of ops above the launch, innermost first
    try:
        chains: dict[tuple, list] = {}
        for ev in prof.events():
            for k in getattr(ev, "kernels", None) or ():
                names, p = [], ev
                while p is not None and len(names) < 4:
                    if not p.name.startswith(("cuda", "cu", "Memcpy", "Memset")):
                        names.append(p.name[:48])
                    p = getattr(p, "cpu_parent", None)
                key = (kernel_category(k.name), " < ".join(names) or ev.name[:48])
                c = chains.setdefault(key, [0.0, 0])
                c[0] += k.duration / 1e3
                c[1] += 1
        if chains:
            lines.append(f"launched by: {'ms':>7s} {'count':>6s}  category     ops (innermost first)")
            for (cat, chain), (ms, n) in sorted(chains.items(), key=lambda x: -x[1][0])[:40]:
                lines.append(f"      {ms:9.2f} {n:6d}  {cat:12s} {chain}")
    except Exception as e:  # noqa: BLE001 - the attribution is a diagnostic; the row must not fail on it
        lines.append(f"launched by: not available ({type(e).__name__}: {e})")
    # the compute stream's idle time: where in the step, and whether it waited for a copy
    gaps = None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(trace))
            tl = timeline.analyse_file(trace)
            # kept beside the table (gzip: a graphed 7B step's trace is tens of MB as text) for chrome://tracing
            with open(trace, "rb") as src, gzip.open(path.with_suffix(".trace.json.gz"), "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst)
        lines[1:1] = timeline.report(tl)
        gaps = {k: tl[k] for k in ("span_ms", "compute_busy_ms", "gap_ms", "gap_ms_forward", "gap_ms_backward",
                                   "gap_ms_copy_wait") if k in tl}
    except Exception as e:  # noqa: BLE001 - a diagnostic; the row must not fail on it
        lines.insert(1, f"timeline: not available ({type(e).__name__}: {e})")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:30]), flush=True)
    return dict(wall_ms=round(wall * 1e3, 1), busy_ms=round(busy, 1), launches=sum(c for _, c in kernels.values()),
                by_category_ms={c: round(ms, 2) for c, ms in cats.items()}, timeline=gaps, file=path.name)
