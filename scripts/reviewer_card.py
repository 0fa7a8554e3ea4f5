"""Write the shipped reviewer's eval.json and README.md (its card) from `eval select`'s selection.json and
test.json (scripts/ship_reviewer.sh runs it after `eval select --ship`).

    python scripts/reviewer_card.py --select runs/select --model data/model/reviewer [--list-run RUN_ID]

Every figure comes from those two files: validation figures are by-document cross-fits (mean and spread over
the seeds), test figures were read once for the shipped model (and its seeds' siblings).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (record set, metric key, what the card calls it)
SHOWN = (("all", "risk_dir.f1", "directional risk F1"),
         ("all", "severity.accuracy_within_type", "severity accuracy within type"),
         ("all", "risk_to.accuracy", "who-bears-it accuracy"),
         ("cuad", "clause_type.macro_f1", "CUAD clause-type macro-F1"),
         ("claudette", "unfair_tos.macro_f1_8", "CLAUDETTE 8-category macro-F1"))

LABELS = """\
How the labels were made (data/README.md has the detail): clause types come from CUAD's annotations
and CLAUDETTE's (LexGLUE) categories, with the checklist types added by the dataset build. Who bears
the risk (`risk_to`) and its severity come from a rule labeller (annotation/risk.py): each type's bearer
rule and default severity, moved by the written criteria of data/guidelines.md section 3 that a rule can
check in the text; CLAUDETTE's fairness levels set the severity of its categories. The graded set
(1,503 clauses: train 928, validation 309, test 266) replaces those with labels of two independent AI
annotators, adjudicated by an AI adjudicator where they differed; no lawyer labelled or reviewed any label.
So the risk figures measure agreement with the rules on most clauses and with AI graders on the graded set. The type-oracle baseline answers from the GOLD types with
the type defaults and bearer rules only (no criteria): on rule labels it is close to an upper bound of
what types alone give; the type-defaults baseline does the same from the model's predicted types."""


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def spread(s: dict | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    sd = f" ± {100 * s['sd']:.1f}" if s.get("sd") is not None else ""
    return f"{100 * s['mean']:.1f}{sd} (n={s['n']})"


def card(selection: dict, test: dict, list_run: str | None) -> str:
    chosen = selection["chosen"]
    cand = next(c for c in selection["candidates"]
                if (c["variant"], c["snapshot"]) == (chosen["variant"], chosen["snapshot"]))
    fig = test["figures"]
    names = {"mix (shipped default)": "shipped mix (seed 0)", "heads alone": "heads alone (seed 0)",
             "tfidf": "TF-IDF baseline"}
    rows = ["| test (read once) | " + " | ".join(n for _, _, n in SHOWN) + " |",
            "|---|" + "---|" * len(SHOWN)]
    for key, f in fig.items():
        rows.append(f"| {names.get(key, key)} | " + " | ".join(pct(f.get(f'{w}/{k}')) for w, k, _ in SHOWN) + " |")
    seeds = test.get("seeds", {})
    for part in ("mix", "heads"):
        if seeds.get(part):
            rows.append(f"| {part}, mean ± sd over seeds | "
                        + " | ".join(spread(seeds[part].get(f"{w}/{k}")) for w, k, _ in SHOWN) + " |")
    val = ["| validation, cross-fit by document | " + " | ".join(n for _, _, n in SHOWN) + " | J |",
           "|---|" + "---|" * (len(SHOWN) + 1)]
    for c in selection["candidates"]:
        mark = " (chosen)" if c is cand else ""
        ship = "" if c.get("shippable", True) else f" (not shippable: {c.get('why_not') or 'no adapter back'})"
        val.append(f"| {c['variant']} snapshot {c['snapshot']} (steps {c['steps']}){mark}{ship} | "
                   + " | ".join(spread(c["mix"].get(f"{w}/{k}")) for w, k, _ in SHOWN) + f" | {spread(c['mix']['J'])} |")
    for name, key in (("previously shipped reviewer (47 types, one risk head)", "previous_shipped"),
                      ("type-defaults of the chosen (seed 0)", "type_defaults")):
        if key in selection:
            f = selection[key]
            val.append(f"| {name} | " + " | ".join(pct(f.get(f"{w}/{k}")) for w, k, _ in SHOWN) + f" | {pct(f.get('J'))} |")
    paired = selection.get("chosen_vs_type_defaults", {}).get("all/risk_dir.f1")
    paired_test = test.get("mix_vs_type_defaults", {}).get("all/risk_dir.f1")

    def interval(p):
        return "-" if not p else f"{100 * p['diff']:+.1f} [{100 * p['ci'][0]:+.1f}, {100 * p['ci'][1]:+.1f}]"

    aware = selection.get("selection_aware", {}).get("figures", {}).get("J")
    return f"""# Reviewer adapter (the app's and evaluation's default model)

SmolLM2-135M-Instruct + adapter + four heads on the pooled final hidden state (last token and mean):
clause types (55 sigmoids, per-type thresholds tuned on validation), party (4-way), who bears the risk
(`risk_to`: first_party, second_party, both, none) and severity (none, low, medium, high). Input:
`prompt.build_input(text, party_names)` + EOS; no generation. `ensemble.json` mixes the type heads with
the TF-IDF baseline (the app's default; `--model reviewer` is the heads alone).

| | |
|---|---|
| variant | `{chosen['variant']}` (lora: configs/smollm2-135m_reviewer_gpu.yaml; full: lora.enabled false; dapt-lora: the same on the base adapted by configs/smollm2-135m_dapt_gpu.yaml), snapshot {chosen['snapshot']}, seed {chosen['shipped_seed']} |
| model version | `{test.get('model_version')}` |
| trained | one NVIDIA H200, `bash bench/gpu_run.sh reviewer 540` (bench/lists/reviewer.sh){f', run {list_run}' if list_run else ''}: every variant and seed in parallel on the one GPU |
| chosen by | `contract-review eval select`: {selection['folds']}-fold cross-fit by document on validation ({selection['records']} records, {selection['documents']} documents); J = mean of CLAUDETTE 8-category macro-F1, CUAD clause-type macro-F1 and directional risk F1, averaged over seeds; seed 0 ships (fixed before the runs). Selection-aware estimate of J: {spread(aware)} |

{LABELS}

## Test (read once for the shipped model; percent)

{chr(10).join(rows)}

Directional risk F1: a clause counts as a risk when its severity is medium or high, and a hit needs the
right bearer too. Severity accuracy within type: on clauses whose gold types the model found. Paired
difference, shipped mix minus type-defaults (its own predicted types), directional risk F1, 95% bootstrap
by document: test {interval(paired_test)}; validation cross-fit {interval(paired)}.

## Validation (cross-fit by document; mean ± sd over seeds; percent)

{chr(10).join(val)}

The full selection (every snapshot and seed, heads alone, paired intervals against the previously shipped
reviewer) is in eval.json; reproduce with `bash scripts/ship_reviewer.sh` on the list's returned files.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--select", required=True, type=Path, help="eval select's --out folder")
    ap.add_argument("--model", required=True, type=Path, help="the shipped folder (data/model/reviewer)")
    ap.add_argument("--list-run", help="the GPU list's run id, for the card")
    args = ap.parse_args()
    selection = json.loads((args.select / "selection.json").read_text(encoding="utf-8"))
    test = json.loads((args.select / "test.json").read_text(encoding="utf-8"))
    (args.model / "eval.json").write_text(json.dumps({"test": test, "selection": selection}, indent=1) + "\n",
                                          encoding="utf-8")
    (args.model / "README.md").write_text(card(selection, test, args.list_run), encoding="utf-8")
    print(f"wrote {args.model / 'eval.json'} and {args.model / 'README.md'}")


if __name__ == "__main__":
    main()
