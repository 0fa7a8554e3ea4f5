"""Command line of the evaluation package: `eval`."""

from __future__ import annotations

import argparse

from contract_review.cli import not_built


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "eval",
        help="F1 on risk clauses with baselines and reports (not built yet: issue 6)",
        description="Evaluate a model on a dataset file or the CLAUDETTE layout. Not built yet (issue 6).",
    )
    ev.set_defaults(func=not_built("eval", 6))
