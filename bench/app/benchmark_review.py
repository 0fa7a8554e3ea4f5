"""Benchmark: one contract reviewed end to end, as `contract-review review` does it.

    python bench/app/benchmark_review.py                       # CUAD contract nearest 33,000 characters, default model
    python bench/app/benchmark_review.py --model rules
    python bench/app/benchmark_review.py --stand-in            # no trained adapter yet: see below
    python bench/app/benchmark_review.py FILE --threads 2 --repeat 3 --json bench/results/app_review.json

Times, per step: reading the file, loading the model (once per process, reported apart),
segmenting + parties, labelling every clause, summary, and writing the DOCX report and
JSON. The targets (README): a typical CUAD contract (~33,000 characters) in under 60 s on
the 2-core CPU default, and under 10 s with a 7B model on one GPU (the predictor goes to the GPU
when there is one; `make_random_reviewer.py` writes a 7B-shaped base and adapter to time it).

`--stand-in` builds the reviewer's architecture (SmolLM2-135M decoder + the three heads,
`reviewer.heads.ReviewerPredictor`) with untrained heads: the same computation as
the shipped adapter (LoRA is merged into the base weights when loaded), so the time is the
real one while its labels mean nothing. Use it only until data/model/reviewer/ exists.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TARGET_CHARS = 33_000


def nearest_cuad_contract(chars: int = TARGET_CHARS) -> Path:
    from contract_review.annotation.corpora import shipped_corpus

    files = sorted((shipped_corpus("cuad") / "full_contract_txt").glob("*.txt"))
    return min(files, key=lambda f: (abs(len(f.read_text(encoding="utf-8", errors="replace")) - chars), f.name))


def stand_in_predictor():
    from contract_review.reviewer.heads import ReviewerPredictor
    from contract_review.training.models import load_causal_lm, load_tokenizer
    from contract_review.training.reviewer_model import Labels, ReviewerModel

    lm = load_causal_lm("default")
    model = ReviewerModel(lm, lm.config.hidden_size, Labels.from_taxonomy()).eval()
    predictor = ReviewerPredictor(model, load_tokenizer("default"), {"model_version": "stand-in-untrained"})
    predictor.name = "reviewer-stand-in"
    return predictor


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", type=Path, help="contract to review (default: the CUAD contract nearest 33k chars)")
    ap.add_argument("--model", default="default", help="a model name or base folder, as `contract-review review --model`")
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--stand-in", action="store_true", help="untrained reviewer heads (timing only; see the docstring)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from contract_review.app.export import write_exports
    from contract_review.app.ingest import read_contract
    from contract_review.app.predictors import load_predictor
    from contract_review.predictor import parse_model
    from contract_review.app.review import review_contract

    path = args.file or nearest_cuad_contract()
    t = time.perf_counter()
    predictor = stand_in_predictor() if args.stand_in else load_predictor(parse_model(args.model, args.adapter))
    load_s = time.perf_counter() - t

    runs = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            contract = read_contract(path)
            t1 = time.perf_counter()
            review = review_contract(contract, predictor)
            t2 = time.perf_counter()
            write_exports(review, out, ["docx", "json"])
            t3 = time.perf_counter()
            runs.append({"read": t1 - t0, "segment": review.seconds["segment"], "predict": review.seconds["predict"],
                         "summary": review.seconds["summary"], "export": t3 - t2, "total": t3 - t0})
    import importlib.metadata as md
    import os

    from contract_review.training.precision import cpu_name

    device = str(next(predictor.model.parameters()).device) if hasattr(predictor, "model") else "cpu"
    on_gpu = device.startswith("cuda")
    result = {
        "benchmark": "app_review", "run_id": os.environ.get("RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        "command": " ".join(["bench/app/benchmark_review.py"] + (argv if argv is not None else sys.argv[1:])),
        "card": torch.cuda.get_device_name() if on_gpu else cpu_name(),
        "device": device, "gpus": 1 if on_gpu else 0,
        "versions": {k: md.version(k) for k in ("torch", "transformers", "peft")},
        "contract": path.name, "chars": len(contract.text), "clauses": len(review.findings),
        "predictor": predictor.name, "model_version": predictor.model_version,
        "threads": torch.get_num_threads(), "cpu": cpu_name(), "precision": getattr(predictor, "precision", None),
        "model_load_s": round(load_s, 2),
        "median_s": {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]},
        "clauses_per_s": round(len(review.findings) / max(statistics.median(r["predict"] for r in runs), 1e-9), 1),
        "target_s": 10 if on_gpu else 60, "repeat": args.repeat,
    }
    result["meets_target"] = result["median_s"]["total"] < result["target_s"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
