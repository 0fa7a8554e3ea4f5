"""How the served model decides: from per-label probabilities to the `Answer` a lawyer reads.

The reviewer's heads, its mix with TF-IDF (`ensemble.py`) and the baselines (`tfidf.py`,
`zero_shot.py`) all end here, so a clause type, its risk, category and reason are decided by
one set of rules whatever scored them:

- types: those at or above their threshold, `other` only when no real type is chosen, ordered
  like the dataset (highest default severity first);
- severity: by a risk rule (`RISK_RULES`, `risk_of`) from the chosen types and the severity head;
  `risk` is the same value (kept while readers switch to `severity`); the `criteria` rule instead
  applies the written per-type criteria of data/guidelines.md section 3 to the clause's text for the
  chosen types (`criteria_answer`);
- risk_to (who bears it): `none` exactly when the severity is none, else the bearer head's most
  likely party among first_party, second_party and both (`bearer_of`); an adapter without a bearer
  head (trained before bearers existed) leaves it unsaid (None);
- category and reason: the taxonomy row of the top type, or of the best-scored real type when
  the risk is not `none` but only `other` was chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from contract_review.annotation.parties import Parties
from contract_review.annotation.risk import bearer_name, label_risk
from contract_review.predictor import ClauseInput
from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, load_taxonomy
from contract_review.training.reviewer_model import Labels

RISK_RULES = ("head", "types", "mixed", "highest", "criteria")
# Under `criteria` the bearer head overrides the bearer the type's rule finds in the text only when this sure (the
# default; the mix's tuning chooses it on validation among `TuneSettings.bearer_thresholds`)
BEARER_CONFIDENT = 0.9


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


def criteria_answer(clause: ClauseInput, types: list[str], head_severity: str, bearer_probs: Sequence[float] | None,
                    labels: Labels, tax: Taxonomy,
                    bearer_confident: float | None = BEARER_CONFIDENT) -> tuple[str, str, str]:
    """(severity, bearer, reason) under the `criteria` rule: the rule labeller (annotation/risk.py) with the
    written criteria, on the chosen types and the clause's text and party names; a CLAUDETTE-mapped type
    takes the higher of that and the severity head's level (the experts' fairness level, which the head
    learned, is not in the text); the bearer head replaces the rule's bearer at `bearer_confident` or above
    (None: never), or where the rule finds none for a risk. The reason names the criterion that decided and the bearer."""
    aliases = {r: list(clause.party_aliases.get(r, [])) for r in ("first_party", "second_party")}
    parties = Parties(clause.party_names.get("first_party", ""), clause.party_names.get("second_party", ""), aliases)
    label = label_risk(clause.text, types, parties, terms_of_service=clause.terms_of_service, tax=tax, criteria=True)
    severity, bearer = label.severity, label.risk_to
    if types != ["other"] and any(tax.clause_type(t).claudette for t in types):
        severity = max(severity, head_severity, key=tax.risk_rank)
    if severity == "none":
        return "none", "none", label.reason
    head = bearer_of(severity, bearer_probs, labels)
    if head is not None:
        p = float(bearer_probs[labels.risk_to.index(head)])  # type: ignore[index]
        if (bearer_confident is not None and p >= bearer_confident) or bearer == "none":
            bearer = head
    elif bearer == "none":
        bearer = "both"
    if (severity, bearer) == (label.severity, label.risk_to):
        return severity, bearer, label.reason
    # the head moved the level or the bearer: the reason's last sentence says so, by name
    why = label.reason.rsplit(f" {label.severity.capitalize()} for ", 1)[0]
    return severity, bearer, f"{why} {severity.capitalize()} for {bearer_name(bearer, parties)}."


def answer_from_types(types: Sequence[str], risk: str, party: str, tax: Taxonomy,
                      type_scores: dict[str, float] | None = None, risk_to: str | None = None,
                      reason: str | None = None) -> Answer:
    """An Answer from chosen types, severity (`risk`) and party: types ordered by default severity (as
    in the dataset), `other` only when alone; category and reason from the top type's taxonomy row
    (the best-scored real type when the severity is not none but only `other` was chosen)."""
    types = tax.order_types(types)
    top = tax.clause_type(types[0])
    if top.id == "other" and risk != "none" and type_scores:
        best = max((t for t in type_scores if t != "other"), key=type_scores.get, default=None)
        top = tax.clause_type(best) if best else top
    category = top.risk_category if risk != "none" else "none"
    return Answer(tuple(types), party, risk, category, reason or tax.default_reason(top.id),
                  risk_to="none" if risk == "none" else risk_to, severity=risk)


def answers_from_probs(probs: dict[str, torch.Tensor], labels: Labels, thresholds: Sequence[float],
                       tax: Taxonomy | None = None, risk_rule: str = "head",
                       with_scores: bool = True,
                       clauses: Sequence[ClauseInput] | None = None,
                       bearer_confident: float | None = BEARER_CONFIDENT) -> list[tuple[Answer, float, dict]]:
    """(Answer, confidence, scores) per clause from head probabilities: types above their threshold,
    party by the party head, severity by `risk_rule`, the bearer by `bearer_of` (under `criteria`, both by
    `criteria_answer`, which reads `clauses`: their text and party names, in the rows' order). The confidence is the
    probability of the risk decision (medium/high or not): the severity head's, or the top type's
    where the types decided it. `with_scores=False` leaves the per-label scores out (tuning decides
    thousands of times and reads only the answers)."""
    tax = tax or load_taxonomy()
    if risk_rule == "criteria" and (clauses is None or len(clauses) != probs["clause_type"].size(0)):
        raise ValueError("the criteria risk rule reads each clause's text and party names: pass `clauses`, one per "
                         f"row ({probs['clause_type'].size(0)} rows, "
                         f"{'no clauses' if clauses is None else f'{len(clauses)} clauses'})")
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
        head_severity = labels.severity[int(severity_probs[i].argmax())]
        reason = None
        if risk_rule == "criteria":
            severity, risk_to, reason = criteria_answer(clauses[i], types, head_severity,  # type: ignore[index]
                                                        bearer_probs[i] if bearer_probs is not None else None,
                                                        labels, tax, bearer_confident)
        else:
            severity = risk_of(types, head_severity, risk_rule, tax)
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
        answer = answer_from_types(types, severity, party, tax, type_scores, risk_to=risk_to, reason=reason)
        p_risk = float(severity_probs[i, positive].sum())
        if risk_rule != "head" and types != ["other"]:
            # the decision came (at least partly) from the types: its confidence is the top type's
            p_top = float(p[labels.clause_type.index(types[0])])
            p_risk = max(p_risk, p_top) if severity in tax.risk_positive else min(p_risk, 1.0 - p_top)
        confidence = p_risk if severity in tax.risk_positive else 1.0 - p_risk
        results.append((answer, confidence, scores))
    return results
