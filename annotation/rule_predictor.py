"""`RulePredictor`: pre-annotations before any trained model exists.

It implements `contract_review.predictor.Predictor` with rules only, so Label Studio tasks never start
blank:
- clause types: a taxonomy type whose name occurs in the clause ("Governing Law",
  "Arbitration"), or all of whose content words do ("Cap On Liability" -> cap ... liability);
  `other` when none does. Names come from `data/taxonomy.yaml`, nothing is hard-coded;
- obligated party: `annotation.obligation.label_obligation` (the guideline rules);
- bearer, severity, reason: `annotation.risk.label_risk` (the guidelines' per-type criteria);
  risk category: the taxonomy's, of the type whose risk that is.

Its confidence is a coarse rule score, not a probability: a name match is surer than a
word match, a duty with a known bearer surer than none. It is good enough to order tasks
for uncertainty sampling (weak matches first) and is stated in `model_version`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from contract_review.predictor import ClauseInput, ClausePrediction, register_model
from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .obligation import label_obligation
from .parties import Parties, terms_of_service, with_short_forms
from .risk import label_risk

RULES = "rules"  # the name every command chooses it by (`--model rules`)
_STOP = {"of", "on", "for", "the", "to", "and", "or", "by", "a", "an", "in", "with", "using"}
# confidence of each kind of evidence (see the module docstring: a score, not a probability)
_NAME_MATCH, _WORD_MATCH, _NO_MATCH = 0.75, 0.5, 0.6
_PARTY_FOUND, _PARTY_NONE = 0.8, 0.55


def _stem(word: str) -> str:
    return word[:6]  # "compete"/"competing", "terminate"/"termination": crude, and enough here


class RulePredictor:
    name = RULES

    def __init__(self, taxonomy: Taxonomy | None = None):
        self.tax = taxonomy or load_taxonomy()
        src = b"".join(Path(__file__).with_name(name).read_bytes() for name in ("obligation.py", "risk.py")) + \
            Path(__file__).read_bytes()
        # the version changes whenever the rules or the taxonomy do, so Label Studio can tell them apart
        self.model_version = f"rules-t{self.tax.version}-{hashlib.sha1(src).hexdigest()[:8]}"

    @cached_property
    def _patterns(self) -> list[tuple[str, re.Pattern, list[str]]]:
        out = []
        for ct in self.tax.clause_types:
            if ct.id == "other":
                continue
            words = [w for w in re.findall(r"[a-z]+", ct.name.lower()) if w not in _STOP]
            phrase = r"\W+".join(re.escape(w) for w in re.findall(r"[a-z]+", ct.name.lower()))
            out.append((ct.id, re.compile(rf"\b{phrase}", re.IGNORECASE), [_stem(w) for w in words]))
        return out

    def clause_types(self, text: str) -> tuple[list[str], float]:
        low = text.lower()
        stems = {_stem(w) for w in re.findall(r"[a-z]+", low)}
        by_name = [tid for tid, pat, _ in self._patterns if pat.search(text)]
        if by_name:
            return by_name, _NAME_MATCH
        by_words = [tid for tid, _, ws in self._patterns if len(ws) >= 2 and all(w in stems for w in ws)]
        if by_words:
            return by_words, _WORD_MATCH
        return ["other"], _NO_MATCH

    @staticmethod
    def _parties(names: dict[str, str]) -> Parties:
        first, second = names.get("first_party", ""), names.get("second_party", "")
        if second == "the user":  # a Terms of Service (annotation.parties.terms_of_service's convention)
            return terms_of_service(first)
        return with_short_forms(names)

    def predict_one(self, clause: ClauseInput) -> ClausePrediction:
        types, type_conf = self.clause_types(clause.text)
        types = self.tax.order_types(types)
        parties = self._parties(clause.party_names)
        obligation = label_obligation(clause.text, parties)
        party_conf = _PARTY_FOUND if obligation.evidence else _PARTY_NONE
        tos = clause.party_names.get("second_party") == "the user"  # terms_of_service()'s convention
        risk = label_risk(clause.text, types, parties, terms_of_service=tos, tax=self.tax)
        category = self.tax.clause_type(risk.type_id).risk_category if risk.severity != "none" else "none"
        answer = Answer(tuple(types), obligation.party, risk.severity, category, risk.reason, risk_to=risk.risk_to,
                        severity=risk.severity)
        confidence = round(min(type_conf, party_conf), 4)
        scores = {"clause_type": {t: type_conf for t in types}, "party": {obligation.party: party_conf},
                  "risk": {risk.severity: type_conf}}
        return ClausePrediction(answer=answer, confidence=confidence, scores=scores)

    def predict(self, clauses: Sequence[ClauseInput], progress: bool = False) -> list[ClausePrediction]:
        return [self.predict_one(c) for c in clauses]


register_model(RULES, lambda spec, options: RulePredictor(),
               "the rule labeller: taxonomy names and the guidelines' party rules, no model (instant, rough)")
