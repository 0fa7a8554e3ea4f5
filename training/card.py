"""The model card every run writes beside its adapter (README.md, Hugging Face style).

It says what the adapter is (base model, method, objective), what it was trained on (the
dataset files and their content hash: the data version), how (the full config), and what
training measured (losses, speed, and whatever the recipe put in `results["eval"]`). Scores
on the evaluation's metrics come from `contract-review eval`, not from here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .config import Config, dump_config
from .logging import read_log


def data_version(directory: str | Path) -> str:
    """A short content hash of the dataset split files: two runs on the same data share it."""
    h = hashlib.sha256()
    files = sorted(Path(directory).glob("*.jsonl*"))
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return f"sha256:{h.hexdigest()[:16]}" if files else "unknown"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def write_card(run_dir: Path, adapter_dir: Path, cfg: Config, results: dict) -> Path:
    run_dir, adapter_dir = Path(run_dir), Path(adapter_dir)
    events = read_log(run_dir) if (run_dir / "metrics.jsonl").exists() else []
    steps = [e for e in events if e.get("event") == "step"]
    evals = [e for e in events if e.get("event") == "eval"]
    stop = next((e for e in reversed(events) if e.get("event") == "stop"), {})
    tps = sorted(e["tokens_per_s"] for e in steps if e.get("tokens_per_s"))
    best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
    lines = [
        f"# {cfg.output.name}: LoRA adapter ({cfg.objective})",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{cfg.model.name}`" + (f" (architecture `{cfg.model.config}`, random weights)" if cfg.model.random_init else "") + " |",
        f"| method | LoRA r={cfg.lora.r}, alpha={cfg.lora.alpha:g}, dropout={cfg.lora.dropout:g}, modules {', '.join(cfg.lora.modules())}"
        + (", DoRA" if cfg.lora.dora else "") + (f", QLoRA {cfg.lora.quantize}" if cfg.lora.quantize else "") + " |",
        f"| objective | {cfg.objective}" + (" (reviewer heads: clause types, party, risk_to, severity)" if cfg.objective == "classify" else " (loss on answer tokens only)") + " |",
        f"| data | `{cfg.data.dir}` split {cfg.data.train_split}, version {data_version(cfg.data.dir)} |",
        f"| steps | {stop.get('step', len(steps))} ({stop.get('reason', '?')}) |",
        f"| final train loss | {steps[-1]['loss']:.4f} |" if steps else "| final train loss | - |",
        f"| best eval loss | {best['eval_loss']:.4f} at step {best['step']} ({cfg.data.eval_split}, {cfg.data.eval_limit or 'all'} records) |" if best else "| best eval loss | - |",
        f"| median tokens/s | {tps[len(tps) // 2]:.0f} |" if tps else "| median tokens/s | - |",
        "",
    ]
    if results.get("eval"):
        lines += ["## Evaluation", ""]
        for name, value in results["eval"].items():
            lines.append(f"- {name}: {_fmt(value)}")
        lines.append("")
    lines += ["## Files", "",
              "- `adapter_model.safetensors`, `adapter_config.json`: the LoRA weights (PEFT format)"]
    if cfg.objective == "classify":
        lines += ["- `heads.safetensors`: the classification heads; `reviewer.json`: label order, thresholds, base model",
                  "", "Serve or evaluate it with `--model reviewer --adapter DIR` (`contract-review serve`, `review`, "
                  "`eval`)."]
    lines += ["", "## Config", "", "```yaml", dump_config(cfg).rstrip(), "```", ""]
    if (run_dir / "loss_curve.png").exists():
        lines.insert(lines.index("## Files"), "![loss curve](loss_curve.png)\n")
    text = "\n".join(lines)
    adapter_dir.mkdir(parents=True, exist_ok=True)
    (adapter_dir / "README.md").write_text(text, encoding="utf-8")
    (run_dir / "README.md").write_text(text, encoding="utf-8")
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return adapter_dir / "README.md"
