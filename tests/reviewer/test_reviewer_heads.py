"""The reviewer's heads as the served model: the shipped adapter folder and the decision rules."""

import json

import pytest
import torch

from contract_review.reviewer.decisions import answers_from_probs, risk_of
from contract_review.reviewer.heads import ReviewerError, load_reviewer_predictor
from contract_review.reviewer.shipped import DEFAULT_ADAPTER_DIR
from contract_review.taxonomy import load_taxonomy
from contract_review.training.reviewer_model import Labels

LABELS = Labels.from_taxonomy()


def _probs(types: dict[str, float], risk: str, party: str = "none", bearer: str = "none") -> dict[str, torch.Tensor]:
    ct = torch.full((1, len(LABELS.clause_type)), 0.01)
    for t, p in types.items():
        ct[0, LABELS.clause_type.index(t)] = p
    r = torch.full((1, 4), 0.01)
    r[0, LABELS.severity.index(risk)] = 0.97
    pa = torch.full((1, 4), 0.01)
    pa[0, LABELS.party.index(party)] = 0.97
    b = torch.full((1, 4), 0.01)
    b[0, LABELS.risk_to.index(bearer)] = 0.97
    return {"clause_type": ct, "severity": r, "party": pa, "risk_to": b}


def test_shipped_adapter_is_small_and_complete():
    files = {p.name: p.stat().st_size for p in DEFAULT_ADAPTER_DIR.iterdir()}
    for name in ("adapter_model.safetensors", "adapter_config.json", "heads.safetensors", "reviewer.json", "README.md"):
        assert name in files
    assert sum(files.values()) < 15 * 2**20
    meta = json.loads((DEFAULT_ADAPTER_DIR / "reviewer.json").read_text())
    assert meta["labels"]["clause_type"] == list(LABELS.clause_type)
    assert len(meta["thresholds"]) == len(LABELS.clause_type)
    # the reviewer predicts who bears the risk and how severe it is
    assert meta["labels"]["risk_to"] == list(LABELS.risk_to) and meta["labels"]["severity"] == list(LABELS.severity)


def test_answers_follow_the_thresholds_and_the_taxonomy():
    tax = load_taxonomy()
    thr = [0.5] * len(LABELS.clause_type)
    (a, conf, scores), = answers_from_probs(_probs({"cap_on_liability": 0.9, "audit_rights": 0.4}, "medium"),
                                            LABELS, thr)
    assert a.clause_types == ("cap_on_liability",) and a.risk == "medium"
    assert a.risk_category == tax.clause_type("cap_on_liability").risk_category
    assert a.reason.startswith(tax.clause_type("cap_on_liability").name)
    assert conf == pytest.approx(0.98, abs=0.01) and set(scores) == {"clause_type", "party", "risk_to", "severity"}
    (b, _, _), = answers_from_probs(_probs({"audit_rights": 0.4}, "none"), LABELS, thr)
    assert b.clause_types == ("other",) and b.risk == "none" and b.risk_category == "none"


def test_the_bearer_is_none_exactly_when_the_severity_is_none_and_the_head_picks_it_otherwise():
    thr = [0.5] * len(LABELS.clause_type)
    (a, _, _), = answers_from_probs(_probs({"cap_on_liability": 0.9}, "high", bearer="first_party"), LABELS, thr)
    assert (a.risk_to, a.severity, a.risk) == ("first_party", "high", "high")
    # the bearer head says nobody, the severity head says medium: a risk has a bearer, the most likely party
    p = _probs({"cap_on_liability": 0.9}, "medium", bearer="none")
    p["risk_to"][0] = torch.tensor([0.1, 0.3, 0.05, 0.55])
    (b, _, _), = answers_from_probs(p, LABELS, thr)
    assert (b.risk_to, b.severity) == ("second_party", "medium")
    (c, _, _), = answers_from_probs(_probs({}, "none", bearer="both"), LABELS, thr)
    assert (c.risk_to, c.severity) == ("none", "none")
    # the `types` rule gives a severity from the type's default: the bearer still comes from the head
    (d, _, _), = answers_from_probs(_probs({"non_compete": 0.9}, "none", bearer="both"), LABELS, thr, risk_rule="types")
    assert (d.risk_to, d.severity) == ("both", "high")


