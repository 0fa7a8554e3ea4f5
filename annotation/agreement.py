"""Inter-annotator agreement, computed locally (Label Studio's agreement API is Enterprise-only).

Per label field, over the tasks that two or more annotators labelled:
- Cohen's kappa for the first two annotators of each task (the usual overlap of two);
- Krippendorff's alpha (nominal), which takes any number of annotators and missing labels;
- the raw share of tasks on which all annotators agree, for a reader without the statistics.

`clause_types` is a set of labels: it is compared as the whole set (exact agreement);
`risk_to` (who bears the risk) and `severity` are the graded set's two questions, and
`risk_clause` (severity medium/high or not) is the decision F1 is measured on.
A statistic is None when it is undefined (fewer than two items, or a single category used by
everyone: chance agreement is then 1 and kappa is 0/0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

from contract_review.taxonomy import load_taxonomy


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    if len(a) != len(b):
        raise ValueError(f"kappa needs paired labels, got {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Nominal alpha. `units[i]` holds the values the coders gave unit i (None = not coded)."""
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [u for u in pairable if len(u) >= 2]  # a unit coded once gives no pair
    if not pairable:
        return None
    # coincidence matrix o[c, k]: each ordered pair within a unit, weighted 1 / (m_u - 1)
    o: Counter = Counter()
    for values in pairable:
        m = len(values)
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    o[(c, k)] += 1.0 / (m - 1)
    n_c: Counter = Counter()
    for (c, _), w in o.items():
        n_c[c] += w
    n = sum(n_c.values())
    if n <= 1:
        return None
    disagree_observed = sum(w for (c, k), w in o.items() if c != k)
    disagree_expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n - 1)
    if disagree_expected == 0:
        return None
    return 1.0 - disagree_observed / disagree_expected


@dataclass(frozen=True)
class FieldAgreement:
    field: str
    items: int  # tasks with at least two annotators
    percent_agreement: float | None
    kappa: float | None
    alpha: float | None


FIELDS = ("clause_types", "party", "risk_to", "severity", "risk_category", "risk_clause")


def _value(labels: dict, field: str):
    if field == "clause_types":
        types = labels.get("clause_types")
        return tuple(sorted(types)) if types else None
    if field in ("severity", "risk_clause"):
        severity = labels.get("severity") or labels.get("risk")  # an annotation from before severity had its name
        if field == "severity" or severity is None:
            return severity
        return load_taxonomy().is_risk_clause(severity)
    return labels.get(field)


def agreement_report(tasks: Sequence[Sequence[dict]]) -> list[FieldAgreement]:
    """`tasks[i]` is the list of label dicts (one per annotator, in a stable order) of task i."""
    multi = [t for t in tasks if len(t) >= 2]
    out = []
    for field in FIELDS:
        units = [[_value(labels, field) for labels in t] for t in multi]
        pairs = [(u[0], u[1]) for u in units if u[0] is not None and u[1] is not None]
        coded = [[v for v in u if v is not None] for u in units]
        coded = [u for u in coded if len(u) >= 2]
        pct = sum(len(set(u)) == 1 for u in coded) / len(coded) if coded else None
        out.append(FieldAgreement(
            field=field, items=len(coded), percent_agreement=pct,
            kappa=cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None,
            alpha=krippendorff_alpha(units),
        ))
    return out


def format_report(rows: Sequence[FieldAgreement]) -> str:
    def f(x: float | None) -> str:
        return "  n/a" if x is None else f"{x:5.2f}"

    lines = [f"{'field':14s} {'tasks':>5s} {'agree':>6s} {'kappa':>6s} {'alpha':>6s}"]
    for r in rows:
        lines.append(f"{r.field:14s} {r.items:5d} {f(r.percent_agreement):>6s} {f(r.kappa):>6s} {f(r.alpha):>6s}")
    return "\n".join(lines)


def report_dicts(rows: Sequence[FieldAgreement]) -> list[dict]:
    return [asdict(r) for r in rows]
