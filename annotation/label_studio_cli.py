"""`contract-review annotate ...`: the Label Studio round trip and augmentation.

    annotate server [start|stop|status|install]a local Label Studio on 127.0.0.1 (own virtual env)
    annotate push   --data FILE | --contracts DIR   clauses -> tasks with pre-annotations
    annotate pull                          annotations -> journal -> dataset (+ disagreements, agreement)
    annotate augment --data train.jsonl.gz --out FILE --methods synonym,party_swap

`register_annotate(sub)` adds the `annotate` command to the main parser (annotation/cli.py).
Secrets come from the environment only (see `label_studio_server`), never from flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contract_review.command import UserError
from contract_review.paths import DATA_DIR, DATASET_DIR
from contract_review.predictor import LoadOptions, load_predictor, model_choices, parse_model

from .rule_predictor import RULES

from .graded_cli import add_graded_pull_arguments, pull_graded_command, register_graded

ANNOTATION_DIR = DATA_DIR / "annotation"
_ENV_HELP = """environment:
  CONTRACT_REVIEW_LS_URL       server address (default http://127.0.0.1:8080)
  CONTRACT_REVIEW_LS_TOKEN     API token (required; also read from LABEL_STUDIO_API_KEY)
  CONTRACT_REVIEW_LS_PASSWORD  admin password (server start only)
  CONTRACT_REVIEW_LS_USER      admin e-mail (default admin@contract-review.local)
  CONTRACT_REVIEW_LS_DATA      server data folder (default ~/.cache/contract-review/label-studio)
  CONTRACT_REVIEW_LS_VENV      server virtual environment (default .venv-ls)
  CONTRACT_REVIEW_LS_TRIES     tries before a command gives up on an unreachable server (default 5)"""


def register_annotate(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    annotate = sub.add_parser(
        "annotate", help="Label Studio round trip (server, push, pull) and augmentation",
        description="Grow the dataset with annotators in a local Label Studio: start the server, push "
                    "clauses with pre-annotations, pull annotations back into the dataset; augment the "
                    "train split.", epilog=_ENV_HELP, formatter_class=fmt)
    asub = annotate.add_subparsers(dest="annotate_command", metavar="ACTION", required=True)

    server = asub.add_parser("server", help="start, stop or check the local Label Studio server",
                             description="Start Label Studio on 127.0.0.1 in its own virtual environment "
                                         "(installed on first use), with the admin user and token from the "
                                         "environment, and wait until its API answers.",
                             epilog=_ENV_HELP, formatter_class=fmt)
    server.add_argument("action", nargs="?", choices=("start", "stop", "status", "install"), default="start",
                        help="start (default; installs on first use), stop, status, or install only")
    server.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness (default 240)")
    server.add_argument("--quiet", action="store_true")
    server.set_defaults(func=_server)

    push = asub.add_parser("push", help="push clauses as tasks with pre-annotations (idempotent)",
                           description="Create or reuse the project (labeling config generated from the "
                                       "taxonomy), predict the clauses not yet in it, pick the next batch "
                                       "(uncertain first, a random share, overlap tasks) and import them with "
                                       "their predictions.", epilog=_ENV_HELP, formatter_class=fmt)
    src = push.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="records file (JSONL or JSONL.gz), e.g. a dataset split")
    src.add_argument("--contracts", type=Path, help="folder of plain-text contracts (*.txt)")
    push.add_argument("--project", default=None, help="project title (default 'contract-review clauses')")
    push.add_argument("--model", default=RULES, metavar="NAME|FOLDER",
                      help=f"the model whose answers pre-annotate the tasks: {model_choices()} (default rules, the "
                           "rule labeller; `default` is the served model; the same names as `eval` and `serve`)")
    push.add_argument("--adapter", type=Path, metavar="DIR", help="adapter folder for --model")
    push.add_argument("--batch", type=int, default=100, help="tasks to push in this batch (default 100)")
    push.add_argument("--random-share", type=float, default=0.2, help="share picked at random (default 0.2)")
    push.add_argument("--overlap", type=float, default=0.1, help="share labelled by two annotators (default 0.1)")
    push.add_argument("--seed", type=int, default=0)
    push.add_argument("--quiet", action="store_true", help="no progress bars")
    push.set_defaults(func=_push)

    pull = asub.add_parser("pull", help="pull annotations into the dataset (journaled, repeatable)",
                           description="Append every annotation to the local journal, resolve overlaps "
                                       "(agreement, or the adjudicated annotation), and merge the result into "
                                       "the dataset by document. Disagreements are written for adjudication "
                                       "and agreement is reported.", epilog=_ENV_HELP, formatter_class=fmt)
    pull.add_argument("--project", default=None, help="project title (default 'contract-review clauses')")
    pull.add_argument("--dataset", type=Path, default=DATASET_DIR, help=f"dataset folder (default {DATASET_DIR})")
    pull.add_argument("--journal", type=Path, default=ANNOTATION_DIR / "journal.jsonl",
                      help="append-only journal of pulled annotations (default data/annotation/journal.jsonl)")
    pull.add_argument("--disagreements", type=Path, default=None,
                      help="where to list disagreements (default: disagreements.jsonl beside the journal)")
    pull.add_argument("--offline", action="store_true", help="no server: rebuild the dataset from the journal")
    pull.add_argument("--tries", type=int, default=None, help="tries before giving up on the server (default 5)")
    pull.add_argument("--quiet", action="store_true", help="no progress bars")
    add_graded_pull_arguments(pull)
    pull.set_defaults(func=_pull)

    register_graded(asub, _ENV_HELP)

    aug = asub.add_parser("augment", help="label-preserving augmentation of the train split",
                          description="Synonym replacement that never touches protected terms, back-translation "
                                      "(needs a translation model), and party-role swap with the party label "
                                      "flipped. Only train records are augmented; each augmented record links to "
                                      "its source and is checked before it is kept.")
    aug.add_argument("--data", type=Path, required=True, help="train records (JSONL or JSONL.gz)")
    aug.add_argument("--out", type=Path, required=True, help="output file of augmented records")
    aug.add_argument("--methods", default="synonym,party_swap",
                     help="comma-separated: synonym, party_swap, backtranslate (default synonym,party_swap)")
    aug.add_argument("--per-record", type=int, default=1, help="synonym variants per record (default 1)")
    aug.add_argument("--with-source", action="store_true", help="write the source records too, first")
    aug.add_argument("--seed", type=int, default=0)
    aug.set_defaults(func=_augment)


def _user_error(exc: Exception):
    return UserError(str(exc))


def _server(args: argparse.Namespace) -> int:
    from .label_studio_server import ServerError, ServerSettings, ensure_installed, start, status, stop

    try:
        s = ServerSettings.from_env()
        if args.action == "install":  # no secrets needed: CI installs before the tests run
            print(f"label-studio installed: {ensure_installed(s, quiet=args.quiet)}")
        elif args.action == "start":
            print(f"{start(s, timeout=args.timeout, quiet=args.quiet)}: {s.url}")
        elif args.action == "stop":
            print(stop(s))
        else:
            print(status(s))
    except ServerError as exc:
        raise _user_error(exc) from None
    return 0


def _client(tries: int | None = None):
    from .label_studio import ClientSettings, LabelStudioClient

    return LabelStudioClient(ClientSettings.from_env(tries=tries))


def _push(args: argparse.Namespace) -> int:
    from .label_studio import LabelStudioError
    from .push import DEFAULT_PROJECT, clauses_from_contracts, clauses_from_records, push
    from .tasks import SelectionConfig

    try:
        selection = SelectionConfig(batch_size=args.batch, random_share=args.random_share,
                                    overlap_share=args.overlap, seed=args.seed)
    except ValueError as exc:  # pydantic names the field and the allowed range
        raise _user_error(exc) from None
    spec = parse_model(args.model, args.adapter)  # a wrong name or folder stops before anything loads
    clauses = clauses_from_records(args.data) if args.data else clauses_from_contracts(args.contracts)
    predictor = load_predictor(spec, LoadOptions(progress=not args.quiet))
    try:
        with _client() as client:
            r = push(client, clauses, predictor, selection, args.project or DEFAULT_PROJECT, progress=not args.quiet)
    except LabelStudioError as exc:
        raise _user_error(exc) from None
    state = "created" if r.project_created else ("config updated" if r.config_updated else "reused")
    print(f"project {r.project_id} ({state}): {r.imported} tasks imported with {r.model_version} pre-annotations, "
          f"{r.already_there} clauses already there, {r.overlap_tasks} overlap tasks in the project")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from .agreement import format_report, report_dicts
    from .journal import Journal
    from .label_studio import LabelStudioError
    from .pull import merge_journal, pull
    from .push import DEFAULT_PROJECT

    journal = Journal(args.journal)
    disagreements = args.disagreements or args.journal.with_name("disagreements.jsonl")
    try:
        if args.graded:
            return pull_graded_command(args, journal, disagreements)
        if args.offline:
            report = merge_journal(journal, args.dataset, disagreements)
        else:
            with _client(args.tries) as client:
                report = pull(client, args.project or DEFAULT_PROJECT, journal, args.dataset, disagreements,
                              progress=not args.quiet)
    except LabelStudioError as exc:
        n = len(journal.read())
        raise _user_error(f"{exc}\nnothing was lost: {n} annotations already pulled stay in {args.journal}; "
                          "the dataset was not changed; run the pull again when the server answers "
                          "(or `--offline` to merge the journal alone)") from None
    res = report.resolution
    print(f"{report.tasks_seen} tasks read, {report.new_entries} new annotation versions journaled "
          f"({report.journal_entries} in {args.journal})")
    print(f"clauses: {len(res.resolved)} resolved, {len(res.disagreements)} disagreements -> {disagreements}")
    for p in res.problems:
        print(f"skipped: {p}", file=sys.stderr)
    print(f"dataset {args.dataset}: {report.merge.summary()}")
    if report.agreement and report.agreement[0].items:
        print(format_report(report.agreement))
        (args.journal.with_name("agreement.json")).write_text(json.dumps(report_dicts(report.agreement), indent=2))
    return 0


def _augment(args: argparse.Namespace) -> int:
    from .augment import AugmentError, augment_file

    try:
        report = augment_file(args.data, args.out, [m.strip() for m in args.methods.split(",") if m.strip()],
                              per_record=args.per_record, with_source=args.with_source, seed=args.seed)
    except AugmentError as exc:
        raise _user_error(exc) from None
    print(report.summary())
    print(f"wrote {args.out}")
    return 0
