"""Command line of the app package: `serve` and `review`.

    contract-review serve [--host 127.0.0.1] [--port 7860] [--model NAME|FOLDER] [--adapter DIR] [--login]
                          [--concurrency 2] [--time-limit 600] [--models-dir DIR] [--debug]
    contract-review review FILE... --out DIR [--model NAME|FOLDER] [--adapter DIR] [--formats docx,json]
                           [--represent NAME|first_party|second_party] [--review-anyway]

Both run the same review (`app.review.review_contract`); `review` writes, per contract,
`<name>.review.json` (the object the app's API returns) and a report, with a progress bar.
A file in another language than English, or that does not read like a contract, is skipped
with the reason unless `--review-anyway` is given (the app asks the same question).
Every command imports this module; the app's code (Gradio, the models) is imported by the
command that runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract_review.command import UserError
from contract_review.predictor import DEFAULT, model_help, parse_model

SERVE_EPILOG = """\
For a shared server: --host 0.0.0.0 --login, with the password in the environment
(export CONTRACT_REVIEW_APP_PASSWORD=...; user CONTRACT_REVIEW_APP_USER, default 'reviewer').
Corrections and saved reviews go to CONTRACT_REVIEW_APP_DIR (default ~/.local/share/contract-review).

"""
MODELS_EPILOG = "models (--model; the same names as `eval` and `annotate push`):\n"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT, metavar="NAME|FOLDER",
                   help="the model that labels the clauses, from the list below (default: default, the shipped "
                        "reviewer mixed with TF-IDF; the first start fits the TF-IDF models once, ~1 min, then they "
                        "load from the cache)")
    p.add_argument("--adapter", default=None, metavar="DIR",
                   help="reviewer adapter folder for --model (default: data/model/reviewer/, the shipped one)")


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="start the reviewer app (Gradio) on 127.0.0.1",
        description="Start the reviewer app: upload or paste a contract, read each clause's type, obliged party, "
                    "risk and reason, correct labels, export reports. Nothing leaves the machine: analytics are "
                    "off, uploads are deleted once read, and only corrections and reviews you save are kept.",
        epilog=SERVE_EPILOG + MODELS_EPILOG + model_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=7860)
    _add_model_args(serve)
    serve.add_argument("--login", action="store_true",
                       help="require a login; the password comes from CONTRACT_REVIEW_APP_PASSWORD, never the command line")
    serve.add_argument("--max-mb", type=float, default=20.0, help="largest upload accepted, in MB (default 20)")
    serve.add_argument("--concurrency", type=int, default=2,
                       help="reviews in progress at once (default 2); their batches of clauses take turns at the "
                            "model, so a short review started behind a long one waits for one batch, not all of it")
    serve.add_argument("--time-limit", type=float, default=600.0, metavar="SECONDS",
                       help="stop a review after this long, so that one contract cannot hold the server "
                            "(default 600; `review` has none)")
    serve.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                       help="offer the reviewer folders found in DIR, by folder name (default: none; users can "
                            "never name a server path)")
    serve.add_argument("--debug", action="store_true",
                       help="tracebacks in the log (they may name uploaded files); default: one line per error")
    serve.set_defaults(func=_serve)

    review = sub.add_parser(
        "review",
        help="review contracts without the UI: a report and JSON per contract",
        description="Review contracts (PDF with a text layer, DOCX or text) with the same review as the app and "
                    "write, per contract, <name>.review.json and the reports asked for into --out.",
        epilog=MODELS_EPILOG + model_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    review.add_argument("files", nargs="+", type=Path, metavar="FILE")
    review.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_model_args(review)
    review.add_argument("--formats", default="docx,json",
                        help="comma-separated: docx, pdf, csv, json (default: docx,json; json is always written)")
    review.add_argument("--max-mb", type=float, default=20.0, help="skip files larger than this, in MB")
    review.add_argument("--represent", default=None, metavar="NAME|first_party|second_party",
                        help="the party you act for: the summary and reports list the highest risks it bears first "
                             "(a name or defined term of the contract, e.g. \"Supplier\", or a role)")
    review.add_argument("--review-anyway", action="store_true",
                        help="review files in another language or that do not read like a contract (the labels "
                             "are then not a review: the reports say so); without it they are skipped")
    review.add_argument("--quiet", action="store_true", help="no progress bar")
    review.set_defaults(func=_review)


def _serve(args: argparse.Namespace) -> int:
    from .server import serve
    from .service import AppConfig

    try:
        config = AppConfig(default=parse_model(args.model, args.adapter), max_bytes=int(args.max_mb * 1024 * 1024),
                           time_limit=args.time_limit or None, concurrency=args.concurrency,
                           models_dir=args.models_dir, debug=args.debug)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    serve(config, args.host, args.port, login=args.login)
    return 0


def _review(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .export import FORMATS, export_warnings, write_exports
    from .ingest import IngestError, read_contract
    from contract_review.predictor import describe_model

    from .predictors import load_predictor
    from .review import NeedsConfirmation, review_contract

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"--formats: unknown {', '.join(bad)}; use some of {', '.join(FORMATS)}")
    formats = list(dict.fromkeys([*formats, "json"]))
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}")
    choice = parse_model(args.model, args.adapter)
    predictor = load_predictor(choice)
    max_bytes = int(args.max_mb * 1024 * 1024)
    failed = 0
    stems: set[str] = set()
    with tqdm(total=len(args.files), desc="contracts", unit="contract", disable=args.quiet, position=0) as files_bar:
        for path in args.files:
            try:
                contract = read_contract(path, max_bytes=max_bytes)
            except IngestError as exc:
                tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
                failed += 1
                files_bar.update(1)
                continue
            with tqdm(desc=path.name[:40], unit="clause", leave=False, disable=args.quiet, position=1) as bar:
                def on_progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                try:
                    review = review_contract(contract, predictor, on_progress, model_choice=describe_model(choice),
                                             represent=args.represent, anyway=args.review_anyway)
                except NeedsConfirmation as exc:
                    tqdm.write(f"skipped {path}: {' '.join(exc.reasons)} Give --review-anyway to review it all the "
                               "same.", file=sys.stderr)
                    failed += 1
                    files_bar.update(1)
                    continue
                except ValueError as exc:  # --represent names nobody in this contract
                    tqdm.write(f"skipped {path}: --represent: {exc}", file=sys.stderr)
                    failed += 1
                    files_bar.update(1)
                    continue
            stem = Path(path).stem
            if stem in stems:  # two inputs with one name from different folders: keep both
                stem = f"{stem}-{contract.sha1[:8]}"
            stems.add(stem)
            written = write_exports(review, args.out, formats, stem=f"{stem}.review")
            for warning in review.warnings + [w for fmt in formats for w in export_warnings(review, fmt)]:
                tqdm.write(f"{path.name}: warning: {warning}", file=sys.stderr)
            tqdm.write(_line(path.name, review) + f", {review.seconds['total']:.1f} s -> "
                       f"{', '.join(p.name for p in written.values())}")
            files_bar.update(1)
    if failed:
        print(f"{failed} of {len(args.files)} files could not be reviewed (see above)", file=sys.stderr)
        return 1
    return 0


def _line(name: str, review) -> str:
    """One line per contract: counts, the highest risk by the contract's own citation, the represented party's."""
    s = review.summary
    line = f"{name}: {s['clauses']} clauses, {s['risk_clauses']} flagged"
    if not s.get("assessed", True):
        return line + " (not assessed: see the warning)"
    line += f", {len(s['missing'])} usual clauses not found"
    if s["top_risks"]:
        t = s["top_risks"][0]
        line += f"; highest: {t['where']} ({t['type']}, {t['risk']})"
    if s.get("represent"):
        mine = s["for_represented"]
        line += f"; {mine['count']} borne by {s['represent']['name']}"
    return line
