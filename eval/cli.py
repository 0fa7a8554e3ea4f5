"""Command line of the evaluation package: `eval`, `eval compare`, `eval tune-ensemble`, `eval ensemble-report`.

Every `contract-review` command, `--help` included, imports this module; the evaluation code pulls in
torch, transformers and scikit-learn (seconds), so each command imports what it runs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from contract_review.command import UserError
from contract_review.predictor import DEFAULT, LoadOptions, load_predictor, model_help, parse_model
from contract_review.reviewer.registry import REVIEWER, UNFAIR_TOS

EVAL_HELP = """\
Evaluate a model on a dataset file or on the CLAUDETTE layout, with baselines, bootstrap
intervals and a report.

  contract-review eval --data data/dataset/test.jsonl.gz --out runs/eval-test
  contract-review eval --data FILE.jsonl --model tfidf --out runs/eval-tfidf
  contract-review eval --data data/dataset/test.jsonl.gz --model reviewer --out runs/eval-heads
  contract-review eval --data FILE.jsonl --model zero-shot --limit 200 --out runs/eval-zs
  contract-review eval --data FILE.jsonl --adapter runs/r1/adapter --out runs/eval-r1
  contract-review eval --claudette data/unfair-tos --split validation --model tfidf --out runs/eval-unfair
  contract-review eval compare runs/eval-r1 runs/eval-r2
  contract-review eval --save-probs runs/probs.pt --adapter runs/r1/adapter   then eval tune-ensemble

--model (the same choice as `serve`, `review` and `annotate push`; default: default):
{models}

A base model zero-shot scores every allowed label; `--decode generate` makes it write the JSON
instead, invalid answers counted. The mix's ensemble.json is tuned on validation with
`contract-review eval tune-ensemble`.

--claudette reads Sentences/, Labels_<CAT>/ and OriginalTaggedDocuments/ directly and scores
LexGLUE's labels exactly; companies outside LexGLUE's train/validation lists are `test`.
`--claudette shipped` reads the corpus shipped in data/corpora.

The run folder gets metrics.json (risk.f1, risk.precision, risk.recall, unfair_tos.macro_f1,
unfair_tos.micro_f1, clause_type.macro_f1, party.accuracy, party.macro_f1, each
{"value", "ci"}), predictions.jsonl, report.md, report.html and figures/; baselines go to
baselines/<name>/. Nothing is written unless the whole evaluation succeeds.
"""

BASELINES_DEFAULT = "tfidf"

TUNE_HELP = """\
Choose the served model's mix (the reviewer's heads and TF-IDF, per clause type) on the
validation split and write its ensemble.json; every number comes from validation only.
The reviewer's head probabilities come precomputed (`contract-review eval --save-probs`), so
tuning runs no model; put the file beside the adapter it was tuned with.

  contract-review eval --save-probs runs/probs.pt
  contract-review eval tune-ensemble --probs runs/probs.pt --out data/model/reviewer/ensemble.json

