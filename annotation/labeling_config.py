"""The Label Studio side of the label format: the labeling configs, task data, and results.

The configs are generated from the taxonomy (never written by hand), so a new clause type in
`data/taxonomy.yaml` appears in Label Studio on the next push. One control per label field:

    clause_types   Choices, multiple       (every type the clause is; `other` when none applies)
    party          Choices, single         (first_party / second_party / both / none, with 甲方/乙方)
    risk_to        Choices, single         (who bears the risk: first_party / second_party / both / none)
    severity       Choices, single         (none / low / medium / high, for the party who bears it)
    risk_category  Choices, single
    reason         TextArea                (one sentence a lawyer can read)

`labeling_config()` is the annotation project's (every field); `graded_config()` the graded
set's, where two annotators judge each clause independently: the bearer, the severity and the
reason are required, and the clause types are asked too (the rule labeller's types are measured
against them). The contract's parties (with their aliases) and the clause's context are shown
beside the clause (task fields `parties`, `context`), since the party labels are roles and the
annotator must see who plays them. A result (a prediction or an annotation) is a list of
`{from_name, to_name, type, value}` items; `result_from_labels` and `labels_from_result` are the
two directions, and the only code that knows the control names. An annotation made before the
bearer existed ("risk" control) reads as its severity.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

TEXT = "clause"  # the object every control labels
CHOICE_FIELDS = ("clause_types", "party", "risk_to", "severity", "risk_category")
LEGACY_SEVERITY = "risk"  # the control older projects used for what is now severity
REASON = "reason"
_BEARER_HINT = "who bears the clause's risk (the role, as in the contract's opening)"


def _choice(value: str, label: str, hint: str) -> str:
    # `alias` is what the result stores: the taxonomy id, whatever the annotator sees
    return f"<Choice value={quoteattr(label)} alias={quoteattr(value)} hint={quoteattr(hint)}/>"


def _choices(tax: Taxonomy) -> dict[str, str]:
    return {
        "clause_types": "\n      ".join(_choice(c.id, f"{c.name} ({c.id})", c.description) for c in tax.clause_types),
        "party": "\n      ".join(_choice(p, f"{p} {tax.party_zh.get(p, '')}".strip(), f"who must act or refrain: {p}")
                                   for p in tax.parties),
        "risk_to": "\n      ".join(_choice(p, f"{p} {tax.party_zh.get(p, '')}".strip(), f"{_BEARER_HINT}: {p}")
                                     for p in tax.risk_bearers),
        "severity": "\n      ".join(_choice(r, r, f"severity for the bearer: {r}") for r in tax.severity_levels),
        "risk_category": "\n      ".join(_choice(r, r, f"risk category {r}") for r in tax.risk_categories),
    }


_HEAD = f"""<View>
  <View style="display: flex; gap: 1.5em; align-items: flex-start">
    <View style="flex: 0 0 28%; background: #f5f5f5; padding: 0.5em">
      <Header value="Parties (the labels are roles)" size="5"/>
      <Text name="parties" value="$parties"/>
      <Header value="Context (the clause's heading or lead-in)" size="5"/>
      <Text name="context" value="$context"/>
    </View>
    <View style="flex: 1">
      <Header value="Clause" size="5"/>
      <Text name="{TEXT}" value="$text"/>
    </View>
  </View>"""

_RISK = """  <Header value="Who bears the risk (data/guidelines.md section 3)" size="5"/>
  <Choices name="risk_to" toName="{text}" choice="single-radio" showInline="true" required="true">
      {risk_to}
  </Choices>
  <Header value="Severity for that party (none exactly when nobody bears a risk)" size="5"/>
  <Choices name="severity" toName="{text}" choice="single-radio" showInline="true" required="true">
      {severity}
  </Choices>"""


def labeling_config(tax: Taxonomy | None = None) -> str:
    c = _choices(tax or load_taxonomy())
    return f"""{_HEAD}
  <Header value="Obligated party: who must act or refrain (data/guidelines.md)" size="5"/>
  <Choices name="party" toName="{TEXT}" choice="single-radio" showInline="true" required="true">
      {c["party"]}
  </Choices>
{_RISK.format(text=TEXT, **c)}
  <Header value="Risk category" size="5"/>
  <Choices name="risk_category" toName="{TEXT}" choice="single-radio" showInline="true">
      {c["risk_category"]}
  </Choices>
  <Header value="Reason (one sentence for a lawyer)" size="5"/>
  <TextArea name="{REASON}" toName="{TEXT}" rows="2" maxSubmissions="1" editable="true"/>
  <Header value="Clause type: every type the clause is (other if none)" size="5"/>
  <Choices name="clause_types" toName="{TEXT}" choice="multiple" required="true">
      {c["clause_types"]}
  </Choices>
