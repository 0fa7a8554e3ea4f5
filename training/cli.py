"""Command line of the training package: `train` and `doctor`."""

from __future__ import annotations

import argparse

from contract_review.cli import not_built


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="LoRA fine-tuning from a YAML config (not built yet: issue 5)",
        description="contract-review train --config CONFIG.yaml [key=value ...]. Not built yet (issue 5).",
    )
    train.add_argument("--config", type=str)
    train.add_argument("overrides", nargs="*", metavar="key=value")
    train.set_defaults(func=not_built("train", 5))

    doctor = sub.add_parser(
        "doctor",
        help="check the environment (GPU, CUDA, bf16, versions, NCCL, memory, disk)",
        description="Check the environment a training run needs and print what is missing or risky.",
    )
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import check_environment, print_checks

    checks = check_environment()
    print_checks(checks)
    return 1 if any(c.status == "fail" for c in checks) else 0
