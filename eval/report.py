"""The human-readable report of a run: Markdown and HTML with the same content, and figures.

    report.md / report.html
      - what was evaluated (data, records, documents) and when
      - the headline table: every stable metric with its 95% interval, model and baselines (the
        type-oracle baselines of `oracle.py` among them)
      - the risk figures by who labelled the gold (graded = gold, rules, CLAUDETTE fairness) and the
        confusion of who bears the risk
      - invalid outputs by kind; time and throughput
      - per-class precision / recall / F1 (unfair-term categories, risk categories, clause types)
      - the worst errors of the model, with their text
    figures/
      confusion_risk.png       gold risk level x predicted level (+ invalid), the model
      confusion_party.png      the same for the obligated party (verified records), if any
      per_class_f1.png         per-class F1 bars, model and baselines side by side
      pr_risk.png              precision-recall curves of the risk decision, every run with scores
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contract_review.taxonomy import load_taxonomy

from .metrics import INVALID, METRICS, UNSAID, confusion, decisions, format_value, precision_recall_curve, risk_score

if TYPE_CHECKING:  # the runner writes reports: at run time this module must not import it back
    from .runner import RunResult

WORST = 15


def risk_scores(run: RunResult) -> np.ndarray:
    tax = load_taxonomy()
    return np.array([np.nan if (s := risk_score(p, tax)) is None else s for p in run.preds], dtype=float)


def _figures(folder: Path, runs: Sequence[RunResult]) -> list[tuple[str, str]]:
    # matplotlib takes its backend at the first import of pyplot: a server without a display needs Agg
    # chosen first, and only runs that write a report pay for the import
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tax = load_taxonomy()
    figdir = folder / "figures"
    figdir.mkdir(exist_ok=True)
    made = []
    main = runs[0]
    d = decisions(main.items, main.preds, tax)

    def heat(matrix, rows, cols, title, name):
        fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 2, 0.8 * len(rows) + 1.8))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                v = matrix[i, j]
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(figdir / name, dpi=110)
        plt.close(fig)
        made.append((title, f"figures/{name}"))

    levels = list(tax.risk_levels)
    heat(confusion(d.risk_level_true, d.risk_level_pred, levels), levels, levels + [INVALID],
         f"Risk level, {main.name}", "confusion_risk.png")
    if len(d.party_rows):
        parties = list(tax.parties)
        heat(confusion(d.party_true, d.party_pred, parties), parties, parties + [INVALID],
             f"Obligated party (verified), {main.name}", "confusion_party.png")

    # per-class F1: unfair categories (if any ToS sentences) and clause types seen in the gold
    groups = []
    if len(d.unfair_rows):
        groups.append(("unfair_tos", "UNFAIR-ToS category"))
    groups.append(("risk_category", "risk category"))
    groups.append(("clause_type", "clause type"))
    classes = {g: [c for c, v in main.metrics["per_class"][g].items() if v["support"]] for g, _ in groups}
    groups = [(g, t) for g, t in groups if classes[g]]
    if groups:
        heights = [max(len(classes[g]), 2) for g, _ in groups]
        fig, axes = plt.subplots(len(groups), 1, figsize=(8, 0.28 * sum(heights) * max(1, len(runs) / 2) + 2),
                                 gridspec_kw={"height_ratios": heights}, squeeze=False)
        width = 0.8 / len(runs)
        for ax, (g, title) in zip(axes[:, 0], groups):
            y = np.arange(len(classes[g]))
            for k, run in enumerate(runs):
                pc = run.metrics["per_class"][g]
                ax.barh(y + k * width, [pc.get(c, {}).get("f1", 0.0) for c in classes[g]], height=width,
                        label=run.name)
            ax.set_yticks(y + width * (len(runs) - 1) / 2, classes[g], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_title(f"F1 per {title}")
        axes[0, 0].legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(figdir / "per_class_f1.png", dpi=110)
        plt.close(fig)
        made.append(("F1 per class", "figures/per_class_f1.png"))

    fig, ax = plt.subplots(figsize=(6, 5))
    drew = False
    for run in runs:
        s = risk_scores(run)
        y = np.array([tax.is_risk_clause(it.risk) for it in run.items], dtype=int)
        ok = np.isfinite(s)
        if ok.sum() == 0 or y[ok].sum() == 0 or y[ok].sum() == ok.sum():
            continue
        p, r, ap = precision_recall_curve(y[ok], s[ok])
        ax.plot(r, p, label=f"{run.name} (AP {100 * ap:.1f})")
        m = run.metrics
        ax.scatter([m["risk.recall"]["value"]], [m["risk.precision"]["value"]], marker="o")
        drew = True
    if drew:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title("Risk clauses (medium/high): precision-recall; dots = operating point")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(figdir / "pr_risk.png", dpi=110)
        made.append(("Precision-recall, risk clauses", "figures/pr_risk.png"))
    plt.close(fig)
    return made


def worst_errors(run: RunResult, n: int = WORST) -> list[dict]:
    """Unusable answers first, then wrong risk decisions ordered by the model's confidence in them."""
    tax = load_taxonomy()
    rows = []
    for it, p in zip(run.items, run.preds):
        gold_pos = tax.is_risk_clause(it.risk)
        if p.answer is None:
            rows.append((2.0, it, p))
        elif tax.is_risk_clause(p.answer.risk) != gold_pos:
            s = risk_score(p, tax)
            wrongness = (s if not gold_pos else 1 - s) if s is not None else 0.5
            rows.append((wrongness, it, p))
    rows.sort(key=lambda r: -r[0])
    out = []
    for w, it, p in rows[:n]:
        out.append({
            "id": it.id, "text": it.text,
            "gold": f"{it.risk} / {', '.join(it.clause_types)}",
            "pred": (f"{p.answer.risk} / {', '.join(p.answer.clause_types)}" if p.answer is not None
                     else f"{p.error}: {(p.raw or '')[:160]!r}"),
            "confidence": None if w == 2.0 else round(float(w), 3),
        })
    return out