def test_a_legacy_adapter_reads_its_risk_head_as_the_severity_and_names_no_bearer():
    meta = {"labels": {"clause_type": list(LABELS.clause_type), "party": list(LABELS.party),
                       "risk": list(LABELS.severity)}}
    legacy = Labels.from_meta(meta)
    assert not legacy.has_bearer and legacy.sizes() == {"clause_type": len(LABELS.clause_type), "party": 4,
                                                        "severity": 4}
    p = _probs({"cap_on_liability": 0.9}, "high")
    p["risk"] = p.pop("severity")
    del p["risk_to"]
    (a, _, _), = answers_from_probs(p, legacy, [0.5] * len(LABELS.clause_type))
    assert (a.risk_to, a.severity) == (None, "high")


def test_mixed_risk_rule_takes_default_risk_for_cuad_types_and_the_head_for_claudette_types():
    tax = load_taxonomy()
    cuad_only = next(c.id for c in tax.clause_types if c.cuad and not c.claudette and c.risk == "high")
    (a, _, _), = answers_from_probs(_probs({cuad_only: 0.9}, "none"), LABELS, [0.5] * len(LABELS.clause_type), risk_rule="mixed")
    assert a.risk == "high"
    claudette = next(c.id for c in tax.clause_types if c.claudette and not c.cuad)
    (b, _, _), = answers_from_probs(_probs({claudette: 0.9}, "low"), LABELS, [0.5] * len(LABELS.clause_type), risk_rule="mixed")
    assert b.risk == "low"


def test_highest_risk_rule_keeps_a_chosen_unfair_type_risky_unless_only_the_head_can_tell():
    """Under `highest` a CLAUDETTE-only type (default medium/high) stays a risk when the head says
    low, governing law (default low) takes the head's level, and CUAD-only types keep their default;
    `mixed` lets the head veto the CLAUDETTE type, as before."""
    tax = load_taxonomy()
    assert risk_of(["jurisdiction"], "low", "highest", tax) == "medium"
    assert risk_of(["jurisdiction"], "low", "mixed", tax) == "low"
    assert risk_of(["governing_law"], "high", "highest", tax) == "high"
    assert risk_of(["governing_law"], "none", "highest", tax) == "low"
    assert risk_of(["audit_rights"], "none", "highest", tax) == tax.clause_type("audit_rights").risk
    assert risk_of(["other"], "high", "highest", tax) == "high"  # no type: the head alone


def test_missing_adapter_folder_says_how_to_train_one(tmp_path):
    with pytest.raises(ReviewerError, match="contract-review train"):
        load_reviewer_predictor(tmp_path / "nope")


def test_the_criteria_rule_applies_the_written_criteria_to_the_clause_and_names_the_bearer():
    from contract_review.predictor import ClauseInput
    thr = [0.5] * len(LABELS.clause_type)
    names = {"first_party": "Acme", "second_party": "Beta LLC"}
    notice = ClauseInput("Acme may terminate this Agreement for convenience upon ninety (90) days' prior written "
                         "notice to Beta LLC, and shall pay Beta LLC for all work performed through the date of "
                         "termination.", names)
    bare = ClauseInput("Acme may terminate this Agreement for convenience in its sole discretion.", names)
    # the severity head says high (the type's default) and the bearer head is unsure: the criteria decide both
    p = _probs({"termination_for_convenience": 0.9}, "high")
    p["risk_to"][0] = torch.tensor([0.3, 0.3, 0.3, 0.1])
    (a, _, _), = answers_from_probs(p, LABELS, thr, risk_rule="criteria", clauses=[notice])
    (b, _, _), = answers_from_probs(p, LABELS, thr, risk_rule="criteria", clauses=[bare])
    assert (a.severity, a.risk_to) == ("low", "second_party") and "90 days' notice" in a.reason
    assert a.reason.endswith("Low for Beta LLC.")
    assert (b.severity, b.risk_to) == ("high", "second_party") and b.reason.endswith("High for Beta LLC.")
    # a bearer head at BEARER_CONFIDENT or above overrides the rule's bearer, and the reason follows it
    sure = _probs({"termination_for_convenience": 0.9}, "high", bearer="both")
    (c, _, _), = answers_from_probs(sure, LABELS, thr, risk_rule="criteria", clauses=[bare])
    assert (c.severity, c.risk_to) == ("high", "both") and c.reason.endswith("High for both parties.")
    # None: the head never overrides a bearer the text gives
    (d, _, _), = answers_from_probs(sure, LABELS, thr, risk_rule="criteria", clauses=[bare], bearer_confident=None)
    assert (d.severity, d.risk_to) == ("high", "second_party")
    # the rule reads the text: without the clauses it refuses, naming what to pass
    with pytest.raises(ValueError, match="pass `clauses`"):
        answers_from_probs(p, LABELS, thr, risk_rule="criteria")
