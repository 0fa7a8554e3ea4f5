"""The dataset card's numbers: counts per split and label, lengths, pre-labeller accuracy.

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
        "risk": by(lambda r: r.risk),
        "party": by(lambda r: r.party),
        "clause_types": {t: {s: sum(t in r.clause_types for r in records if r.split == s) for s in SPLITS}
                         for t in tax.clause_type_ids},
        "verified": by(lambda r: r.verified),
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


def render(stats: dict, accuracy: dict | None) -> str:
    tax = load_taxonomy()
    parts = []
    parts.append("### Records per split\n\n" + _table(
        ["split", "documents", "CUAD clauses", "CLAUDETTE sentences", "total"],
        [[s, stats["documents"][s], stats["records"][s].get("cuad", 0), stats["records"][s].get("claudette", 0),
          sum(stats["records"][s].values())] for s in SPLITS]))
    parts.append("### Risk level\n\n" + _table(
        ["risk", *SPLITS], [[lvl, *(stats["risk"][s].get(lvl, 0) for s in SPLITS)] for lvl in tax.risk_levels]))
    parts.append("### Obligated party (rule pre-labels, verified labels where checked)\n\n" + _table(
        ["party", *SPLITS], [[p, *(stats["party"][s].get(p, 0) for s in SPLITS)] for p in tax.parties])
        + "\n\nVerified records: " + ", ".join(f"{s} {stats['verified'][s].get(True, 0)}" for s in SPLITS) + ".")
    parts.append("### Clause types\n\n" + _table(
        ["clause type", "default risk", *SPLITS],
        [[f"`{t}`", tax.clause_type(t).risk, *(stats["clause_types"][t][s] for s in SPLITS)] for t in tax.clause_type_ids]))
    L = stats["length_chars"]
    parts.append(f"### Length\n\nClause length in characters: min {L['min']}, 10th percentile {L['p10']}, median "
                 f"{L['median']}, 90th percentile {L['p90']}, max {L['max']}.\n\n![lengths](dataset/lengths.png)")
    if accuracy and accuracy["n"]:
        conf = accuracy["confusion"]
        parts.append(
            f"### Rule pre-labeller against the {accuracy['n']} verified labels\n\n"
            f"Accuracy **{accuracy['accuracy']:.3f}**, macro-F1 {accuracy['macro_f1']:.3f}. "
            f"Rows: verified label; columns: pre-label.\n\n"
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
    card.write_text(head + BEGIN + "\n\n" + render(stats, accuracy) + "\n\n" + END + tail, encoding="utf-8")
    return stats
