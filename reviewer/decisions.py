"""How the served model decides: from per-label probabilities to the `Answer` a lawyer reads.

The reviewer's heads, its mix with TF-IDF (`ensemble.py`) and the baselines (`tfidf.py`,
`zero_shot.py`) all end here, so a clause type, its risk, category and reason are decided by
one set of rules whatever scored them:

- types: those at or above their threshold, `other` only when no real type is chosen, ordered
  like the dataset (highest default severity first);
- severity: by a risk rule (`RISK_RULES`, `risk_of`) from the chosen types and the severity head;
  `risk` is the same value (kept while readers switch to `severity`);
- risk_to (who bears it): `none` exactly when the severity is none, else the bearer head's most
  likely party among first_party, second_party and both (`bearer_of`); an adapter without a bearer
  head (trained before bearers existed) leaves it unsaid (None);
- category and reason: the taxonomy row of the top type, or of the best-scored real type when
  the risk is not `none` but only `other` was chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, load_taxonomy
from contract_review.training.reviewer_model import Labels

RISK_RULES = ("head", "types", "mixed", "highest")


def risk_of(types: list[str], head_risk: str, rule: str, tax: Taxonomy) -> str:
    """The clause's severity under `rule`:
    - `head`: the severity head alone;
    - `types`: the highest default risk of the chosen types (how CUAD records are labelled);
    - `mixed`: per chosen type, the head's risk for a CLAUDETTE-mapped type (there the experts'
      fairness level sets the risk, which the type alone cannot tell) and the default risk
      otherwise; the highest of these, and the head's when no type is chosen;
    - `highest`: as `mixed`, but a CLAUDETTE-mapped type takes the higher of its default and the
      head's risk: for thresholds tuned to choose such a type only when it is unfair (the
      ensemble's, `ensemble.py`), the head must not veto the type, while governing law
      (low by default) still needs the head to call it a risk."""
    if rule == "head" or types == ["other"]:
        return head_risk
    levels = []
    for t in types:
        ct = tax.clause_type(t)
        if rule == "mixed" and ct.claudette:
            levels.append(head_risk)
        elif rule == "highest" and ct.claudette:
            levels.append(max(ct.risk, head_risk, key=tax.risk_rank))
        else:
            levels.append(ct.risk)
    return max(levels, key=tax.risk_rank)


def bearer_of(severity: str, bearer_probs: Sequence[float] | None, labels: Labels) -> str | None:
    """Who bears a risk of `severity`: nobody when it is none, else the bearer head's most likely party
    (`none` excluded: a risk always has a bearer); None when there is no bearer head."""
    if severity == "none":
        return "none"
    if bearer_probs is None or not labels.has_bearer:
        return None
    allowed = [j for j, b in enumerate(labels.risk_to) if b != "none"]
    return labels.risk_to[max(allowed, key=lambda j: float(bearer_probs[j]))]


def answer_from_types(types: Sequence[str], risk: str, party: str, tax: Taxonomy,
                      type_scores: dict[str, float] | None = None, risk_to: str | None = None) -> Answer:
    """An Answer from chosen types, severity (`risk`) and party: types ordered by default severity (as
    in the dataset), `other` only when alone; category and reason from the top type's taxonomy row
    (the best-scored real type when the severity is not none but only `other` was chosen)."""
    types = tax.order_types(types)
    top = tax.clause_type(types[0])
    if top.id == "other" and risk != "none" and type_scores:
        best = max((t for t in type_scores if t != "other"), key=type_scores.get, default=None)
        top = tax.clause_type(best) if best else top
    category = top.risk_category if risk != "none" else "none"
    return Answer(tuple(types), party, risk, category, tax.default_reason(top.id),
                  risk_to="none" if risk == "none" else risk_to, severity=risk)


def answers_from_probs(probs: dict[str, torch.Tensor], labels: Labels, thresholds: Sequence[float],
                       tax: Taxonomy | None = None, risk_rule: str = "head",
                       with_scores: bool = True) -> list[tuple[Answer, float, dict]]:
    """(Answer, confidence, scores) per clause from head probabilities: types above their threshold,
    party by the party head, severity by `risk_rule`, the bearer by `bearer_of`. The confidence is the
    probability of the risk decision (medium/high or not): the severity head's, or the top type's
    where the types decided it. `with_scores=False` leaves the per-label scores out (tuning decides
    thousands of times and reads only the answers)."""
    tax = tax or load_taxonomy()
    thr = torch.tensor(list(thresholds))
    other = labels.clause_type.index("other")
    above = (probs["clause_type"].float() >= thr[None, :]).numpy()
    above[:, other] = False
    severity_probs = probs["severity"] if "severity" in probs else probs["risk"]  # legacy files name it risk
    bearer_probs = probs.get("risk_to") if labels.has_bearer else None
    positive = [labels.severity.index(r) for r in labels.severity if r in tax.risk_positive]
    results = []
    for i in range(probs["clause_type"].size(0)):
        p = probs["clause_type"][i]
        chosen = [labels.clause_type[j] for j in above[i].nonzero()[0]]
        types = tax.order_types(chosen)
        party = labels.party[int(probs["party"][i].argmax())]
        severity = risk_of(types, labels.severity[int(severity_probs[i].argmax())], risk_rule, tax)
        risk_to = bearer_of(severity, bearer_probs[i] if bearer_probs is not None else None, labels)
        scores = {}
        if with_scores:
            scores = {
                "clause_type": {t: round(float(p[j]), 4) for j, t in enumerate(labels.clause_type)},
                "party": {t: round(float(probs["party"][i, j]), 4) for j, t in enumerate(labels.party)},
                "severity": {t: round(float(severity_probs[i, j]), 4) for j, t in enumerate(labels.severity)},
            }
            if bearer_probs is not None:
                scores["risk_to"] = {t: round(float(bearer_probs[i, j]), 4) for j, t in enumerate(labels.risk_to)}
        type_scores = None
        if severity != "none" and types == ["other"]:  # the category then comes from the best-scored real type
            type_scores = {t: float(p[j]) for j, t in enumerate(labels.clause_type)}
        answer = answer_from_types(types, severity, party, tax, type_scores, risk_to=risk_to)
        p_risk = float(severity_probs[i, positive].sum())
        if risk_rule != "head" and types != ["other"]:
            # the decision came (at least partly) from the types: its confidence is the top type's
            p_top = float(p[labels.clause_type.index(types[0])])
            p_risk = max(p_risk, p_top) if severity in tax.risk_positive else min(p_risk, 1.0 - p_top)
        confidence = p_risk if severity in tax.risk_positive else 1.0 - p_risk
        results.append((answer, confidence, scores))
    return results
