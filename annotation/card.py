"""The dataset card's numbers: counts per split and label, who made the labels, party lists,
the checklist rule labeller's coverage, lengths, pre-labeller accuracy.

`contract-review data card` recomputes them from the dataset and the verified labels and
rewrites the generated part of `data/README.md` (between the GENERATED markers) plus a
length histogram PNG, so the card can never drift from the data it describes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sklearn.metrics import precision_recall_fscore_support

from contract_review.records import SPLITS, ClauseRecord, find_split_file, iter_jsonl, read_records
from contract_review.taxonomy import load_taxonomy

BEGIN, END = "<!-- GENERATED: contract-review data card -->", "<!-- END GENERATED -->"


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def prelabeller_accuracy(build_report: dict, verified_file: Path | None) -> dict:
    """Accuracy of the rule pre-labeller against the verified labels, from the build report."""
    parties = load_taxonomy().parties
    confusion = {gold: {pred: 0 for pred in parties} for gold in parties}
    for key, n in build_report.get("prelabel_vs_verified", {}).items():
        pred, gold = key.split("->")
        confusion[gold][pred] += n
    gold = [g for g in parties for p in parties for _ in range(confusion[g][p])]
    pred = [p for g in parties for p in parties for _ in range(confusion[g][p])]
    total = len(gold)
    prec, rec, f1, support = precision_recall_fscore_support(gold, pred, labels=list(parties), zero_division=0)
    per_class = {
        label: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, label in enumerate(parties)
    }
    correct = sum(confusion[p][p] for p in parties)
    labellers = Counter(v["labeller"] for _, v in iter_jsonl(verified_file)) if verified_file and verified_file.exists() else {}
    return {
        "n": total,
        "accuracy": correct / total if total else 0.0,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / len(per_class),
        "per_class": per_class,
        "confusion": confusion,
        "labellers": dict(labellers),
    }


def dataset_stats(records: list[ClauseRecord]) -> dict:
    tax = load_taxonomy()
    by = lambda key: {s: dict(Counter(key(r) for r in records if r.split == s)) for s in SPLITS}  # noqa: E731
    lengths = sorted(len(r.text) for r in records)
    q = lambda p: lengths[min(len(lengths) - 1, int(p * len(lengths)))]  # noqa: E731
    return {
        "records": by(lambda r: r.source),
        "documents": {s: len({(r.source, r.doc_id) for r in records if r.split == s}) for s in SPLITS},
        "severity": by(lambda r: r.severity),
        "risk_to": by(lambda r: r.risk_to),
        "severity_by_bearer": dict(Counter(f"{r.severity}/{r.risk_to}" for r in records)),
        "severity_by_source": dict(Counter(f"{r.source}/{r.severity}" for r in records)),
        "party": by(lambda r: r.party),
        "clause_types": {t: {s: sum(t in r.clause_types for r in records if r.split == s) for s in SPLITS}
                         for t in tax.clause_type_ids},
        "rule_types": {t: {s: sum(t in r.clause_types and r.type_labeller == "rules" for r in records if r.split == s)
                           for s in SPLITS} for t in tax.clause_type_ids},
        "type_labeller": by(lambda r: r.type_labeller),
        "party_labeller": by(lambda r: "checker" if r.verified else r.party_labeller),
        "risk_labeller": by(lambda r: r.risk_labeller),
        "verified": by(lambda r: r.verified),
        "graded": by(lambda r: r.risk_graded),
        "length_chars": {"min": lengths[0], "p10": q(0.1), "median": q(0.5), "p90": q(0.9), "max": lengths[-1]},
    }


def plot_lengths(records: list[ClauseRecord], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for source in ("cuad", "claudette"):
        ax.hist([len(r.text) for r in records if r.source == source], bins=60, range=(0, 2400), alpha=0.6, label=source)
    ax.set_xlabel("clause length (characters)")
    ax.set_ylabel("clauses")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Clause lengths in the shipped dataset")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _split_table(title: str, stats: dict, key: str, rows) -> str:
    return f"### {title}\n\n" + _table([key.replace("_", " "), *SPLITS],
                                        [[f"`{v}`", *(stats[key][s].get(v, 0) for s in SPLITS)] for v in rows])


def render(stats: dict, accuracy: dict | None, build_report: dict | None = None) -> str:
    tax = load_taxonomy()
    report = build_report or {}
    parts = []
    parts.append("### Records per split\n\n" + _table(
        ["split", "documents", "CUAD clauses", "CLAUDETTE sentences", "total"],
        [[s, stats["documents"][s], stats["records"][s].get("cuad", 0), stats["records"][s].get("claudette", 0),
          sum(stats["records"][s].values())] for s in SPLITS]))
    parts.append(_split_table("Severity (for the party who bears the risk)", stats, "severity", tax.severity_levels))
    parts.append(_split_table("Who bears the risk (`risk_to`)", stats, "risk_to", tax.risk_bearers))
    sb = stats["severity_by_bearer"]
    parts.append("### Severity by bearer, all splits\n\n" + _table(
        ["severity \\ risk_to", *tax.risk_bearers],
        [[f"`{lvl}`", *(sb.get(f"{lvl}/{b}", 0) for b in tax.risk_bearers)] for lvl in tax.severity_levels]))
    ss = stats["severity_by_source"]
    parts.append("### Severity by source\n\n" + _table(
        ["severity", "CUAD", "CLAUDETTE"],
        [[f"`{lvl}`", ss.get(f"cuad/{lvl}", 0), ss.get(f"claudette/{lvl}", 0)] for lvl in tax.severity_levels]))
    parts.append(_split_table("Obligated party (rule pre-labels, checked labels where verified)", stats, "party",
                              tax.parties)
                 + "\n\nVerified records: " + ", ".join(f"{s} {stats['verified'][s].get(True, 0)}" for s in SPLITS)
                 + "; graded records: " + ", ".join(f"{s} {stats['graded'][s].get(True, 0)}" for s in SPLITS) + ".")
    rules = stats["rule_types"]
    parts.append("### Clause types\n\n`rules` counts the clauses the checklist rule labeller typed (all of them "
                 "for the seven checklist types).\n\n" + _table(
                     ["clause type", "default severity", "bearer rule", *SPLITS, "rules"],
                     [[f"`{t}`", tax.clause_type(t).severity, tax.clause_type(t).risk_to,
                       *(stats["clause_types"][t][s] for s in SPLITS), sum(rules[t].values())]
                      for t in tax.clause_type_ids]))
    checklist = [t for t in tax.clause_type_ids if sum(rules[t].values())]
    other_before = {s: stats["clause_types"]["other"][s] + sum(
        stats["type_labeller"][s].get(k, 0) for k in ("rules",)) for s in SPLITS}
    parts.append("### The checklist rule labeller's coverage\n\nClauses the rule labeller typed, per split, and the "
                 "share of the clauses the corpora left `other` that it typed. Its precision is measured on the graded "
                 "set.\n\n" + _table(
                     ["clause type", *SPLITS],
                     [[f"`{t}`", *(rules[t][s] for s in SPLITS)] for t in checklist]
                     + [["typed clauses (of those left `other`)",
                         *(f"{stats['type_labeller'][s].get('rules', 0)} of {other_before[s]} "
                           f"({stats['type_labeller'][s].get('rules', 0) / max(other_before[s], 1):.1%})"
                           for s in SPLITS)]]))
    labellers = []
    for key, title in (("type_labeller", "clause types"), ("party_labeller", "obligated party"),
                       ("risk_labeller", "bearer and severity")):
        values = sorted({v for s in SPLITS for v in stats[key][s]})
        labellers += [[f"{title}: `{v}`", *(stats[key][s].get(v, 0) for s in SPLITS)] for v in values]
    parts.append("### Who made the labels\n\n" + _table(["label: labeller", *SPLITS], labellers))
    pl = report.get("party_lists", {})
    if pl:
        docs = sum(v for k, v in pl.items() if k.startswith("named_"))
        parts.append(
            f"### Party lists (CUAD contracts)\n\n{docs} contracts: {pl.get('named_2', 0)} with two named parties, "
            f"{pl.get('named_3', 0) + pl.get('named_3+', 0)} with three or more, {pl.get('named_1', 0)} with one and "
            f"{pl.get('named_0', 0)} with none the extractor could name (the other role reads as blank, not named or "
            f"not identified); {pl.get('with_blank', 0)} with a template blank, {pl.get('with_unnamed', 0)} with a party "
            f"the contract only refers to, {pl.get('more_than_two', 0)} listing more than two parties. Verified labels: "
            f"{report.get('verified_applied', 0)} applied, {report.get('verified_remapped', 0)} re-mapped at build "
            f"time, {len(report.get('verified_unmatched', []))} left out (checker's names match no listed party), "
            f"{report.get('verified_stale', 0)} stale.")
    L = stats["length_chars"]
    parts.append(f"### Length\n\nClause length in characters: min {L['min']}, 10th percentile {L['p10']}, median "
                 f"{L['median']}, 90th percentile {L['p90']}, max {L['max']}.\n\n![lengths](dataset/lengths.png)")
    if accuracy and accuracy["n"]:
        conf = accuracy["confusion"]
        parts.append(
            f"### Rule pre-labeller against the {accuracy['n']} verified labels\n\n"
            f"Accuracy **{accuracy['accuracy']:.3f}**, macro-F1 {accuracy['macro_f1']:.3f}. "
            f"Rows: verified label; columns: pre-label. The verified set is not a uniform sample (see above): "
            f"these figures over-represent typed clauses.\n\n"
            + _table(["verified \\ rules", *tax.parties], [[g, *(conf[g][p] for p in tax.parties)] for g in tax.parties])
            + "\n\n" + _table(["label", "precision", "recall", "F1", "support"],
                              [[k, f"{v['precision']:.2f}", f"{v['recall']:.2f}", f"{v['f1']:.2f}", v["support"]]
                               for k, v in accuracy["per_class"].items()])
            + "\n\nCheckers: " + ", ".join(f"`{k}` {v}" for k, v in sorted(accuracy["labellers"].items())) + "."
        )
    return "\n\n".join(parts)


def update_card(dataset_dir: Path, card: Path, verified_file: Path | None, out_dir: Path | None = None) -> dict:
    """Rewrite the card's generated part; the plot and stats.json go to `out_dir`
    (default: the dataset folder, which the card's image link points at)."""
    out_dir = Path(out_dir or dataset_dir)
    records = [r for s in SPLITS for r in read_records(find_split_file(dataset_dir, s))]
    stats = dataset_stats(records)
    build_report = next(obj for _, obj in iter_jsonl(dataset_dir / "build_report.jsonl"))
    accuracy = prelabeller_accuracy(build_report, verified_file)
    plot_lengths(records, out_dir / "lengths.png")
    (out_dir / "stats.json").write_text(json.dumps({"stats": stats, "prelabeller": accuracy}, indent=1, sort_keys=True) + "\n")
    text = card.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{card}: missing the markers {BEGIN} ... {END} where the numbers go")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    card.write_text(head + BEGIN + "\n\n" + render(stats, accuracy, build_report) + "\n\n" + END + tail,
                    encoding="utf-8")
    return stats
