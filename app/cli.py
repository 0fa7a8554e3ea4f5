"""Command line of the app package: `serve` and `review`."""

from __future__ import annotations

import argparse

from contract_review.cli import not_built


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="start the reviewer app on 127.0.0.1 (not built yet: issue 7)",
        description="Start the Gradio reviewer app with the default model. Not built yet (issue 7).",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7860)
    serve.set_defaults(func=not_built("serve", 7))
    review = sub.add_parser(
        "review",
        help="review contracts without the UI (not built yet: issue 7)",
        description="contract-review review FILE... --out DIR. Not built yet (issue 7).",
    )
    review.add_argument("files", nargs="*")
    review.set_defaults(func=not_built("review", 7))
