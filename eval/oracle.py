"""The type-oracle baselines of the risk figures: what a clause's types alone say about its risk.

Each clause type has a default severity and a bearer rule (`data/taxonomy.yaml`). A baseline that
knows only the types answers with the highest default severity of the clause's types and finds the
bearer by the type's rule, applied to the clause's text by the rule pre-labeller
(`annotation.risk.label_risk(..., criteria=False)`: the pre-labeller's bearer finding, without the
criteria of data/guidelines.md section 3 that move the severity). Two of them:

- `type-oracle` takes the GOLD types: how much of the risk figures the types alone explain (on
  rule-labelled records the bearer is found by the same rule as the gold, so there it is an upper
  bound of what the types give; on graded records it is an honest baseline);
- `type-defaults` takes the EVALUATED MODEL'S predicted types: what the model's risk heads add
  over the defaults of the types it predicts (the baseline the shipped reviewer must beat on
  directional risk).

Both keep the evaluated model's obligated party (they say nothing about it), so only their risk
columns are theirs; the type-oracle's clause-type figures are the gold's and mean nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract_review.annotation.parties import Parties
from contract_review.annotation.risk import label_risk
from contract_review.predictor import ClausePrediction
from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .items import EvalItem

TYPE_ORACLE = "type-oracle (gold types, type defaults)"
TYPE_DEFAULTS = "type-defaults (the model's types)"


def _parties(it: EvalItem) -> Parties:
    aliases = {"first_party": list(it.party_aliases.get("first_party", [])),
               "second_party": list(it.party_aliases.get("second_party", []))}
    return Parties(it.party_names.get("first_party", ""), it.party_names.get("second_party", ""), aliases)


def from_types(items: Sequence[EvalItem], types: Sequence[Sequence[str] | None], parties: Sequence[str],
               tax: Taxonomy | None = None) -> list[ClausePrediction]:
    """One answer per item from `types` (None: no usable answer) by the types' defaults and bearer rules."""
    tax = tax or load_taxonomy()
    out = []
    for it, t, party in zip(items, types, parties):
        if t is None:
            out.append(ClausePrediction(answer=None, error="unusable"))
            continue
        ordered = tax.order_types(t)
        label = label_risk(it.text, ordered, _parties(it), terms_of_service=it.source == "claudette", tax=tax,
                           criteria=False)
        category = tax.clause_type(label.type_id).risk_category if label.severity != "none" else "none"
        answer = Answer(tuple(ordered), party, label.severity, category, label.reason, risk_to=label.risk_to,
                        severity=label.severity)
        out.append(ClausePrediction(answer=answer, confidence=1.0))
    return out


def oracle_runs(items: Sequence[EvalItem], preds: Sequence[ClausePrediction],
                tax: Taxonomy | None = None) -> dict[str, list[ClausePrediction]]:
    """{name: predictions} of both baselines, beside the evaluated model's `preds`."""
    parties = [p.answer.party if p.answer is not None else "none" for p in preds]
    return {TYPE_ORACLE: from_types(items, [it.clause_types for it in items], parties, tax),
            TYPE_DEFAULTS: from_types(items, [p.answer.clause_types if p.answer is not None else None for p in preds],
                                      parties, tax)}
