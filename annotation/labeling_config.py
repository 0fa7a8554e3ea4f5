"""The Label Studio side of the label format: the labeling config, task data, and results.

The config is generated from the taxonomy (never written by hand), so a new clause type in
`data/taxonomy.yaml` appears in Label Studio on the next push. One control per label field:

    clause_types   Choices, multiple       (every type the clause is; `other` when none applies)
    party          Choices, single         (first_party / second_party / both / none, with 甲方/乙方)
    risk           Choices, single
    risk_category  Choices, single
    reason         TextArea                (one sentence a lawyer can read)

The contract's parties are shown beside the clause (task field `parties`), since the party
label is a role and the annotator must see who plays it. A result (a prediction or an
annotation) is a list of `{from_name, to_name, type, value}` items; `result_from_labels` and
`labels_from_result` are the two directions, and the only code that knows the control names.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

TEXT = "clause"  # the object every control labels
CHOICE_FIELDS = ("clause_types", "party", "risk", "risk_category")
REASON = "reason"


def _choice(value: str, label: str, hint: str) -> str:
    # `alias` is what the result stores: the taxonomy id, whatever the annotator sees
    return f"<Choice value={quoteattr(label)} alias={quoteattr(value)} hint={quoteattr(hint)}/>"


def labeling_config(tax: Taxonomy | None = None) -> str:
    tax = tax or load_taxonomy()
    types = "\n      ".join(_choice(c.id, f"{c.name} ({c.id})", c.description) for c in tax.clause_types)
    parties = "\n      ".join(
        _choice(p, f"{p} {tax.party_zh.get(p, '')}".strip(), f"who must act or refrain: {p}") for p in tax.parties
    )
    risks = "\n      ".join(_choice(r, r, f"risk level {r}") for r in tax.risk_levels)
    cats = "\n      ".join(_choice(r, r, f"risk category {r}") for r in tax.risk_categories)
    return f"""<View>
  <View style="display: flex; gap: 1.5em; align-items: flex-start">
    <View style="flex: 0 0 28%; background: #f5f5f5; padding: 0.5em">
      <Header value="Parties (the label is the role)" size="5"/>
      <Text name="parties" value="$parties"/>
    </View>
    <View style="flex: 1">
      <Header value="Clause" size="5"/>
      <Text name="{TEXT}" value="$text"/>
    </View>
  </View>
  <Header value="Obligated party: who must act or refrain (data/guidelines.md)" size="5"/>
  <Choices name="party" toName="{TEXT}" choice="single-radio" showInline="true" required="true">
      {parties}
  </Choices>
  <Header value="Risk" size="5"/>
  <Choices name="risk" toName="{TEXT}" choice="single-radio" showInline="true" required="true">
      {risks}
  </Choices>
  <Header value="Risk category" size="5"/>
  <Choices name="risk_category" toName="{TEXT}" choice="single-radio" showInline="true">
      {cats}
  </Choices>
  <Header value="Reason (one sentence for a lawyer)" size="5"/>
  <TextArea name="{REASON}" toName="{TEXT}" rows="2" maxSubmissions="1" editable="true"/>
  <Header value="Clause type: every type the clause is (other if none)" size="5"/>
  <Choices name="clause_types" toName="{TEXT}" choice="multiple" required="true">
      {types}
  </Choices>
</View>"""


def parties_text(party_names: dict[str, str], tax: Taxonomy | None = None) -> str:
    tax = tax or load_taxonomy()
    lines = []
    for role in ("first_party", "second_party"):
        lines.append(f"{role} ({tax.party_zh.get(role, '')}): {party_names.get(role) or 'unknown'}")
    return "\n".join(lines)


def result_from_labels(answer: Answer) -> list[dict]:
    """A prediction's result: what the annotator sees pre-filled."""
    items = [
        {"from_name": "clause_types", "to_name": TEXT, "type": "choices", "value": {"choices": list(answer.clause_types)}},
        {"from_name": "party", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.party]}},
        {"from_name": "risk", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.risk]}},
        {"from_name": "risk_category", "to_name": TEXT, "type": "choices", "value": {"choices": [answer.risk_category]}},
    ]
    if answer.reason:
        items.append({"from_name": REASON, "to_name": TEXT, "type": "textarea", "value": {"text": [answer.reason]}})
    return items


@dataclass(frozen=True)
class AnnotatedLabels:
    """The labels one annotation gives; fields the annotator left empty are None."""

    clause_types: tuple[str, ...] | None
    party: str | None
    risk: str | None
    risk_category: str | None
    reason: str | None

    def key(self) -> tuple:
        """What two annotators must agree on (the free-text reason is not compared)."""
        types = tuple(sorted(self.clause_types)) if self.clause_types else None
        return (types, self.party, self.risk, self.risk_category)

    def as_dict(self) -> dict:
        return {"clause_types": list(self.clause_types) if self.clause_types else None, "party": self.party,
                "risk": self.risk, "risk_category": self.risk_category, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "AnnotatedLabels":
        types = d.get("clause_types")
        return cls(tuple(types) if types else None, d.get("party"), d.get("risk"), d.get("risk_category"),
                   d.get("reason"))


def labels_from_result(result: list[dict], tax: Taxonomy | None = None) -> AnnotatedLabels:
    """Read an annotation's result; a label outside the taxonomy raises TaxonomyError naming it
    (the config only offers taxonomy ids, so that means the config and taxonomy drifted apart)."""
    tax = tax or load_taxonomy()
    found: dict[str, list[str]] = {}
    reason = None
    for item in result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if name in CHOICE_FIELDS:
            found[name] = [str(v) for v in value.get("choices", [])]
        elif name == REASON:
            texts = value.get("text") or []
            reason = " ".join(t.strip() for t in texts if t and t.strip()) or None
    types = tuple(dict.fromkeys(found.get("clause_types", []))) or None
    for t in types or ():
        tax.check("clause_type", t)
    single = {}
    for name, check_as in (("party", "party"), ("risk", "risk"), ("risk_category", "risk_category")):
        values = found.get(name) or []
        if len(values) > 1:
            raise TaxonomyError(f"{name}: one choice expected, got {values}")
        single[name] = tax.check(check_as, values[0]) if values else None
    return AnnotatedLabels(types, single["party"], single["risk"], single["risk_category"], reason)
