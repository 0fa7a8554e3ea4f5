"""contract-review: one command, a subcommand per user task.

    contract-review data build     build the clause dataset from CUAD / CLAUDETTE folders
    contract-review data check     validate a dataset file against the record format and taxonomy
    contract-review annotate ...   Label Studio: start the server, push clauses, pull annotations
    contract-review train ...      LoRA fine-tuning (one GPU, DeepSpeed ZeRO-3, or CPU)
    contract-review eval ...       F1 on risk clauses, baselines, reports, run comparison
    contract-review serve          the reviewer app (Gradio) on 127.0.0.1
    contract-review review FILE    review contracts without the UI
    contract-review doctor         check the environment and diagnose a training run

Each package registers its own subcommands (`<package>/cli.py: register`), so the code of
a task and its command line live together; annotation and reviewer register their models
(`contract_review.predictor`), so every command loads a model by the same name. This module
is the only one of the shared core that imports the packages.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys

from .command import run

# Every package, in the order data flows through them (and `--help` lists their commands). Importing
# one registers what it offers: a module with register(sub) adds its subcommands; annotation's cli
# (the `rules` model) and reviewer's registry (the served model, the baselines) register models.
PACKAGES = (
    "contract_review.annotation.cli",
    "contract_review.training.cli",
    "contract_review.reviewer.registry",
    "contract_review.eval.cli",
    "contract_review.app.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contract-review",
        description="Review contracts clause by clause with a fine-tuned LLM.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # the deepspeed launcher passes --local_rank=N before the command; ranks are read from LOCAL_RANK,
    # which every launcher sets, so the value itself is not needed
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [importlib.import_module(name) for name in PACKAGES]  # every model registered before any help
    for module in modules:
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("contract-review")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