def _tables(runs: Sequence[RunResult]):
    head = ["metric"] + [r.name for r in runs]
    rows = [[f"{m.key} ({m.description})" if m.stable else m.key] + [format_value(r.metrics.get(m.key)) for r in runs]
            for m in METRICS]
    ops = [["invalid outputs"] + [f"{r.metrics['errors']['invalid']} ({r.metrics['errors']['by_kind'] or 'none'})"
                                  for r in runs],
           ["load time (s)"] + [f"{r.metrics['timing']['load_seconds']:.1f}" for r in runs],
           ["prediction time (s)"] + [f"{r.metrics['timing']['predict_seconds']:.1f}" for r in runs],
           ["clauses / s"] + [str(r.metrics["timing"]["clauses_per_second"]) for r in runs],
           ["s per 1,000 clauses"] + [str(r.metrics["timing"]["seconds_per_1000_clauses"]) for r in runs]]
    return head, rows, ops


RISK_COLUMNS = ("risk.f1", "risk_dir.f1", "severity.accuracy_within_type", "severity.accuracy", "risk_to.accuracy")


def _risk_sections(runs: Sequence[RunResult]) -> list[tuple[str, str, list, list[list[str]]]]:
    """(title, text, head, rows): the risk figures by who labelled the gold, every run; and the main
    model's confusion of who bears the risk."""
    main = runs[0]
    groups = main.metrics.get("by_risk_labeller", {})
    head = ["gold risk labels (records)", "model"] + list(RISK_COLUMNS)
    rows = []
    for labeller, g in groups.items():
        for r in runs:
            m = r.metrics.get("by_risk_labeller", {}).get(labeller, {})
            rows.append([f"{labeller}: {g['labels']} ({g['records']:,})", r.name]
                        + [format_value(m.get(k), missing="-") for k in RISK_COLUMNS])
    gold = groups.get("graded", {}).get("records", 0)
    text = (f"{gold:,} records here carry gold risk labels (the graded set: two annotators, adjudicated); "
            if gold else "No record here carries a gold risk label (the graded set is not in this file): every "
                         "risk label below is the rule pre-labeller's, or, for Terms-of-Service categories, set by "
                         "the CLAUDETTE experts' fairness level with the bearer by rule. ") + (
        "Agreement with rule labels measures how well a model reproduces the rules, not the law. The "
        "type-oracle takes each gold type's default severity and finds the bearer with the type's rule "
        "(the rule pre-labeller's bearer finding, `annotation.risk.label_risk(criteria=False)`); "
        "type-defaults does the same with the evaluated model's predicted types. Directional risk F1 "
        "counts a risk clause as found only with the right bearer.")
    sections = [("Risk by who labelled it", text, head, rows)]
    d = decisions(main.items, main.preds, load_taxonomy())
    bearers = list(d.party_classes)
    cols = bearers + [UNSAID, INVALID]
    matrix = [[sum(1 for t, p in zip(d.risk_to_true, d.risk_to_pred) if t == g and p == c) for c in cols]
              for g in bearers]
    sections.append((f"Who bears the risk: gold (rows) x predicted (columns), {main.name}",
                     f"`{UNSAID}`: the answer names no bearer (a model without a bearer head).",
                     ["gold \\ predicted"] + cols, [[g] + [str(v) for v in row] for g, row in zip(bearers, matrix)]))
    return sections


