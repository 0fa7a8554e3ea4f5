"""Head probabilities of a reviewer adapter on the validation and test splits, saved for tuning decision
rules (thresholds, risk rule, ensembles) on validation without re-running the model.

    python bench/training/reviewer_probs.py ADAPTER_DIR OUT.pt [--data data/dataset] [--splits validation,test]

OUT.pt: {split: {"ids": [record id, ...], "clause_type": (N, 47), "party": (N, 4), "risk": (N, 4)}} in
float16, rows in the split file's order. Runs on the first GPU when there is one (bf16 autocast, as the
predictor does), else on the CPU (slow: ~1,000 tokens/s on two cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contract_review.records import find_split_file, read_records  # noqa: E402
from contract_review.reviewer.heads import load_reviewer  # noqa: E402
from contract_review.training.reviewer_model import predict_probs  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter")
    ap.add_argument("out")
    ap.add_argument("--data", default="data/dataset")
    ap.add_argument("--splits", default="validation,test")
    ap.add_argument("--limit", type=int, default=None, help="only the first N records of each split (a smoke test)")
    args = ap.parse_args(argv)
    model, tok, meta = load_reviewer(args.adapter)
    res = {}
    for split in args.splits.split(","):
        recs = read_records(find_split_file(args.data, split))[: args.limit]
        t0 = time.time()
        p = predict_probs(model, tok, [r.input for r in recs], meta.get("max_length", 256),
                          tokens_per_batch=16384 if torch.cuda.is_available() else 4096)
        print(f"{args.adapter} {split}: {len(recs)} records in {time.time() - t0:.1f}s", flush=True)
        res[split] = {"ids": [r.id for r in recs], **{k: v.half() for k, v in p.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(res, args.out)


if __name__ == "__main__":
    main()
