"""Command line of the annotation package: `data` (build/check the dataset) and `annotate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract_review.paths import CORPORA_DIR, DATASET_DIR, VERIFIED_PARTY_FILE

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
            "CLAUDETTE Terms of Service sentence by sentence, pre-label the obligated party, split by "
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
    build.add_argument("--gzip", action="store_true", help="write .jsonl.gz (the shipped dataset is compressed)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    check = dsub.add_parser("check", help="validate a records file (JSONL or JSONL.gz)",
                            description="Validate every record of a file; errors name the file and line.")
    check.add_argument("file", type=Path)
    check.set_defaults(func=_check)

    card = dsub.add_parser("card", help="recompute the dataset card's numbers and plot (data/README.md)",
                           description="Recount the dataset and rewrite the generated part of the dataset card.")
    card.add_argument("--dataset", type=Path, default=DATASET_DIR)
    card.add_argument("--card", type=Path, default=DATASET_DIR.parent / "README.md")
    card.add_argument("--verified", type=Path, default=VERIFIED_PARTY_FILE)
    card.set_defaults(func=_card)

    from .label_studio_cli import register_annotate

    register_annotate(sub)


def _build(args: argparse.Namespace) -> int:
    from .build import build_records, write_dataset
    from .corpora import shipped_corpus

    cuad_dir, claudette_dir = args.cuad, args.claudette
    if cuad_dir is None and claudette_dir is None:
        cuad_dir, claudette_dir = shipped_corpus("cuad"), shipped_corpus("unfair-tos")
    verified = None if str(args.verified).lower() == "none" else args.verified
    records, report = build_records(cuad_dir, claudette_dir, verified, progress=not args.quiet)
    paths = write_dataset(records, args.out, report, compress=args.gzip)
    for key, n in report.records.items():
        print(f"{key:24s} {n:7d} clauses")
    print(f"dropped as duplicates of a later split: {dict(report.dropped_duplicates)}")
    print(f"verified party labels applied: {report.verified_applied} (stale: {report.verified_stale})")
    for p in paths:
        print(f"wrote {p}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from .card import update_card

    update_card(args.dataset, args.card, args.verified)
    print(f"updated {args.card} and {args.dataset / 'stats.json'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from collections import Counter

    from contract_review.records import read_records

    records = read_records(args.file)
    splits = Counter(r.split for r in records)
    print(f"{args.file}: {len(records)} valid records {dict(splits)}", file=sys.stdout)
    return 0
