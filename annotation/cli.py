"""Command line of the annotation package: `data` (build/check the dataset) and `annotate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract_review.paths import CORPORA_DIR, DATASET_DIR, RISK_GRADED_FILE, VERIFIED_PARTY_FILE

from . import rule_predictor  # noqa: F401  registers the `rules` model for every command


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="build and check the clause dataset",
        description="Build the clause dataset from real corpora, or check a dataset file.",
    )
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = dsub.add_parser(
        "build",
        help="build train/validation/test JSONL from CUAD and CLAUDETTE folders",
        description=(
            "Segment every CUAD contract into clauses, map the lawyers' spans onto them, read the "
            "CLAUDETTE Terms of Service sentence by sentence, give each contract one party list, add the "
            "checklist types CUAD does not mark, pre-label the obligated party and the risk's bearer and "
            "severity, split by "
            "document (CLAUDETTE by LexGLUE's company split) with no duplicate crossing splits, and "
            "write {train,validation,test}.jsonl. Either corpus may be left out. With neither given, "
            f"the copies shipped in {CORPORA_DIR.relative_to(CORPORA_DIR.parent.parent)} are used."
        ),
    )
    build.add_argument("--cuad", type=Path, help="CUAD v1 folder (master_clauses.csv, full_contract_txt/)")
    build.add_argument("--claudette", type=Path, help="CLAUDETTE folder (Sentences/, Labels_*/, OriginalTaggedDocuments/)")
    build.add_argument("--out", type=Path, default=DATASET_DIR, help=f"output folder (default: {DATASET_DIR})")
    build.add_argument(
        "--verified", type=Path, default=VERIFIED_PARTY_FILE,
        help="checked obligated-party labels to apply (default: data/party_verified.jsonl; 'none' to skip)",
    )
    build.add_argument(
        "--graded", type=Path, default=RISK_GRADED_FILE,
        help="the graded set's adjudicated risk labels to apply (default: data/risk_graded.jsonl when it exists; "
             "'none' to skip)")
    build.add_argument("--gzip", action="store_true", help="write .jsonl.gz (the shipped dataset is compressed)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    check = dsub.add_parser(
        "check", help="validate a records file (JSONL or JSONL.gz)",
        description="Validate every record of a file against the record format and the taxonomy, and refuse "
                    "records whose labels contradict each other: a labelled party or risk bearer the record's "
                    "party list does not name, a severity outside the scale, a risk without a bearer or a "
                    "bearer without a risk, risk different from severity. Every problem is listed with its "
                    "file and line.")
    check.add_argument("file", type=Path)
    check.set_defaults(func=_check)

    card = dsub.add_parser("card", help="recompute the dataset card's numbers and plot (data/README.md)",
                           description="Recount the dataset and rewrite the generated part of the dataset card.")
    card.add_argument("--dataset", type=Path, default=DATASET_DIR)
    card.add_argument("--card", type=Path, default=DATASET_DIR.parent / "README.md")
    card.add_argument("--verified", type=Path, default=VERIFIED_PARTY_FILE)
    card.set_defaults(func=_card)

    seg = dsub.add_parser(
        "segments", help="measure how whole segmentation keeps the lawyers' CUAD spans",
        description=("Segment the CUAD contracts of one split and report the share of lawyer-marked spans that "
                     "lie inside one segment, segment counts per kind and clause lengths, next to two baselines "
                     "(blank-line paragraphs; each contract as one segment). Appends to "
                     "data/dataset/segmentation.json."),
    )
    seg.add_argument("--cuad", type=Path, help="CUAD v1 folder (default: the shipped copy)")
    seg.add_argument("--split", choices=("validation", "train"), default="validation",
                     help="contracts to measure (test contracts are never used for this)")
    seg.add_argument("--out", type=Path, default=None, help="results file (default: data/dataset/segmentation.json)")
    seg.add_argument("--no-write", action="store_true", help="print only")
    seg.add_argument("--at", metavar="REV", help="measure the segmenter of this earlier commit (e.g. c6ba518)")
    seg.set_defaults(func=_segments)

    rematch = dsub.add_parser(
        "rematch-verified", help="carry the verified party labels over to a rebuilt dataset",
        description=("When segmentation changes, clause ids and texts move. Match each verified obligated-party "
                     "label to the rebuilt clause with the same words, or one whose changed words hold no duty or "
                     "right (furniture cut out, a heading split off), rewrite the labels file with the new ids, and "
                     "report the labels that could not be carried over and why: read those clauses again. Run "
                     "`data build` afterwards."),
    )
    rematch.add_argument("--old", type=Path, required=True, help="the dataset folder the labels were checked on")
    rematch.add_argument("--dataset", type=Path, default=DATASET_DIR, help="the rebuilt dataset folder")
    rematch.add_argument("--verified", type=Path, default=VERIFIED_PARTY_FILE)
    rematch.add_argument("--cuad", type=Path, help="CUAD v1 folder (default: the shipped copy)")
    rematch.add_argument("--report", type=Path, help="write the outcomes and the lost labels (with their texts) here")
    rematch.set_defaults(func=_rematch)

    from .label_studio_cli import register_annotate

    register_annotate(sub)


def _build(args: argparse.Namespace) -> int:
    from .build import build_records, write_dataset
    from .corpora import shipped_corpus

    cuad_dir, claudette_dir = args.cuad, args.claudette
    if cuad_dir is None and claudette_dir is None:
        cuad_dir, claudette_dir = shipped_corpus("cuad"), shipped_corpus("unfair-tos")
    verified = None if str(args.verified).lower() == "none" else args.verified
    graded = None if str(args.graded).lower() == "none" else args.graded
    records, report = build_records(cuad_dir, claudette_dir, verified, progress=not args.quiet, graded_file=graded)
    paths = write_dataset(records, args.out, report, compress=args.gzip)
    for key, n in report.records.items():
        print(f"{key:24s} {n:7d} clauses")
    print(f"dropped as duplicates of a later split: {dict(report.dropped_duplicates)}")
    print(f"verified party labels applied: {report.verified_applied} (stale: {report.verified_stale}, re-mapped "
          f"to the contract's party list: {report.verified_remapped}, names matching no listed party: "
          f"{len(report.verified_unmatched)})")
    print(f"graded risk labels applied: {report.graded_applied} (stale: {report.graded_stale})")
    print(f"checklist types from the rule labeller: {sum(report.type_rules.values())} clauses")
    for p in paths:
        print(f"wrote {p}")
    return 0


def _segments(args: argparse.Namespace) -> int:
    import json

    from .corpora import shipped_corpus
    from .segment_report import RESULTS_FILE, append_results, report

    rows = report(args.cuad or shipped_corpus("cuad"), args.split, at=args.at)
    for r in rows:
        brief = {k: v for k, v in r.items() if k != "spans_whole_by_category"}
        print(json.dumps(brief))
    if not args.no_write:
        out = args.out or RESULTS_FILE
        append_results(rows, out)
        print(f"wrote {out}")
    return 0


def _rematch(args: argparse.Namespace) -> int:
    from .corpora import shipped_corpus
    from .verified_rematch import rematch_files

    counts = rematch_files(args.verified, args.old, args.dataset, args.cuad or shipped_corpus("cuad"), args.report)
    for outcome, n in sorted(counts.items()):
        print(f"{n:5d}  {outcome}")
    print(f"rewrote {args.verified}" + (f"; lost labels and their reasons in {args.report}" if args.report else ""))
    return 0


def _card(args: argparse.Namespace) -> int:
    from .card import update_card

    update_card(args.dataset, args.card, args.verified)
    print(f"updated {args.card} and {args.dataset / 'stats.json'}")
    return 0


_SHOWN_PROBLEMS = 20


def _check(args: argparse.Namespace) -> int:
    from collections import Counter

    from contract_review.records import check_records

    records, problems = check_records(args.file)
    for line in problems[:_SHOWN_PROBLEMS]:
        print(line, file=sys.stderr)
    if len(problems) > _SHOWN_PROBLEMS:
        print(f"... and {len(problems) - _SHOWN_PROBLEMS} more invalid records", file=sys.stderr)
    splits = Counter(r.split for r in records)
    if problems:
        print(f"error: {args.file}: {len(problems)} invalid records, {len(records)} valid", file=sys.stderr)
        return 2
    print(f"{args.file}: {len(records)} valid records {dict(splits)}", file=sys.stdout)
    return 0