</View>"""


def graded_config(tax: Taxonomy | None = None) -> str:
    """The graded set's config: bearer, severity and reason required; clause types asked independently."""
    c = _choices(tax or load_taxonomy())
    return f"""{_HEAD}
{_RISK.format(text=TEXT, **c)}
  <Header value="Reason: the criterion that decided, one sentence for a lawyer" size="5"/>
  <TextArea name="{REASON}" toName="{TEXT}" rows="2" maxSubmissions="1" editable="true" required="true"/>
  <Header value="Clause type: every type the clause is (other if none)" size="5"/>
  <Choices name="clause_types" toName="{TEXT}" choice="multiple" required="true">
      {c["clause_types"]}
  </Choices>
</View>"""


def parties_text(party_names: dict[str, str], aliases: dict[str, list[str]] | None = None,
                 tax: Taxonomy | None = None) -> str:
    """The parties as an annotator reads them: role, name, and the other names the contract uses."""
    tax = tax or load_taxonomy()
    lines = []
    for role in ("first_party", "second_party"):
        also = (aliases or {}).get(role) or []
        called = f" (also: {', '.join(also)})" if also else ""
        lines.append(f"{role} ({tax.party_zh.get(role, '')}): {party_names.get(role) or 'unknown'}{called}")
    return "\n".join(lines)


def result_from_labels(answer: Answer) -> list[dict]:
    """A prediction's result: what the annotator sees pre-filled (a bearer the answer does not give is left
    for the annotator to choose)."""
    items = [
        {"from_name": "clause_types", "to_name": TEXT, "type": "choices", "value": {"choices": list(answer.clause_types)}},
        {"from_name": "party", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.party]}},
        {"from_name": "severity", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.severity]}},
        {"from_name": "risk_category", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.risk_category]}},
    ]
    if answer.risk_to is not None:
        items.insert(2, {"from_name": "risk_to", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.risk_to]}})
    if answer.reason:
        items.append({"from_name": REASON, "to_name": TEXT, "type": "textarea", "value": {"text": [answer.reason]}})
    return items


def risk_result(risk_to: str, severity: str, reason: str, clause_types=None) -> list[dict]:
    """An annotation of the graded config: an annotator's (or an adjudicator's) risk label."""
    items = [
        {"from_name": "risk_to", "to_name": TEXT, "type": "choices", "value": {"choices": [risk_to]}},
        {"from_name": "severity", "to_name": TEXT, "type": "choices", "value": {"choices": [severity]}},
        {"from_name": REASON, "to_name": TEXT, "type": "textarea", "value": {"text": [reason]}},
    ]
    if clause_types:
        items.append({"from_name": "clause_types", "to_name": TEXT, "type": "choices",
                      "value": {"choices": list(clause_types)}})
    return items


@dataclass(frozen=True)
class AnnotatedLabels:
    """The labels one annotation gives; fields the annotator left empty are None."""

    clause_types: tuple[str, ...] | None
    party: str | None
    severity: str | None
    risk_category: str | None
    reason: str | None
    risk_to: str | None = None

    @property
    def risk(self) -> str | None:
        """The severity under its old name (`risk` equals severity until readers switch)."""
        return self.severity

    def key(self) -> tuple:
        """What two annotators must agree on (the free-text reason is not compared)."""
        types = tuple(sorted(self.clause_types)) if self.clause_types else None
        return (types, self.party, self.risk_to, self.severity, self.risk_category)

    def as_dict(self) -> dict:
        return {"clause_types": list(self.clause_types) if self.clause_types else None, "party": self.party,
                "risk_to": self.risk_to, "severity": self.severity, "risk": self.severity,
                "risk_category": self.risk_category, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "AnnotatedLabels":
        types = d.get("clause_types")
        return cls(tuple(types) if types else None, d.get("party"), d.get("severity") or d.get("risk"),
                   d.get("risk_category"), d.get("reason"), d.get("risk_to"))


def labels_from_result(result: list[dict], tax: Taxonomy | None = None) -> AnnotatedLabels:
    """Read an annotation's result; a label outside the taxonomy raises TaxonomyError naming it
    (the config only offers taxonomy ids, so that means the config and taxonomy drifted apart)."""
    tax = tax or load_taxonomy()
    found: dict[str, list[str]] = {}
    reason = None
    for item in result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == LEGACY_SEVERITY:
            name = "severity"
        if name in CHOICE_FIELDS:
            found[name] = [str(v) for v in value.get("choices", [])]
        elif name == REASON:
            texts = value.get("text") or []
            reason = " ".join(t.strip() for t in texts if t and t.strip()) or None
    types = tuple(dict.fromkeys(found.get("clause_types", []))) or None
    for t in types or ():
        tax.check("clause_type", t)
    single = {}
    for name in ("party", "risk_to", "severity", "risk_category"):
        values = found.get(name) or []
        if len(values) > 1:
            raise TaxonomyError(f"{name}: one choice expected, got {values}")
        single[name] = tax.check(name, values[0]) if values else None
    return AnnotatedLabels(types, single["party"], single["severity"], single["risk_category"], reason,
                           single["risk_to"])
