"""The prompt format: the one place that says what the model is asked and must answer.

A record's `system`, `instruction` and `input` are built here, and so is the `output`
JSON the model must produce. Training renders them with the model's chat template (or
`render_plain` for a model without one); evaluation and the app parse answers with
`parse_answer`, which reports what is wrong with an answer instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .taxonomy import Taxonomy, TaxonomyError, load_taxonomy

SYSTEM = (
    "You are a careful contract lawyer's assistant. You read one clause at a time and "
    "label it exactly as the instruction asks, answering with JSON only."
)

INSTRUCTION = (
    "Label the contract clause in the input. Answer with one JSON object with the keys "
    '"clause_types" (a list of clause type ids from the taxonomy, ["other"] if none applies), '
    '"party" (who must act or refrain under the clause: first_party, second_party, both or none), '
    '"risk_to" (who bears the clause\'s risk: first_party, second_party, both or none), '
    '"severity" (how severe the risk is for that party: none, low, medium or high; none exactly '
    'when risk_to is none), "risk" (the same value as severity), "risk_category" (a risk category id) '
    'and "reason" (one sentence a lawyer can read).'
)

ANSWER_KEYS = ("clause_types", "party", "risk_to", "severity", "risk", "risk_category", "reason")
# an answer must name these; `risk_to` may be missing (a model trained before bearers existed) and one
# of `severity` / `risk` stands for the other, since they are the same value
_REQUIRED_KEYS = ("clause_types", "party", "risk_category", "reason")


@dataclass(frozen=True)
class Answer:
    """A clause's labels. `risk` and `severity` are one value under two names (give either);
    `risk_to` is None only in an answer that did not say who bears the risk (an older model's):
    with severity none it is "none", since nobody bears a risk that is not there."""

    clause_types: tuple[str, ...]
    party: str
    risk: str
    risk_category: str
    reason: str
    risk_to: str | None = None
    severity: str | None = None

    def __post_init__(self) -> None:
        if self.severity is None:
            object.__setattr__(self, "severity", self.risk)
        if self.severity != self.risk:
            raise ValueError(f"risk {self.risk!r} and severity {self.severity!r} must be the same value")
        if self.risk_to is None and self.severity == "none":
            object.__setattr__(self, "risk_to", "none")
        problem = check_risk(self.risk_to, self.severity)
        if problem:
            raise ValueError(problem)

    def to_json(self) -> str:
        return json.dumps(
            {
                "clause_types": list(self.clause_types),
                "party": self.party,
                "risk_to": self.risk_to,
                "severity": self.severity,
                "risk": self.risk,
                "risk_category": self.risk_category,
                "reason": self.reason,
            },
            ensure_ascii=False,
        )


class AnswerError(ValueError):
    """A model answer that is not valid JSON, names labels outside the taxonomy, or contradicts itself."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "invalid_json" | "missing_key" | "unknown_label" | "inconsistent"


def check_risk(risk_to: str | None, severity: str) -> str | None:
    """The one rule that ties bearer and severity: a risk has a bearer and a bearer has a risk.
    Returns what is wrong, or None."""
    if risk_to is None:
        return None
    if severity == "none" and risk_to != "none":
        return f"risk_to {risk_to!r} names a bearer but severity is none: give a severity, or risk_to none"
    if severity != "none" and risk_to == "none":
        return f"severity {severity!r} has no bearer (risk_to none): name who bears it, or severity none"
    return None


def format_parties(party_names: dict[str, str]) -> str:
    first = party_names.get("first_party") or "unknown"
    second = party_names.get("second_party") or "unknown"
    return f"first_party: {first}; second_party: {second}"


def build_input(text: str, party_names: dict[str, str]) -> str:
    """The `input` field: the parties as written in the contract, then the clause."""
    return f"Parties: {format_parties(party_names)}\nClause: {text}"


def render_plain(system: str, instruction: str, input_text: str, output: str | None = None) -> str:
    """Alpaca-style rendering for a model with no chat template."""
    prompt = f"{system}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    return prompt if output is None else prompt + output


def chat_messages(system: str, instruction: str, input_text: str, output: str | None = None) -> list[dict]:
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{instruction}\n\n{input_text}"},
    ]
    if output is not None:
        messages.append({"role": "assistant", "content": output})
    return messages


def parse_answer(raw: str, taxonomy: Taxonomy | None = None) -> Answer:
    """Parse a model's answer; raise AnswerError (with a `kind`) rather than guess."""
    taxonomy = taxonomy or load_taxonomy()
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end <= start:
        raise AnswerError("invalid_json", f"no JSON object in answer: {raw[:80]!r}")
    try:
        obj = json.loads(raw[start : end + 1])
    except json.JSONDecodeError as exc:
        raise AnswerError("invalid_json", f"answer is not valid JSON ({exc.msg}): {raw[:80]!r}") from None
    if not isinstance(obj, dict):
        raise AnswerError("invalid_json", "answer JSON is not an object")
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if "severity" not in obj and "risk" not in obj:
        missing.append("severity")
    if missing:
        raise AnswerError("missing_key", f"answer lacks {missing}")
    severity = obj.get("severity", obj.get("risk"))
    risk_to = obj.get("risk_to")
    types = obj["clause_types"]
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types:
        raise AnswerError("unknown_label", "clause_types must be a non-empty list")
    try:
        for t in types:
            taxonomy.check("clause_type", t)
        taxonomy.check("party", obj["party"])
        taxonomy.check("severity", severity)
        if risk_to is not None:
            taxonomy.check("risk_to", risk_to)
        taxonomy.check("risk_category", obj["risk_category"])
    except TaxonomyError as exc:
        raise AnswerError("unknown_label", str(exc)) from None
    if obj.get("risk", severity) != severity:
        raise AnswerError("inconsistent", f"risk {obj['risk']!r} and severity {severity!r} differ; they are one value")
    problem = check_risk(risk_to, severity)
    if problem:
        raise AnswerError("inconsistent", problem)
    return Answer(tuple(types), obj["party"], severity, obj["risk_category"], str(obj["reason"]),
                  risk_to=risk_to, severity=severity)
