"""`contract-review annotate sample` and `annotate graded ...`: the graded set's commands.

Registered by `label_studio_cli.register_annotate`; the work is in `sample.py` and `graded.py`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contract_review.paths import DATASET_DIR, RISK_GRADED_FILE

DEFAULT_GRADED_PROJECT = "contract-review graded risk"


def register_graded(asub: argparse._SubParsersAction, env_help: str) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    sample = asub.add_parser(
        "sample", help="draw the graded set: clauses stratified by type across the splits, in batches",
        description="Draw a seeded sample of clauses, stratified by clause type (every type, the checklist types and "
                    "`other` included) across train/validation/test with at most a few clauses of a type per contract, "
                    "and write annotation batches (JSONL: id, text, context, the contract's party list; no pre-label) "
                    "and sample.json, which says how the sample was drawn.")
    sample.add_argument("--dataset", type=Path, default=DATASET_DIR, help=f"dataset folder (default {DATASET_DIR})")
    sample.add_argument("--out", type=Path, required=True, help="folder for batches/ and sample.json")
    sample.add_argument("--size", type=int, default=1500, help="clauses to draw (default 1500)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--min-per-type", type=int, default=20, help="floor per clause type (default 20)")
    sample.add_argument("--per-document", type=int, default=2, help="most clauses of one type from one contract")
    sample.add_argument("--batch-size", type=int, default=100, help="clauses per batch file (default 100)")
    sample.set_defaults(func=_sample)

    graded = asub.add_parser(
        "graded", help="the graded set in Label Studio: push, import annotators' labels, disagreements",
        description="Two independent annotators per clause, then an adjudicator where they differ. `push` creates "
                    "the graded project from a sample; `import` files an annotator's (or, with --adjudication, an "
                    "adjudicator's) label file as that Label Studio user's annotations; `disagreements` marks the "
                    "tasks where annotators differ on the bearer or the severity and adds a 'Risk disagreements' "
                    "tab. `annotate pull --graded` then writes the graded records.",
        epilog=env_help, formatter_class=fmt)
    gsub = graded.add_subparsers(dest="graded_command", metavar="ACTION", required=True)
    push = gsub.add_parser("push", help="one task per sampled clause (no pre-annotation)")
    push.add_argument("--sample", type=Path, required=True, help="folder written by `annotate sample`")
    push.add_argument("--project", default=DEFAULT_GRADED_PROJECT)
    push.set_defaults(func=_push)
    imp = gsub.add_parser("import", help="an annotator's label file as that annotator's annotations",
                          description="Each JSON line: {\"id\": clause id, \"risk_to\", \"severity\", \"reason\", "
                                      "\"clause_types\" (optional)}. The annotator becomes (or is) a Label Studio "
                                      "user; a task they already annotated is skipped, so an import repeats safely.")
    imp.add_argument("--labels", type=Path, required=True)
    imp.add_argument("--annotator", required=True, help="the annotator's name (becomes NAME@annotators.local)")
    imp.add_argument("--adjudication", action="store_true",
                     help="the file holds adjudicated decisions: file them as ground-truth annotations")
    imp.add_argument("--project", default=DEFAULT_GRADED_PROJECT)
    imp.set_defaults(func=_import)
    dis = gsub.add_parser("disagreements", help="list and mark the tasks whose annotators differ")
    dis.add_argument("--project", default=DEFAULT_GRADED_PROJECT)
    dis.add_argument("--out", type=Path, default=None, help="also write them as JSONL (for an adjudicator)")
    dis.set_defaults(func=_disagreements)


def add_graded_pull_arguments(pull: argparse.ArgumentParser) -> None:
    pull.add_argument("--graded", action="store_true",
                      help="the graded project: write graded records (both annotators + adjudicated) and "
                           f"{RISK_GRADED_FILE.name}, and report Cohen's kappa on severity and risk_to")
    pull.add_argument("--graded-file", type=Path, default=RISK_GRADED_FILE,
                      help=f"graded labels the dataset build applies (default {RISK_GRADED_FILE})")


def _user_error(exc: Exception):
    from contract_review.command import UserError

    return UserError(str(exc))


def _client():
    from .label_studio import ClientSettings, LabelStudioClient

    return LabelStudioClient(ClientSettings.from_env())


def _sample(args: argparse.Namespace) -> int:
    from .sample import SampleConfig, write_sample

    try:
        cfg = SampleConfig(size=args.size, seed=args.seed, min_per_type=args.min_per_type,
                           per_document=args.per_document, batch_size=args.batch_size)
    except ValueError as exc:
        raise _user_error(exc) from None
    manifest = write_sample(args.dataset, args.out, cfg)
    drawn = {t: sum(v["drawn"].values()) for t, v in manifest["strata"].items()}
    print(f"drew {manifest['clauses']} clauses from {manifest['contracts']} documents {manifest['by_split']} "
          f"in {len(manifest['batches'])} batches; {len(drawn)} clause types, smallest "
          f"{min(drawn.values())} ({min(drawn, key=drawn.get)})")
    print(f"wrote {args.out / 'sample.json'} and {args.out / 'batches'}/")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .graded import push_graded
    from .label_studio import LabelStudioError

    try:
        with _client() as client:
            r = push_graded(client, args.sample, args.project)
    except LabelStudioError as exc:
        raise _user_error(exc) from None
    print(f"project {r.project_id} ({'created' if r.created else 'reused'}): {r.imported} tasks imported, "
          f"{r.already_there} already there")
    return 0


def _import(args: argparse.Namespace) -> int:
    from .graded import import_labels
    from .label_studio import LabelStudioError

    try:
        with _client() as client:
            r = import_labels(client, args.project, args.annotator, args.labels, args.adjudication)
    except LabelStudioError as exc:
        raise _user_error(exc) from None
    kind = "adjudications (ground truth)" if args.adjudication else "annotations"
    print(f"{args.labels}: {r.created} {kind} filed as {r.annotator} (user {r.user_id}), {r.already_there} already "
          f"there, {len(r.unknown)} ids with no task in {args.project!r}")
    if r.unknown:
        print("ids with no task: " + ", ".join(r.unknown[:10]) + (" ..." if len(r.unknown) > 10 else ""))
    return 0


def _disagreements(args: argparse.Namespace) -> int:
    from contract_review.records import write_jsonl

    from .graded import DISAGREEMENT_VIEW, find_disagreements
    from .label_studio import LabelStudioError

    try:
        with _client() as client:
            found = find_disagreements(client, args.project)
    except LabelStudioError as exc:
        raise _user_error(exc) from None
    for d in found:
        print(f"{d['clause_id']}  differ on {', '.join(d['fields'])}  {d['task_url']}")
    print(f"{len(found)} disagreements; in Label Studio: the '{DISAGREEMENT_VIEW}' tab of {args.project!r}. "
          "Adjudicate by labelling the task and marking that annotation as ground truth (the star), or with "
          "`annotate graded import --adjudication`.")
    if args.out:
        write_jsonl(args.out, found)
        print(f"wrote {args.out}")
    return 0


def pull_graded_command(args: argparse.Namespace, journal, disagreements: Path) -> int:
    """`annotate pull --graded`, called from label_studio_cli's pull."""
    from .agreement import format_report, report_dicts
    from .graded import merge_graded, pull_graded, summary

    if args.offline:
        report = merge_graded(journal, args.dataset, args.graded_file, disagreements)
    else:
        with _client() as client:
            report = pull_graded(client, args.project or DEFAULT_GRADED_PROJECT, journal, args.dataset,
                                 args.graded_file, disagreements, progress=not args.quiet)
    print(f"{report.tasks_seen} tasks read, {report.new_entries} new annotation versions journaled")
    for line in summary(report):
        print(line)
    print(f"dataset {args.dataset}: {report.merge.summary()}; graded labels in {args.graded_file}")
    if report.agreement and report.agreement[0].items:
        print(format_report(report.agreement))
        args.journal.with_name("agreement.json").write_text(json.dumps(report_dicts(report.agreement), indent=2))
    return 0