def _per_class_rows(run: RunResult, group: str) -> list[list[str]]:
    pc = run.metrics["per_class"].get(group, {})
    return [[c, f"{100 * v['precision']:.1f}", f"{100 * v['recall']:.1f}", f"{100 * v['f1']:.1f}",
             str(v["support"]), str(v["predicted"])] for c, v in pc.items()]


def _md_table(head, rows) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return "\n".join(["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def _html_table(head, rows) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def write_report(folder: Path, runs: Sequence[RunResult]) -> None:
    main = runs[0]
    data = main.metrics["data"]
    figures = _figures(folder, runs)
    head, rows, ops = _tables(runs)
    worst = worst_errors(main)
    source = data.get("file") or f"CLAUDETTE layout {data.get('claudette')} (split {data.get('split')})"
    intro = (f"Model **{main.name}** (`{main.model_version}`) on {source}: {data['records']:,} records from "
             f"{data['documents']:,} documents; {data['risk_clauses']:,} risk clauses, {data['tos_sentences']:,} "
             f"ToS sentences, {data['verified_records']:,} verified records. Values in %, with 95% bootstrap "
             f"intervals over documents ({main.metrics['bootstrap']['resamples']} resamples). Written "
             f"{time.strftime('%Y-%m-%d %H:%M')}.")
    notes = ("Unusable model output (invalid JSON, a missing key, a label outside the taxonomy) is counted "
             "below and scored as a miss, never dropped or replaced by a guess. UNFAIR-ToS figures follow "
             "LexGLUE: 8 categories plus its `none` column (unfair for no category); published LexGLUE test "
             "figures (m-F1 / μ-F1): TF-IDF+SVM 75.0 / 94.7, Legal-BERT 83.0 / 96.0. "
             + ("Party figures need `verified: true` records; there are none here." if not data["verified_records"]
                else ""))
    groups = [("unfair_tos", "UNFAIR-ToS categories"), ("risk_category", "Risk categories"),
              ("clause_type", "Clause types")]
    pc_head = ["class", "precision", "recall", "F1", "gold", "predicted"]
    worst_rows = [[w["id"], w["gold"], w["pred"], "" if w["confidence"] is None else w["confidence"],
                   w["text"][:400] + ("…" if len(w["text"]) > 400 else "")] for w in worst]
    worst_head = ["id", "gold risk / types", "predicted", "confidence", "text"]

    risk_sections = _risk_sections(runs)
    md = [f"# Evaluation: {main.name}", "", intro, "", _md_table(head, rows), "", notes, ""]
    for title, text, r_head, r_rows in risk_sections:
        md += [f"## {title}", "", text, "", _md_table(r_head, r_rows), ""]
    md += ["## Invalid outputs, time and throughput", "", _md_table(head, ops), ""]
    for title, path in figures:
        md += [f"![{title}]({path})", ""]
    for g, title in groups:
        pr = _per_class_rows(main, g)
        if pr:
            md += [f"## {title} ({main.name})", "", _md_table(pc_head, pr), ""]
    md += [f"## Worst errors ({main.name})", "", _md_table(worst_head, worst_rows) if worst_rows else "None.", ""]
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")

    css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px;"
           "vertical-align:top}th{background:#f3f3f3}img{max-width:100%}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation: {html.escape(main.name)}</title>"
             f"<style>{css}</style></head><body>", f"<h1>Evaluation: {html.escape(main.name)}</h1>",
             f"<p>{html.escape(intro).replace('**', '')}</p>", _html_table(head, rows), f"<p>{html.escape(notes)}</p>"]
    for title, text, r_head, r_rows in risk_sections:
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(text)}</p>", _html_table(r_head, r_rows)]
    parts += ["<h2>Invalid outputs, time and throughput</h2>", _html_table(head, ops)]
    for title, path in figures:
        parts.append(f"<h3>{html.escape(title)}</h3><img src='{html.escape(path)}' alt='{html.escape(title)}'>")
    for g, title in groups:
        pr = _per_class_rows(main, g)
        if pr:
            parts += [f"<h2>{html.escape(title)} ({html.escape(main.name)})</h2>", _html_table(pc_head, pr)]
    parts += [f"<h2>Worst errors ({html.escape(main.name)})</h2>",
              _html_table(worst_head, worst_rows) if worst_rows else "<p>None.</p>", "</body></html>"]
    (folder / "report.html").write_text("\n".join(parts), encoding="utf-8")