With --risk-only FILE the types of an existing ensemble file are kept and only the risk rule is chosen
again (how the shipped file's rule `criteria` was chosen):

  contract-review eval tune-ensemble --probs runs/probs.pt --risk-only data/model/reviewer/ensemble.json \
      --out data/model/reviewer/ensemble.json
"""

REPORT_HELP = """\
The mix against its parts: reviewer alone, TF-IDF alone (LexGLUE's SVM on CLAUDETTE) and the
mix on every split of the probabilities, with 95% bootstrap intervals by document, the mix's
paired difference from the reviewer, and a by-document cross-fit of the mix on validation.

  contract-review eval ensemble-report --probs runs/probs.pt --config data/model/reviewer/ensemble.json
"""

SELECT_HELP = """\
Choose the reviewer to ship from a GPU list's runs by a cross-fit by document on validation, and read
test once for it (eval/select.py has the protocol). RUNS holds <variant>-s<seed>/snapshots/step<N>/
(probs.pt, and adapter/ where that snapshot may ship: bench/lists/reviewer.sh keeps seed 0's last);
scripts/ship_reviewer.sh runs the whole sequence on the list's returned files.

  contract-review eval select --runs RUNS --baseline-probs RUNS/previous/probs.pt \\
      --baseline-adapter RUNS/previous --out runs/select                        # validation only
  contract-review eval select ... --ship data/model/reviewer                   # then ship and read test
"""

COMPARE_HELP = """\
Difference of every metric between two runs (A - B) with a 95% paired bootstrap interval,
resampling documents; both runs must have predicted the same records.

  contract-review eval compare runs/eval-r1 runs/eval-r2 [--json OUT.json]
"""


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="F1 on risk clauses with baselines, intervals and reports; compare runs",
                        description=EVAL_HELP.replace("{models}", model_help()),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ev.add_mutually_exclusive_group()
    src.add_argument("--data", type=str, metavar="FILE", help="a dataset file (.jsonl or .jsonl.gz) of records")
    src.add_argument("--claudette", type=str, metavar="DIR",
                     help="a CLAUDETTE (unfair-tos) folder in its published layout, or `shipped`")
    src.add_argument("--save-probs", type=str, metavar="FILE",
                     help="instead of an evaluation: save the reviewer's head probabilities on the dataset's "
                          "--splits to FILE, for tune-ensemble and ensemble-report (reviewer --adapter DIR, "
                          "default: shipped; --model a base model folder for it, default its own)")
    ev.add_argument("--dataset", type=str, metavar="DIR",
                    help="with --save-probs: dataset folder of the split files (default data/dataset)")
    ev.add_argument("--splits", type=str, default="validation,test",
                    help="with --save-probs: comma-separated splits (default validation,test)")
    ev.add_argument("--split", type=str, default="validation",
                    help="with --claudette: LexGLUE split to evaluate (train, validation, test; default validation)")
    ev.add_argument("--model", type=str, default=DEFAULT, help="the model to evaluate (see above; default: default)")
    ev.add_argument("--adapter", type=str, metavar="DIR", help="adapter folder to put on --model")
    ev.add_argument("--decode", choices=("score", "generate"), default="score",
                    help="how a base model answers zero-shot (default score)")
    ev.add_argument("--baselines", type=str, default=BASELINES_DEFAULT,
                    help="comma-separated models scored beside --model in the same report, by name (above), or "
                         "none; default tfidf, plus tfidf-unfair-tos (LexGLUE's TF-IDF + SVM) with --claudette; "
                         "zero-shot costs ~0.5 s a clause on 2 CPU cores")
    ev.add_argument("--tfidf-train", type=str, metavar="FILE",
                    help="train file for the tfidf baseline (default: the shipped train split)")
    ev.add_argument("--out", type=str, metavar="DIR", help="run folder to write (default runs/eval-<model>-<time>)")
    ev.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    ev.add_argument("--limit", type=int, metavar="N",
                    help="evaluate a fixed sample of N records (with --save-probs: each split's first N, a smoke test)")
    ev.add_argument("--batch-size", type=int, default=8, help="clauses per forward pass (default 8)")
    ev.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000; 0 = none)")
    ev.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ev.add_argument("--no-report", action="store_true", help="write metrics and predictions only")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_eval)

    cmds = ev.add_subparsers(dest="eval_command", metavar="")
    cmp = cmds.add_parser("compare", help="paired bootstrap difference of two runs",
                          description=COMPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmp.add_argument("run_a", metavar="RUN_A")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    cmp.add_argument("--json", type=str, metavar="FILE", help="also write the comparison as JSON")
    cmp.set_defaults(func=_compare)

    sel = cmds.add_parser("select", help="choose the reviewer to ship by a cross-fit on validation; read test once",
                          description=SELECT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sel.add_argument("--runs", required=True, metavar="DIR", help="the GPU list's runs (<variant>-s<seed>/...)")
    sel.add_argument("--baseline-probs", metavar="PROBS.pt", help="the previously shipped reviewer's probabilities")
    sel.add_argument("--baseline-adapter", metavar="DIR", help="its adapter folder (its reviewer.json: label orders)")
    sel.add_argument("--folds", type=int, default=5, help="cross-fit folds by document (default 5)")
    sel.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    sel.add_argument("--out", required=True, metavar="DIR", help="folder for selection.json (and test.json)")
    sel.add_argument("--ship", metavar="DIR", help="copy the chosen adapter here, tune its mix, read test once")
    sel.add_argument("--dataset", metavar="DIR", help="dataset folder (default data/dataset)")
    sel.add_argument("--tfidf-train", metavar="FILE", help="train file of the TF-IDF model (default: shipped)")
    sel.add_argument("-q", "--quiet", action="store_true")
    sel.set_defaults(func=_select)

    for name, help_, description, func in (
            ("tune-ensemble", "choose the reviewer + TF-IDF mix on validation; write ensemble.json", TUNE_HELP,
             _tune_ensemble),
            ("ensemble-report", "the mix against the reviewer and TF-IDF, with intervals", REPORT_HELP,
             _ensemble_report)):
        p = cmds.add_parser(name, help=help_, description=description,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--probs", required=True, metavar="PROBS.pt",
                       help="reviewer head probabilities on validation (and test): `contract-review eval --save-probs`")
        p.add_argument("--name", help="the adapter's entry when PROBS.pt holds several ({name: {split: ...}})")
        p.add_argument("--adapter", metavar="DIR", help="the adapter the probabilities came from (default: shipped)")
        p.add_argument("--dataset", metavar="DIR", help="dataset folder with the split files (default data/dataset)")
        p.add_argument("--tfidf-train", metavar="FILE", help="train file of the TF-IDF model (default: shipped)")
        p.add_argument("--claudette", metavar="DIR", help="CLAUDETTE layout for LexGLUE's SVM (default: shipped)")
        p.add_argument("--no-unfair-tos", action="store_true", help="mix without LexGLUE's per-category SVM")
        p.add_argument("--min-positives", type=int, metavar="N",
                       help="validation positives a type needs for weights and a threshold of its own (default: "
                            "more than any type has now, so every type takes its group's; see TuneSettings)")
        p.add_argument("--claudette-target", choices=("type", "unfair"),
                       help="what CLAUDETTE-mapped types are tuned for: their presence, or presence where LexGLUE "
                            "counts the sentence unfair (default unfair)")
        if name == "tune-ensemble":
            p.add_argument("--out", required=True, metavar="FILE", help="ensemble file to write")
            p.add_argument("--risk-only", metavar="FILE",
                           help="keep this ensemble file's types and choose only its risk rule (and bearer "
                                "threshold) again on validation")
        else:
            p.add_argument("--config", metavar="FILE", help="an ensemble file to score (tuned on these probabilities)")
            p.add_argument("--crossfit", type=int, default=5, metavar="K",
                           help="also score a K-fold by-document cross-fit on validation (0: no; default 5)")
            p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
            p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
        p.set_defaults(func=func)


def _eval(args: argparse.Namespace) -> int:
    from contract_review.annotation.corpora import shipped_corpus

    from .claudette_eval import load_claudette_items
    from .items import load_items, take
    from .runner import evaluate

    if args.threads:
        import torch  # only to set its threads; the models import it when they load

        torch.set_num_threads(args.threads)
    if args.save_probs:
        return _save_probs(args)
    if not args.data and not args.claudette:
        raise UserError("give the records to evaluate: --data FILE.jsonl or --claudette DIR "
                        "(see `contract-review eval --help`)")
    # 1. the choices: an unknown model, a missing folder or adapter stops here, before anything loads
    spec = parse_model(args.model, args.adapter)
    names = [b.strip() for b in args.baselines.split(",") if b.strip() and b.strip() != "none"]
    if args.claudette and UNFAIR_TOS not in names and args.baselines == BASELINES_DEFAULT:
        names.append(UNFAIR_TOS)  # the published LexGLUE baseline belongs beside any CLAUDETTE figure
    baselines = [parse_model(b) for b in dict.fromkeys(names) if b != spec.model]
    if args.data and UNFAIR_TOS in [spec.model] + names:
        raise UserError(f"{UNFAIR_TOS} knows only CLAUDETTE's 8 categories: use it with --claudette")
    out = Path(args.out or f"runs/eval-{Path(spec.model).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"{out}: already exists; choose another --out or pass --overwrite")
    # 2. the data: every problem (missing file, broken line, unknown label, empty file) stops here
    if args.data:
        items = load_items(args.data, args.limit)
        data = {"file": str(args.data), "limit": args.limit}
    else:
        root = shipped_corpus("unfair-tos") if args.claudette == "shipped" else args.claudette
        items = take(load_claudette_items(root, args.split), args.limit)
        data = {"claudette": str(root), "split": args.split, "limit": args.limit}
    # 3. the models: one that cannot be loaded stops here, before any prediction
    options = LoadOptions(decode=args.decode, batch_size=args.batch_size, progress=not args.quiet,
                          tfidf_train=args.tfidf_train, claudette_root=str(root) if args.claudette else None)
    predictors = []
    for i, choice in enumerate([spec] + baselines):
        t0 = time.perf_counter()
        # baselines answer by scoring: --decode is the evaluated model's
        predictor = load_predictor(choice, options if i == 0 else replace(options, decode="score"))
        if any(p.name == predictor.name for p, _ in predictors):
            print(f"baseline {choice.model} is the evaluated model itself ({predictor.name}): scored once",
                  file=sys.stderr)
            continue
        predictors.append((predictor, time.perf_counter() - t0))
    print(f"evaluating {', '.join(p.name for p, _ in predictors)} on {len(items):,} records", file=sys.stderr)
    metrics = evaluate(items, predictors, out, data, resamples=args.resamples, overwrite=args.overwrite,
                       progress=not args.quiet, make_report=not args.no_report)
    _summary(metrics, out)
    return 0


def _save_probs(args: argparse.Namespace) -> int:
    from contract_review.reviewer.heads import load_reviewer_predictor

    from .ensemble_tune import save_probs

    spec = parse_model(args.model, args.adapter)
    if spec.model not in (DEFAULT, REVIEWER) and not Path(spec.model).is_dir():
        raise UserError(f"--save-probs saves a reviewer adapter's head probabilities: --model must be default, "
                        f"reviewer or the base model folder of --adapter, not {args.model!r}")
    base = None if spec.model in (DEFAULT, REVIEWER) else spec.model
    reviewer = load_reviewer_predictor(spec.adapter, base_model=base)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    counts = save_probs(reviewer, args.save_probs, args.dataset, splits, args.limit, progress=not args.quiet)
    print(f"wrote {args.save_probs}: {reviewer.model_version} on " +
          ", ".join(f"{split} ({n:,} records)" for split, n in counts.items()), file=sys.stderr)
    return 0


def _summary(metrics: dict, out: Path) -> None:
    from .metrics import STABLE_KEYS, format_value

    runs = {metrics["model"]["name"]: metrics, **metrics.get("baselines", {})}
    print(f"{'metric':24}" + "".join(f"{name:>24}" for name in runs))
    for key in STABLE_KEYS:
        print(f"{key:24}" + "".join(f"{format_value(m[key]):>24}" for m in runs.values()))
    print(f"{'invalid outputs':24}" + "".join(f"{m['errors']['invalid']:>24}" for m in runs.values()))
    print(f"{'clauses/s':24}" + "".join(f"{m['timing']['clauses_per_second']!s:>24}" for m in runs.values()))
    print(f"wrote {out}/ (metrics.json, predictions.jsonl, report.md, report.html)")


def _compare(args: argparse.Namespace) -> int:
    from .compare import CompareError, compare_runs, format_comparison, write_comparison

    try:
        result = compare_runs(args.run_a, args.run_b, resamples=args.resamples)
    except CompareError as exc:
        raise UserError(str(exc)) from None
    print(format_comparison(result))
    if args.json:
        write_comparison(result, args.json)
    return 0


def _tuning_data(args: argparse.Namespace):
    from .ensemble_tune import load_tuning_data

    return load_tuning_data(args.probs, args.name, args.adapter, args.dataset, args.tfidf_train, args.claudette,
                            unfair_tos=not args.no_unfair_tos)


def _settings(args: argparse.Namespace):
    from .ensemble_tune import TuneSettings

    given = {"min_positives": args.min_positives, "claudette_target": args.claudette_target}
    return TuneSettings(**{k: v for k, v in given.items() if v is not None})


def _tune_ensemble(args: argparse.Namespace) -> int:
    from .ensemble_tune import tune, write_config

    data = _tuning_data(args)
    items, scores = data.splits["validation"]
    if args.risk_only:
        from contract_review.reviewer.ensemble import read_config

        from .ensemble_tune import choose_risk

        kept = read_config(args.risk_only)
        cfg = choose_risk(kept, scores, items, data.labels, _settings(args), data.tax,
                          {**kept.tuned, "risk_chosen_from": f"{args.risk_only}'s types, probabilities {args.probs}"})
    else:
        cfg = tune(scores, items, data.labels, data.fingerprints, _settings(args), data.tax,
                   provenance={"probs": str(args.probs), "name": args.name})
    write_config(cfg, args.out)
    chosen = sum(r.chosen == "type" for r in cfg.types.values())
    print(f"wrote {args.out}: {chosen} types tuned on their own, {len(cfg.types) - chosen} global; risk rule "
          f"{cfg.risk.rule}", file=sys.stderr)
    return 0


def _ensemble_report(args: argparse.Namespace) -> int:
    from contract_review.reviewer.ensemble import read_config

    from .ensemble_report import ensemble_report, format_report

    data = _tuning_data(args)
    cfg = read_config(args.config) if args.config else None
    rows, diffs = ensemble_report(data, cfg, str(args.config), args.crossfit, _settings(args), args.resamples)
    print(format_report(rows))
    print("\nPaired differences (same document resamples for both):\n")
    print(format_report(diffs))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "paired": diffs}, indent=1) + "\n", encoding="utf-8")
    return 0


def _select(args: argparse.Namespace) -> int:
    from contract_review.reviewer.heads import read_meta
    from contract_review.training.reviewer_model import Labels

    from .ensemble_tune import load_tuning_data
    from .select import SHIPPED_SEED, discover, select, ship

    runs = discover(args.runs)
    # the label orders and the split items come from any snapshot whose adapter came back (seed 0's last)
    snap = next((s for seeds in runs.values() for seed, r in sorted(seeds.items()) if seed == SHIPPED_SEED
                 for s in r.snapshots if (s / "adapter" / "reviewer.json").exists()), None)
    if snap is None:
        raise UserError(f"{args.runs}: no seed-{SHIPPED_SEED} snapshot brought its adapter back; nothing can ship")

    def data_for(adapter_dir, probs):
        return load_tuning_data(probs, adapter=adapter_dir, dataset=args.dataset, tfidf_train=args.tfidf_train)

    data = data_for(snap / "adapter", snap / "probs.pt")
    baseline_labels = Labels.from_meta(read_meta(args.baseline_adapter)) if args.baseline_adapter else None
    report = select(args.runs, data, args.baseline_probs, baseline_labels, args.folds, args.resamples,
                    progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    c = report["chosen"]
    print(f"chosen: {c['variant']} snapshot {c['snapshot']} (seed {c['shipped_seed']} ships); "
          f"wrote {out / 'selection.json'}", file=sys.stderr)
    if args.ship:
        result = ship(report, args.runs, data_for, args.ship, args.resamples)
        (out / "test.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"shipped {result['model_version']} to {args.ship}; test read once ({out / 'test.json'}, "
              f"{Path(args.ship) / 'test_reads.jsonl'})", file=sys.stderr)
    return 0
